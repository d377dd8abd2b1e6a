// Processes a test started must not outlive it: when the test process ends - normally, by a
// timeout of node's test runner (SIGTERM) or by Ctrl-C - every child still registered here is
// killed with SIGKILL. t.after hooks stop them in the ordinary case; this is the safety net.
import type { ChildProcess } from 'node:child_process';

const children = new Set<ChildProcess>();
let installed = false;

function killAll(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  children.clear();
}

function install(): void {
  if (installed) return;
  installed = true;
  process.once('exit', killAll);
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAll();
      // The default action, now that our handler is gone: the process ends by the same signal.
      process.kill(process.pid, signal);
    });
  }
}

/** Kills `child` when this process ends, unless it has exited by then. */
export function reapOnExit(child: ChildProcess): void {
  install();
  children.add(child);
  child.once('exit', () => children.delete(child));
}
