// An embedded Node-RED runtime with the EXS nodes installed and the generated flows deployed:
// what `exs run`, `exs demo` and the SDK's start() share.
import * as crypto from 'node:crypto';
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

const CREDENTIAL_SECRET_FILE = '.exs-credential-secret';

/**
 * The secret Node-RED encrypts credentials with: the `credentialSecret` setting (false turns
 * encryption off), else EXS_CREDENTIAL_SECRET, else one generated for this user directory
 * and kept beside the flows, readable by its owner only.
 */
function credentialSecret(settings: Record<string, unknown>, userDir: string): string | false {
  const given = settings.credentialSecret;
  if (typeof given === 'string' || given === false) return given;
  if (process.env.EXS_CREDENTIAL_SECRET) return process.env.EXS_CREDENTIAL_SECRET;
  const file = path.join(userDir, CREDENTIAL_SECRET_FILE);
  try {
    const saved = fs.readFileSync(file, 'utf8').trim();
    if (saved) return saved;
  } catch {
    // the first run in this user directory
  }
  const secret = crypto.randomBytes(32).toString('hex');
  fs.writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return secret;
}

interface CredentialKeys {
  /** The key Node-RED will decrypt with at start; none when encryption is off. */
  write?: Buffer;
  /** Keys the current file may be encrypted with. */
  read: Buffer[];
}

const sha256 = (text: string): Buffer => crypto.createHash('sha256').update(text).digest();

/** Where Node-RED keeps the `_credentialSecret` it generates when none is configured. */
const RUNTIME_CONFIG = '.config.runtime.json';

function runtimeConfig(userDir: string): Record<string, unknown> | undefined {
  try {
    const config = JSON.parse(fs.readFileSync(path.join(userDir, RUNTIME_CONFIG), 'utf8'));
    return config && typeof config === 'object' ? config : undefined;
  } catch {
    return undefined;
  }
}

/** Node-RED's own generated secret, in a user directory it ran in without a configured one. */
function generatedSecret(userDir: string): string | undefined {
  const secret = runtimeConfig(userDir)?._credentialSecret;
  return typeof secret === 'string' && secret !== '' ? secret : undefined;
}

/**
 * Node-RED moves credentials from its generated secret to a configured one at its next save,
 * decrypting with the generated one until then (and warning at every start). Once the file is
 * written with the configured secret, the generated one goes, as Node-RED would do itself.
 */
function forgetGeneratedSecret(userDir: string): void {
  const config = runtimeConfig(userDir);
  if (!config) return;
  delete config._credentialSecret;
  fs.writeFileSync(path.join(userDir, RUNTIME_CONFIG), JSON.stringify(config, null, 4));
}

/** Written with the configured secret; read with it, or with Node-RED's generated one. */
function credentialKeys(secret: string | false, generated: string | undefined): CredentialKeys {
  const configured = secret === false ? undefined : sha256(secret);
  return { write: configured, read: [configured, generated === undefined ? undefined : sha256(generated)].flatMap((key) => (key ? [key] : [])) };
}

/** Node-RED puts `flows_cred.json` in the user directory, named after the flow file. */
function credentialsFilePath(flowFile: string, userDir: string): string {
  const extension = path.extname(flowFile);
  return path.join(userDir, `${path.basename(flowFile, extension)}_cred${extension}`);
}

// The format of @node-red/runtime lib/nodes/credentials.js: {"$": hex IV + base64 aes-256-ctr}.
const CIPHER = 'aes-256-ctr';

function encryptCredentials(key: Buffer, credentials: Record<string, unknown>): { $: string } {
  const iv = crypto.randomBytes(16);
  const cipher = crypto.createCipheriv(CIPHER, key, iv);
  return { $: iv.toString('hex') + cipher.update(JSON.stringify(credentials), 'utf8', 'base64') + cipher.final('base64') };
}

/** The credentials in a credentials file's content, or undefined when no key opens it. */
function decryptCredentials(content: unknown, keys: Buffer[]): Record<string, unknown> | undefined {
  if (!content || typeof content !== 'object' || Array.isArray(content)) return undefined;
  const sealed = (content as Record<string, unknown>).$;
  if (typeof sealed !== 'string' || Object.keys(content).length !== 1) return content as Record<string, unknown>;
  for (const key of keys) {
    try {
      const decipher = crypto.createDecipheriv(CIPHER, key, Buffer.from(sealed.slice(0, 32), 'hex'));
      const opened = JSON.parse(decipher.update(sealed.slice(32), 'base64', 'utf8') + decipher.final('utf8'));
      if (opened && typeof opened === 'object' && !Array.isArray(opened)) return opened;
    } catch {
      // not this key
    }
  }
  return undefined;
}

/**
 * The deployed nodes' credentials replace theirs in the credentials file; the other nodes'
 * credentials are kept. A node deployed without credentials loses any it had.
 */
function writeCredentials(file: string, flows: FlowNode[], keys: CredentialKeys, rewrite: boolean): boolean {
  const fresh = Object.fromEntries(flows.filter((n) => n.credentials && Object.keys(n.credentials).length > 0).map((n) => [n.id, n.credentials]));
  let current: Record<string, unknown> = {};
  // Written even when empty: without it Node-RED warns that encrypted credentials are missing.
  const exists = fs.existsSync(file);
  if (exists) {
    let content: unknown;
    try {
      content = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch {
      content = undefined;
    }
    const opened = decryptCredentials(content, keys.read);
    if (!opened) {
      if (Object.keys(fresh).length === 0) return false; // nothing of ours to write; Node-RED reports the file
      throw new Error(`${file}: cannot read it with the credential secret (credentialSecret setting, EXS_CREDENTIAL_SECRET or ${CREDENTIAL_SECRET_FILE}); set the secret it was written with, or delete the file to enter the credentials again`);
    }
    current = opened;
  }
  const stale = flows.filter((n) => n.id in current && !(n.id in fresh));
  if (exists && !rewrite && stale.length === 0 && Object.keys(fresh).length === 0) return false;
  for (const node of stale) delete current[node.id];
  Object.assign(current, fresh);
  fs.writeFileSync(file, JSON.stringify(keys.write ? encryptCredentials(keys.write, current) : current), { mode: 0o600 });
  return true;
}

/** One Node-RED per process: a second runtime would silently run the first one's flows. */
let runtimeInUse = false;

/** Where Node-RED reads the flow file: absolute, `./` from cwd, else cwd if there, else userDir. */
function flowFilePath(flowFile: string, userDir: string): string {
  if (path.isAbsolute(flowFile)) return flowFile;
  if (flowFile.startsWith('./') || fs.existsSync(path.join(process.cwd(), flowFile))) return path.join(process.cwd(), flowFile);
  return path.join(userDir, flowFile);
}

export async function startRuntime(options: RuntimeOptions): Promise<RunningRuntime> {
  if (runtimeInUse) {
    throw new Error('one EXS runtime per process: stop the running one first, or pass several contracts to one start([jobA, jobB])');
  }
  runtimeInUse = true;
  let server: http.Server | undefined;
  try {
    const running = await launch(options, (created) => (server = created));
    return running;
  } catch (err) {
    server?.close();
    runtimeInUse = false;
    throw err;
  }
}

async function launch(options: RuntimeOptions, serverCreated: (server: http.Server) => void): Promise<RunningRuntime> {
  const nodeRedPath = resolveNodeRed(options.nodeRedModule ?? process.env.EXS_NODE_RED ?? 'node-red');
  const editor = options.editor !== false;
  const settings: Record<string, any> = {
    userDir: path.resolve(options.userDir),
    uiHost: options.host ?? '127.0.0.1',
    uiPort: options.port ?? 1880,
    httpAdminRoot: '/',
    httpNodeRoot: '/api',
    disableEditor: !editor,
    functionExternalModules: false,
    externalModules: { autoInstall: false, palette: { allowInstall: false } },
    editorTheme: { projects: { enabled: false }, tours: false },
    // A sync runtime is often on a closed network: no update check, and no prompt asking for one.
    telemetry: { enabled: false },
    logging: { console: { level: options.quiet ? 'warn' : 'info', metrics: false, audit: false } },
    ...options.settings,
  };
  const userDir = path.resolve(settings.userDir);
  settings.userDir = userDir;
  // Node-RED and EXS must agree on the file: resolve it once, as Node-RED would.
  const flowFile = settings.flowFile ? flowFilePath(String(settings.flowFile), userDir) : path.join(userDir, 'flows.json');
  settings.flowFile = flowFile;
  fs.mkdirSync(userDir, { recursive: true });
  installExsInto(userDir);

  // The user's other tabs survive; each contract's tab is replaced by its new version. The
  // credentials go, encrypted, to the credentials file before Node-RED starts, so the flows
  // start once and with them.
  const merged = mergeFlows(readFlowFile(flowFile), options.flows);
  settings.credentialSecret = credentialSecret(settings, userDir);
  const generated = generatedSecret(userDir);
  const written = writeCredentials(credentialsFilePath(flowFile, userDir), options.flows, credentialKeys(settings.credentialSecret, generated), generated !== undefined);
  if (written && generated !== undefined) forgetGeneratedSecret(userDir);
  fs.writeFileSync(flowFile, JSON.stringify(stripCredentials(merged), null, 2));

  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const RED = require(nodeRedPath);
  const express = require(require.resolve('express', { paths: [nodeRedPath] }));
  const app = express();
  const server = http.createServer(app);
  serverCreated(server);
  RED.init(server, settings);
  if (settings.httpAdminRoot !== false) app.use(settings.httpAdminRoot, RED.httpAdmin);
  if (settings.httpNodeRoot !== false) app.use(settings.httpNodeRoot, RED.httpNode);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(settings.uiPort, settings.uiHost, () => resolve());
  });
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      try {
        await RED.stop();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections?.();
        });
      } finally {
        runtimeInUse = false;
      }
    })();
    return stopped;
  };
  const flowsRunning = flowsStarted(RED.events);
  try {
    await RED.start();
    await flowsRunning.done;
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  } finally {
    flowsRunning.cancel();
  }

  const port = (server.address() as AddressInfo).port;
  const host = settings.uiHost === '0.0.0.0' ? '127.0.0.1' : settings.uiHost;
  const adminRoot = String(settings.httpAdminRoot || '/').replace(/\/?$/, '/');
  return {
    url: `http://${host}:${port}`,
    adminUrl: `http://${host}:${port}${adminRoot}`.replace(/\/$/, ''),
    port,
    userDir,
    nodeRedVersion: RED.version(),
    stop,
  };
}

interface RuntimeState {
  id?: string;
  payload?: { state?: string; error?: string; type?: string; text?: string; types?: string[] };
}

/**
 * RED.start() resolves before the flows are loaded and started; this resolves once they
 * are, and rejects when Node-RED will not start them (missing node types, unreadable flows).
 */
function flowsStarted(events: NodeJS.EventEmitter): { done: Promise<void>; cancel(): void } {
  let onStarted = () => undefined as void;
  let onState = (_event: RuntimeState) => undefined as void;
  const done = new Promise<void>((resolve, reject) => {
    onStarted = () => resolve();
    onState = ({ id, payload }) => {
      if (id !== 'runtime-state' || !payload) return;
      // Credentials that fail to load are reported, and the flows start without them.
      if (payload.error === 'credentials_load_failed') return;
      if (payload.state === 'start' || payload.state === 'safe' || (payload.state === 'stop' && !payload.error)) return resolve();
      if (payload.error || payload.type === 'warning') {
        const detail = payload.types?.length ? `: ${payload.types.join(', ')}` : '';
        reject(new Error(`Node-RED did not start the flows (${payload.error ?? payload.text ?? 'unknown error'}${detail})`));
      }
    };
  });
  done.catch(() => undefined); // awaited after RED.start(); an early rejection is not unhandled
  events.on('flows:started', onStarted);
  events.on('runtime-event', onState);
  return {
    done,
    cancel() {
      events.removeListener('flows:started', onStarted);
      events.removeListener('runtime-event', onState);
    },
  };
}
