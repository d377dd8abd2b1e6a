// Runs the real `exs` command as a child process, the way ops run it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';

export const EXS_BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'exs.js');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** `exs ARGS...` to completion. */
export function exsSync(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [EXS_BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

export interface ExsRun {
  child: ChildProcess;
  output(): string;
  adminUrl: string;
  /** SIGTERM, then the exit code (null when it had to be killed). */
  stop(): Promise<number | null>;
}

export interface ExsRunOptions {
  /** The settings file's `httpAdminRoot` (e.g. '/admin'): adminUrl and the readiness check go under it. */
  adminRoot?: string;
  /** What GET <adminUrl>/settings answers once up: 401 when adminAuth is on. Default: any 2xx. */
  readyStatus?: number;
  /** Added to the child's environment (EXS_INSTANCE, say); a value of undefined removes a variable. */
  env?: NodeJS.ProcessEnv;
  /** Serve the editor too (browser tests); by default only the admin API. */
  editor?: boolean;
  /** Options for node itself, before the script (`--cpu-prof` for the benchmark's profiles). */
  nodeArgs?: string[];
}

/** Starts `exs run` and resolves once its admin API answers. */
export async function startExsRun(files: string[], userDir: string, extraArgs: string[] = [], options: ExsRunOptions = {}): Promise<ExsRun> {
  const port = await freePort();
  const editorArgs = options.editor ? [] : ['--no-editor'];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), EXS_BIN, 'run', ...files, ...editorArgs, '--port', String(port), '--user-dir', userDir, ...extraArgs], {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const adminUrl = `http://127.0.0.1:${port}${(options.adminRoot ?? '').replace(/\/+$/, '')}`;
  const ready = (status: number) => (options.readyStatus === undefined ? status >= 200 && status < 300 : status === options.readyStatus);
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`exs run exited with ${child.exitCode}:\n${output}`);
    try {
      const response = await fetch(`${adminUrl}/settings`);
      if (ready(response.status) && /running/.test(output)) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`exs run did not come up within 60 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    child,
    adminUrl,
    output: () => output,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
