// `exs demo`: the seed's contract running with nothing installed but the ODBC drivers:
// an in-process MQTT broker (unless one already answers), SQLite as the mainframe, and an
// 'HMS simulator' tab whose inject nodes publish permit status changes.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { derivedId, type FlowNode } from '../flows/flow-types';
import { importFiles, stopOnSignals, type Io } from './cli';
import { PACKAGE_ROOT, startRuntime } from './embedded-runtime';

const DEMO_CONTRACT = path.join(PACKAGE_ROOT, 'examples', 'cobol_permit.sync.yaml');
const DEMO_TOPIC = 'permits/status';

function portAnswers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(1000);
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('timeout', () => { socket.destroy(); resolve(false); });
    socket.once('error', () => resolve(false));
  });
}

/** Uses EXS_MQTT_URL or a broker already on 1883; otherwise starts Aedes in this process. */
async function ensureBroker(io: Io): Promise<{ url: string; stop(): Promise<void> }> {
  if (process.env.EXS_MQTT_URL) return { url: process.env.EXS_MQTT_URL, stop: async () => undefined };
  const url = 'mqtt://127.0.0.1:1883';
  if (await portAnswers('127.0.0.1', 1883)) {
    io.err(`exs demo: using the MQTT broker already at ${url}`);
    return { url, stop: async () => undefined };
  }
  const { Aedes } = await import('aedes');
  const broker = await Aedes.createBroker();
  const server = net.createServer(broker.handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(1883, '127.0.0.1', () => resolve());
  });
  io.err(`exs demo: started an in-process MQTT broker at ${url}`);
  return {
    url,
    stop: () => new Promise<void>((resolve) => broker.close(() => server.close(() => resolve()))),
  };
}

async function createMainframeTable(dbFile: string): Promise<void> {
  const odbc = require('odbc');
  let connection;
  try {
    connection = await odbc.connect(`DRIVER={SQLite3};Database=${dbFile}`);
  } catch (err) {
    throw new Error(`cannot open SQLite through ODBC (${(err as Error).message}); install libsqliteodbc: bash scripts/setup.sh`);
  }
  try {
    await connection.query(
      'CREATE TABLE IF NOT EXISTS PERMIT_TABLE (PERMIT_ID VARCHAR(20) PRIMARY KEY, PERMIT_STAT VARCHAR(16), LAST_CHG_TS TIMESTAMP)',
    );
  } finally {
    await connection.close();
  }
}

/** The editor tab from which a person emits HMS events, and watches the change log. */
function simulatorTab(brokerId: string): FlowNode[] {
  const id = (role: string) => derivedId('demo', role);
  const tab = id('tab');
  const publish = id('publish');
  const event = (permit: string, status: string) =>
    `{"permit_id": "${permit}", "status": "${status}", "updated_at": $now()}`;
  const injects: Array<[string, string, string]> = [
    ['P-123 Approved', event('P-123', 'Approved'), 'jsonata'],
    ['P-123 Pending', event('P-123', 'Pending'), 'jsonata'],
    ['P-456 Under review', event('P-456', 'Under review'), 'jsonata'],
    ['malformed: not JSON', 'permit P-789 approved', 'str'],
    ['malformed: no permit_id', '{"status": "Approved"}', 'str'],
  ];
  return [
    { id: tab, type: 'tab', label: 'HMS simulator', disabled: false, info: 'Click an inject button to publish an HMS permit event on permits/status.' },
    ...injects.map(([label, payload, payloadType], i): FlowNode => ({
      id: id(`inject-${i}`), type: 'inject', z: tab, name: label, props: [{ p: 'payload' }], repeat: '', once: false,
      topic: '', payload, payloadType, x: 170, y: 60 + i * 60, wires: [[publish]],
    })),
    { id: publish, type: 'mqtt out', z: tab, name: DEMO_TOPIC, topic: DEMO_TOPIC, qos: '1', retain: 'false', broker: brokerId, x: 460, y: 180, wires: [] },
    {
      id: id('changelog-in'), type: 'mqtt in', z: tab, name: 'exs/changelog', topic: 'exs/changelog', qos: '1', datatype: 'json',
      broker: brokerId, nl: false, rap: true, rh: 0, inputs: 0, x: 150, y: 400, wires: [[id('debug')]],
    },
    { id: id('debug'), type: 'debug', z: tab, name: 'change log', active: true, tosidebar: true, console: false, complete: 'payload', targetType: 'msg', x: 420, y: 400, wires: [] },
  ];
}

export async function commandDemo(options: Record<string, string | boolean>, io: Io): Promise<number> {
  const userDir = path.resolve((options['--user-dir'] as string) ?? '.exs-demo');
  fs.mkdirSync(userDir, { recursive: true });
  const dbFile = path.join(userDir, 'mainframe.db');
  process.env.EXS_DEMO_DB = dbFile;
  await createMainframeTable(dbFile);
  const broker = await ensureBroker(io);
  process.env.EXS_MQTT_URL = broker.url;

  const flows = importFiles([DEMO_CONTRACT], io, true);
  const brokerNode = flows.find((n) => n.type === 'mqtt-broker');
  if (!brokerNode) throw new Error('the demo contract produced no MQTT broker node');
  const runtime = await startRuntime({
    flows: [...flows, ...simulatorTab(brokerNode.id)],
    userDir,
    port: options['--port'] ? Number(options['--port']) : 1880,
  });
  io.err(`
EXS demo running: ${runtime.url}
  - 'HMS simulator' tab: click an inject node to publish a permit status change
  - the mainframe is SQLite: ${dbFile} (table PERMIT_TABLE)
  - change log: exs log PermitStatus_To_COBOL --last 3   (or the debug sidebar)
Ctrl-C stops it.`);
  stopOnSignals(async () => {
    await runtime.stop();
    await broker.stop();
  }, io);
  return new Promise<number>(() => undefined);
}
