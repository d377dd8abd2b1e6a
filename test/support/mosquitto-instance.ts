// A Mosquitto of the test's own: its own port, config and data directory, so a test can stop,
// restart or crash the broker without touching the machine's Mosquitto on 1883. Persistence is
// on and the per-client queue unlimited: Mosquitto's defaults (no persistence, 1000 queued
// messages per client, the rest dropped silently) would lose events no matter what EXS does.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { reapOnExit } from './child-reaper';
import { freePort } from './exs-process';
import { tempDir } from './services';

export const MOSQUITTO_BIN = process.env.EXS_TEST_MOSQUITTO_BIN ?? '/usr/sbin/mosquitto';

export interface MosquittoOptions {
  /** Default: a free port. */
  port?: number;
  /** Default: a new temporary directory. */
  dir?: string;
  /** More lines for mosquitto.conf. */
  extraConfig?: string[];
  /** How long start() waits for the port to answer. Default 15 s. */
  startTimeoutMs?: number;
}

export interface MosquittoInstance {
  readonly port: number;
  readonly url: string;
  /** Config, persistence database and log live here. */
  readonly dir: string;
  readonly running: boolean;
  /** Starts the broker (again) on the same port and data; resolves once the port answers. */
  start(): Promise<void>;
  /** SIGTERM, then waits for the exit (Mosquitto saves its database on the way out). SIGKILL after 10 s. */
  stop(): Promise<void>;
  /** SIGKILL: no final save; what autosave wrote is all that survives. */
  crash(): Promise<void>;
  /** stop() then start(). */
  restart(): Promise<void>;
  /** The broker's log file so far (every run of it). */
  log(): string;
}

/** Whether the installed Mosquitto can be started at all (for a skip with a reason). */
export function mosquittoInstalled(): boolean {
  try {
    fs.accessSync(MOSQUITTO_BIN, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(500);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function startMosquitto(options: MosquittoOptions = {}): Promise<MosquittoInstance> {
  const port = options.port ?? (await freePort());
  const dir = options.dir ?? tempDir('mosquitto');
  fs.mkdirSync(dir, { recursive: true });
  const logFile = path.join(dir, 'mosquitto.log');
  const confFile = path.join(dir, 'mosquitto.conf');
  const runningAsRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const config = [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    'persistence true',
    `persistence_location ${dir}/`,
    'autosave_interval 1',
    // 0 = unlimited. The default (1000) drops what a lagging or offline subscriber cannot take.
    'max_queued_messages 0',
    'max_inflight_messages 20',
    // As root Mosquitto switches to the `mosquitto` user, who could not write this directory.
    ...(runningAsRoot ? ['user root'] : []),
    `log_dest file ${logFile}`,
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    'log_type subscribe',
    'connection_messages true',
    'log_timestamp_format %Y-%m-%dT%H:%M:%S',
    ...(options.extraConfig ?? []),
  ];
  fs.writeFileSync(confFile, config.join('\n') + '\n');

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let stderr = '';

  const instance: MosquittoInstance = {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    dir,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    async start() {
      if (instance.running) return;
      stderr = '';
      const started = spawn(MOSQUITTO_BIN, ['-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'] });
      child = started;
      reapOnExit(started);
      started.stderr!.on('data', (d) => (stderr += d));
      exited = new Promise((resolve) => started.once('exit', () => resolve()));
      started.once('error', (err) => (stderr += `spawn failed: ${err.message}\n`));
      const deadline = Date.now() + (options.startTimeoutMs ?? 15_000);
      for (;;) {
        if (started.exitCode !== null || started.signalCode !== null) {
          throw new Error(`mosquitto on port ${port} exited at start (${started.exitCode ?? started.signalCode}):\n${stderr}\n${instance.log()}`);
        }
        if (await portAnswers(port)) return;
        if (Date.now() > deadline) {
          started.kill('SIGKILL');
          throw new Error(`mosquitto did not answer on port ${port} within ${options.startTimeoutMs ?? 15_000} ms:\n${stderr}\n${instance.log()}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      if (!child || !instance.running) return;
      const stopping = child;
      stopping.kill('SIGTERM');
      const timer = setTimeout(() => stopping.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
    async crash() {
      if (!child || !instance.running) return;
      child.kill('SIGKILL');
      await exited;
    },
    async restart() {
      await instance.stop();
      await instance.start();
    },
    log() {
      try {
        return fs.readFileSync(logFile, 'utf8');
      } catch {
        return '';
      }
    },
  };
  await instance.start();
  return instance;
}
