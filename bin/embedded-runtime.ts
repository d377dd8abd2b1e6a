// An embedded Node-RED runtime with the EXS nodes installed and the generated flows deployed:
// what `exs run`, `exs demo` and the SDK's start() share.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { mergeFlows, type FlowNode } from '../flows/flow-types';

export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');

export interface RuntimeOptions {
  flows: FlowNode[];
  userDir: string;
  port?: number;
  host?: string;
  editor?: boolean;
  /** Extra Node-RED settings (adminAuth, httpAdminRoot, ...), e.g. from `--settings FILE`. */
  settings?: Record<string, unknown>;
  /** Node-RED module to embed; default EXS_NODE_RED or `node-red`. */
  nodeRedModule?: string;
  quiet?: boolean;
}

export interface RunningRuntime {
  url: string;
  adminUrl: string;
  port: number;
  userDir: string;
  nodeRedVersion: string;
  stop(): Promise<void>;
}

function resolveNodeRed(moduleName: string): string {
  try {
    return require.resolve(moduleName, { paths: [process.cwd(), PACKAGE_ROOT] });
  } catch {
    throw new Error(`cannot find ${moduleName}: install it next to EXS (npm install node-red) or set EXS_NODE_RED`);
  }
}

/**
 * Node-RED finds node packages in `<userDir>/node_modules`; a link to this package makes
 * the EXS nodes and their examples appear exactly as if installed from the palette.
 */
function installExsInto(userDir: string): void {
  const modules = path.join(userDir, 'node_modules');
  const link = path.join(modules, 'node-red-contrib-exs');
  fs.mkdirSync(modules, { recursive: true });
  try {
    if (fs.realpathSync(link) === fs.realpathSync(PACKAGE_ROOT)) return;
    fs.rmSync(link, { recursive: true, force: true });
  } catch {
    // not there yet
  }
  fs.symlinkSync(PACKAGE_ROOT, link, 'dir');
}

function readFlowFile(file: string): FlowNode[] {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
    return Array.isArray(parsed) ? parsed : [];
  } catch {
    return [];
  }
}

function stripCredentials(nodes: FlowNode[]): FlowNode[] {
  return nodes.map(({ credentials: _omit, ...node }) => node);
}

export async function startRuntime(options: RuntimeOptions): Promise<RunningRuntime> {
  const userDir = path.resolve(options.userDir);
  fs.mkdirSync(userDir, { recursive: true });
  installExsInto(userDir);

  // The user's other tabs survive; each contract's tab is replaced by its new version.
  const flowFile = path.join(userDir, 'flows.json');
  const merged = mergeFlows(readFlowFile(flowFile), options.flows);
  fs.writeFileSync(flowFile, JSON.stringify(stripCredentials(merged), null, 2));

  const nodeRedPath = resolveNodeRed(options.nodeRedModule ?? process.env.EXS_NODE_RED ?? 'node-red');
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const RED = require(nodeRedPath);
  const express = require(require.resolve('express', { paths: [nodeRedPath] }));
  const app = express();
  const server = http.createServer(app);
  const editor = options.editor !== false;
  const settings: Record<string, any> = {
    userDir,
    flowFile: 'flows.json',
    uiHost: options.host ?? '127.0.0.1',
    uiPort: options.port ?? 1880,
    httpAdminRoot: '/',
    httpNodeRoot: '/api',
    disableEditor: !editor,
    functionExternalModules: false,
    externalModules: { autoInstall: false, palette: { allowInstall: false } },
    editorTheme: { projects: { enabled: false }, tours: false },
    logging: { console: { level: options.quiet ? 'warn' : 'info', metrics: false, audit: false } },
    ...options.settings,
  };
  RED.init(server, settings);
  if (settings.httpAdminRoot !== false) app.use(settings.httpAdminRoot, RED.httpAdmin);
  if (settings.httpNodeRoot !== false) app.use(settings.httpNodeRoot, RED.httpNode);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(settings.uiPort, settings.uiHost, () => resolve());
  });
  await RED.start();

  // Credentials go through the runtime API so Node-RED encrypts them in flows_cred.json.
  if (options.flows.some((n) => n.credentials)) {
    await RED.runtime.flows.setFlows({ flows: { flows: mergeFlows(readFlowFile(flowFile), options.flows) }, deploymentType: 'full' });
  }

  const port = (server.address() as AddressInfo).port;
  const host = settings.uiHost === '0.0.0.0' ? '127.0.0.1' : settings.uiHost;
  const adminRoot = String(settings.httpAdminRoot || '/').replace(/\/?$/, '/');
  let stopped: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    adminUrl: `http://${host}:${port}${adminRoot}`.replace(/\/$/, ''),
    port,
    userDir,
    nodeRedVersion: RED.version(),
    stop() {
      stopped ??= (async () => {
        await RED.stop();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections?.();
        });
      })();
      return stopped;
    },
  };
}
