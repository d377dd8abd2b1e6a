// The EXS SDK for programs, the seed's three calls:
//   const job = load('cobol_permit.sync.yaml');
//   const running = await start(job);            // or start([jobA, jobB]): one runtime per process
//   const log = await peekLog(job, { last: 3 });
import * as fs from 'node:fs';
import * as path from 'node:path';
import { contractToFlow, importContractText } from './flows/import';
import type { FlowNode } from './flows/flow-types';
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

/**
 * The file text each loaded contract came from. load() substitutes `${VAR}`; the flow is
 * built from the text instead, so references (secrets) are read at deploy, not stored.
 */
const loadedFrom = new WeakMap<Contract, { file: string; text: string; asLoaded: string }>();

/** Reads and validates a contract; throws ContractError listing every `FILE:LINE:COL` problem. */
export function load(file: string): Contract {
  const text = fs.readFileSync(file, 'utf8');
  const { contract, diagnostics } = parseContract(text, file);
  if (!contract) throw new ContractError(diagnostics.map(formatDiagnostic).join('\n'));
  loadedFrom.set(contract, { file, text, asLoaded: JSON.stringify(contract) });
  return contract;
}

export interface StartOptions {
  /** Node-RED user directory (flows, change logs); default `./.exs`. */
  userDir?: string;
  /** HTTP port; 0 picks a free one. Default 1880. */
  port?: number;
  /** Serve the editor too. Default false: a program usually wants the job, not the UI. */
  editor?: boolean;
  /** Extra Node-RED settings (credentialSecret, logging, adminAuth, ...). */
  settings?: Record<string, unknown>;
}

export interface RunningJob extends RunningRuntime {
  /** The job's id; with several jobs, the first one's. */
  id: string;
  /** Every job this runtime runs, in the order given. */
  ids: string[];
}

const userDirs = new Map<string, string>();

/**
 * The job's flow, with literal credentials for Node-RED's credential store. A contract from
 * load() is built from its file text with `${VAR}` kept; one built or changed by hand from
 * its values.
 */
function jobFlow(job: Contract): FlowNode[] {
  const source = loadedFrom.get(job);
  if (source && source.asLoaded === JSON.stringify(job)) {
    const [kept] = importContractText(source.text, source.file, { withCredentials: true }).contracts;
    if (kept) return contractToFlow({ ...kept, id: job.id }, { withCredentials: true });
  }
  return contractToFlow(job, { withCredentials: true });
}

/**
 * Runs the jobs in an embedded Node-RED; resolves once they are deployed. Node-RED is one
 * runtime per process: start several jobs together, or stop() the running one first.
 */
export async function start(jobs: Contract | Contract[], options: StartOptions = {}): Promise<RunningJob> {
  const list = Array.isArray(jobs) ? jobs : [jobs];
  if (list.length === 0) throw new Error('start() needs at least one contract');
  const ids = list.map((job) => job.id);
  const repeated = ids.find((id, index) => ids.indexOf(id) !== index);
  if (repeated) throw new Error(`start() got job '${repeated}' twice; each job runs once`);
  const userDir = path.resolve(options.userDir ?? '.exs');
  const runtime = await startRuntime({
    flows: list.flatMap(jobFlow),
    userDir,
    port: options.port ?? 1880,
    editor: options.editor ?? false,
    settings: options.settings,
    quiet: true,
  });
  for (const id of ids) userDirs.set(id, userDir);
  return { ...runtime, id: ids[0], ids };
}

/** The job's newest change-log entries, oldest first, read from its durable log. */
export function peekLog(job: Contract | string, options: { last?: number; userDir?: string } = {}): Promise<ChangeLogEntry[]> {
  const id = typeof job === 'string' ? job : job.id;
  const userDir = options.userDir ?? userDirs.get(id) ?? path.resolve('.exs');
  const dataDir = process.env.EXS_DATA_DIR ?? path.join(userDir, 'exs');
  return readChangeLogTail(changeLogPath(dataDir, id), options.last ?? 10);
}
