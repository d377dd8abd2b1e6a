// The EXS SDK for programs, the seed's three calls:
//   const job = load('cobol_permit.sync.yaml');
//   const running = await start(job);
//   const log = await peekLog(job, { last: 3 });
import * as fs from 'node:fs';
import * as path from 'node:path';
import { contractToFlow } from './flows/import';
import { startRuntime, type RunningRuntime } from './bin/embedded-runtime';
import { changeLogPath, readChangeLogTail } from './nodes/core/changelog-store';
import { parseContract } from './nodes/core/contract/load';
import { formatDiagnostic, type ChangeLogEntry, type Contract } from './nodes/core/types';

export type { ChangeLogEntry, Contract, MappedRecord, SyncConnector, ApplyResult } from './nodes/core/types';
export { parseContract } from './nodes/core/contract/load';
export { applyMapping, parseMapping } from './nodes/core/mapping';
export { exportContracts } from './flows/export';
export { importContractText } from './flows/import';

export class ContractError extends Error {}

/** Reads and validates a contract; throws ContractError listing every `FILE:LINE:COL` problem. */
export function load(file: string): Contract {
  const { contract, diagnostics } = parseContract(fs.readFileSync(file, 'utf8'), file);
  if (!contract) throw new ContractError(diagnostics.map(formatDiagnostic).join('\n'));
  return contract;
}

export interface StartOptions {
  /** Node-RED user directory (flows, change logs); default `./.exs`. */
  userDir?: string;
  /** HTTP port; 0 picks a free one. Default 1880. */
  port?: number;
  /** Serve the editor too. Default false: a program usually wants the job, not the UI. */
  editor?: boolean;
}

export interface RunningJob extends RunningRuntime {
  id: string;
}

const userDirs = new Map<string, string>();

/** Runs the job in an embedded Node-RED; resolves once it is deployed. */
export async function start(job: Contract, options: StartOptions = {}): Promise<RunningJob> {
  const userDir = path.resolve(options.userDir ?? '.exs');
  const runtime = await startRuntime({
    flows: contractToFlow(job, { withCredentials: true }),
    userDir,
    port: options.port ?? 1880,
    editor: options.editor ?? false,
    quiet: true,
  });
  userDirs.set(job.id, userDir);
  return { ...runtime, id: job.id };
}

/** The job's newest change-log entries, oldest first, read from its durable log. */
export function peekLog(job: Contract | string, options: { last?: number; userDir?: string } = {}): Promise<ChangeLogEntry[]> {
  const id = typeof job === 'string' ? job : job.id;
  const userDir = options.userDir ?? userDirs.get(id) ?? path.resolve('.exs');
  const dataDir = process.env.EXS_DATA_DIR ?? path.join(userDir, 'exs');
  return readChangeLogTail(changeLogPath(dataDir, id), options.last ?? 10);
}
