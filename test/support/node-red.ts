// node-red-node-test-helper bound to the Node-RED runtime under test: EXS_NODE_RED names
// the module (`node-red` is 4.1, `node-red-5` is 5.x), so one suite runs on both.
import * as path from 'node:path';

// eslint-disable-next-line @typescript-eslint/no-var-requires
export const helper: any = require('node-red-node-test-helper');

export const nodeRedModule = process.env.EXS_NODE_RED ?? 'node-red';
helper.init(require.resolve(nodeRedModule));

const nodesDir = path.resolve(__dirname, '..', '..', 'nodes');

/** Every EXS node module, in the form helper.load() takes. */
export const exsNodes = [
  'exs-job', 'exs-odbc', 'exs-source', 'exs-sync-queue', 'exs-mapper', 'exs-conflict-resolver',
  'exs-connector', 'exs-mqtt-connector', 'exs-change-log',
].map((name) => require(path.join(nodesDir, name, `${name}.js`)));

export function loadFlow(flow: object[], credentials: object = {}): Promise<void> {
  return new Promise((resolve) => helper.load(exsNodes, flow, credentials, () => resolve()));
}

export function nodeRedVersion(): string {
  return require(path.join(path.dirname(require.resolve(`${nodeRedModule}/package.json`)), 'package.json')).version;
}

/** Resolves with the next message a helper node receives. */
export function nextMessage(node: any, timeoutMs = 10_000): Promise<any> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no message reached ${node.id} within ${timeoutMs} ms`)), timeoutMs);
    node.once('input', (msg: any) => {
      clearTimeout(timer);
      resolve(msg);
    });
  });
}

/** Collects messages a helper node receives until `count` have arrived. */
export function collectMessages(node: any, count: number, timeoutMs = 10_000): Promise<any[]> {
  return new Promise((resolve, reject) => {
    const received: any[] = [];
    const timer = setTimeout(
      () => reject(new Error(`${node.id} received ${received.length} of ${count} messages within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const listener = (msg: any) => {
      received.push(msg);
      if (received.length === count) {
        clearTimeout(timer);
        node.removeListener('input', listener);
        resolve(received);
      }
    };
    node.on('input', listener);
  });
}
