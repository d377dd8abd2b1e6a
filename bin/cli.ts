// `exs`: the command line for ops. Every command is a thin shell around the core, the
// importer and the embedded runtime, so what it does is what the editor and SDK do.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { exportContracts } from '../flows/export';
import { mergeFlows, type FlowNode } from '../flows/flow-types';
import { importContractText, KEEP_REFERENCES_ENV, literalCredentialWarning } from '../flows/import';
import { parseContract } from '../nodes/core/contract/load';
import { didYouMean } from '../nodes/core/did-you-mean';
import type { DeadLetter } from '../nodes/core/queue/dead-letters';
import type { ParkedRecord } from '../nodes/core/sync-job';
import { formatDiagnostic, type ChangeLogEntry, type Diagnostic } from '../nodes/core/types';
import { startRuntime } from './embedded-runtime';

export class UsageError extends Error {}

interface ParsedArgs {
  positional: string[];
  options: Record<string, string | boolean>;
}

/** Flags that take a value; everything else starting with `-` is a switch. */
const VALUE_FLAGS = new Set(['-o', '--output', '--port', '--user-dir', '--last', '--url', '--token', '--settings', '--host', '--resolve', '--take']);

/** Each command's flags besides --help: a misspelt flag is an error, not silently ignored. */
const COMMAND_FLAGS: Record<string, string[]> = {
  validate: ['--keep-env-references'],
  import: ['-o', '--output', '--with-credentials'],
  export: ['-o', '--output'],
  run: ['--port', '--host', '--user-dir', '--no-editor', '--settings'],
  log: ['--last', '--url', '--token', '--json'],
  dlq: ['--replay', '--url', '--token', '--json'],
  conflicts: ['--resolve', '--take', '--url', '--token', '--json'],
  flush: ['--url', '--token'],
  demo: ['--port', '--user-dir'],
};

function checkFlags(command: string, args: ParsedArgs): void {
  const allowed = COMMAND_FLAGS[command] ?? [];
  for (const flag of Object.keys(args.options)) {
    if (!allowed.includes(flag)) {
      throw new UsageError(`exs ${command}: unknown option '${flag}'${didYouMean(flag, allowed)}\n\n${HELP[command]}`);
    }
  }
}

function parseArgs(argv: string[]): ParsedArgs {
  const positional: string[] = [];
  const options: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('-') && arg !== '-') {
      // Split at the first '=' only: `--url=http://host/?a=b` keeps its whole value.
      const equals = arg.indexOf('=');
      const flag = equals < 0 ? arg : arg.slice(0, equals);
      const inline = equals < 0 ? undefined : arg.slice(equals + 1);
      if (VALUE_FLAGS.has(flag)) {
        const value = inline ?? argv[++i];
        if (value === undefined) throw new UsageError(`${flag} needs a value`);
        options[flag] = value;
      } else {
        options[flag] = true;
      }
    } else {
      positional.push(arg);
    }
  }
  return { positional, options };
}

const HELP: Record<string, string> = {
  main: `exs - EXS sync contracts for Node-RED

Usage: exs <command> [options]

Commands:
  validate FILE...            check contracts; exit 0 when all are valid, 1 otherwise
  import FILE... [-o FLOW]    turn contracts into a Node-RED flow (one tab per contract)
  export FLOW [-o DIR]        turn a flow's EXS tabs back into sync.yaml contracts
  run FILE... [--port N]      run the contracts in an embedded Node-RED
  log JOB_ID [--last N]       show a running job's newest change-log entries
  dlq JOB_ID [--replay [ID...]]  list a job's dead letters, or send them through again
  conflicts JOB_ID [--resolve KEY --take hms|destination]
                              list a job's parked (MANUAL) conflicts, or settle one
  flush JOB_ID                apply a held (hourly/nightly/cron) job's events now
  demo [--port N]             the seed's contract on an embedded broker and SQLite

Run 'exs <command> --help' for a command's options.`,
  validate: `Usage: exs validate FILE... [--keep-env-references]

Checks each sync.yaml and prints problems as FILE:LINE:COL: message.
Exit status: 0 when every file is valid (warnings allowed), 1 otherwise.

  --keep-env-references   do not require \${VAR} references to be set`,
  import: `Usage: exs import FILE... [-o FLOW.json] [--with-credentials]

Writes a Node-RED flow with one tab per contract, wired
exs source -> sync queue -> mapper -> conflict resolver -> connector -> change log.
Node ids derive from the contract id: importing into an existing FLOW.json replaces
the contract's tab and keeps everything else. Without -o the flow goes to stdout.

  -o, --output FLOW.json   write (or update) this flow file
  --with-credentials       keep literal connector user/password as node credentials
                           (by default they are left out of flow files; use \${VAR})`,
  export: `Usage: exs export FLOW.json [-o DIR]

Prints every EXS job in the flow as a sync.yaml contract ('---' between them),
or writes DIR/<id>.sync.yaml with -o.`,
  run: `Usage: exs run FILE... [--port N] [--host H] [--user-dir DIR] [--no-editor] [--settings FILE]

Starts Node-RED with the EXS nodes and the contracts' flows deployed.
SIGTERM or Ctrl-C stops it cleanly.

  --port N          HTTP port (default 1880)
  --host H          address to listen on (default 127.0.0.1)
  --user-dir DIR    Node-RED user directory (default ./.exs): flows, change logs
  --no-editor       serve the admin API only, no editor
  --settings FILE   a Node-RED settings.js whose exports are merged in (adminAuth, ...)`,
  log: `Usage: exs log JOB_ID [--last N] [--url URL] [--token TOKEN] [--json]

Reads GET /exs/jobs/JOB_ID/log?last=N from a running EXS.

  --last N        how many entries (default 10)
  --url URL       Node-RED admin URL (default http://127.0.0.1:1880)
  --token TOKEN   bearer token when adminAuth is on (or EXS_TOKEN)
  --json          print the entries as JSON`,
  dlq: `Usage: exs dlq JOB_ID [--replay [ID...]] [--url URL] [--token TOKEN] [--json]

Lists the job's dead letters (id, time, attempts, reason, event), read from a running EXS
through GET /exs/jobs/JOB_ID/dlq. With --replay, sends the named letters (all when no id is
given) through the job again as new events (POST /exs/jobs/JOB_ID/dlq/replay).

  --url URL       Node-RED admin URL (default http://127.0.0.1:1880)
  --token TOKEN   bearer token when adminAuth is on (or EXS_TOKEN)`,
  conflicts: `Usage: exs conflicts JOB_ID [--resolve KEY --take hms|destination] [--url URL] [--token TOKEN] [--json]

Lists the job's parked MANUAL conflicts (key, since, version, and per column the value EXS last
wrote, the waiting HMS value and the destination's current one), read from a running EXS through
GET /exs/jobs/JOB_ID/conflicts. With --resolve, settles the record KEY: --take hms writes the
waiting HMS values, --take destination keeps the destination's
(POST /exs/jobs/JOB_ID/conflicts/resolve). The decision goes to the change log.

  --resolve KEY       the parked record to settle (needs --take)
  --take SIDE         hms or destination
  --url URL           Node-RED admin URL (default http://127.0.0.1:1880)
  --token TOKEN       bearer token when adminAuth is on (or EXS_TOKEN)
  --json              print the answer as JSON`,
  flush: `Usage: exs flush JOB_ID [--url URL] [--token TOKEN]

Applies a held job's events now instead of at its next hourly, nightly or cron time,
writing only the newest event of each record (POST /exs/jobs/JOB_ID/flush).`,
  demo: `Usage: exs demo [--port N] [--user-dir DIR]

Runs the seed's PermitStatus_To_COBOL contract with no services needed: an in-process
MQTT broker (or the one already on EXS_MQTT_URL / 127.0.0.1:1883) and a SQLite database
through its ODBC driver as the mainframe. Open http://127.0.0.1:1880 and click the
inject nodes on the 'HMS simulator' tab to emit permit status changes.`,
};

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

function readContract(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}

/** A Node-RED flow file (a JSON array of nodes), with errors for people. */
function readFlowFile(file: string): FlowNode[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  let flow: unknown;
  try {
    flow = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${file}: not a Node-RED flow file (invalid JSON: ${(err as Error).message})`);
  }
  if (!Array.isArray(flow)) throw new UsageError(`${file}: not a Node-RED flow file (expected a JSON array of nodes)`);
  return flow as FlowNode[];
}

function report(diagnostics: Diagnostic[], io: Io): boolean {
  for (const d of diagnostics) io.err(formatDiagnostic(d));
  return diagnostics.every((d) => d.severity !== 'error');
}

function needFiles(files: string[], command: string): void {
  if (files.length === 0) throw new UsageError(`exs ${command}: name at least one sync.yaml file\n\n${HELP[command]}`);
}

/** Contracts -> flow nodes, reporting problems; throws when any contract is invalid. */
export function importFiles(files: string[], io: Io, withCredentials = false): FlowNode[] {
  const nodes: FlowNode[] = [];
  let valid = true;
  for (const file of files) {
    const result = importContractText(readContract(file), file, { withCredentials });
    valid = report(result.diagnostics, io) && valid;
    for (const contract of result.contracts) {
      const warning = withCredentials ? undefined : literalCredentialWarning(contract, file);
      if (warning) io.err(warning);
    }
    nodes.push(...result.nodes);
  }
  if (!valid) throw new UsageError('no flow written: fix the errors above');
  return nodes;
}

function commandValidate(args: ParsedArgs, io: Io): number {
  needFiles(args.positional, 'validate');
  let allValid = true;
  for (const file of args.positional) {
    // The importer's environment: references stay as written, the broker default still applies.
    const env = args.options['--keep-env-references'] ? KEEP_REFERENCES_ENV : process.env;
    const { diagnostics } = parseContract(readContract(file), file, env);
    const valid = report(diagnostics, io);
    io.out(`${file}: ${valid ? 'valid' : 'invalid'}`);
    allValid &&= valid;
  }
  return allValid ? 0 : 1;
}

function commandImport(args: ParsedArgs, io: Io): number {
  needFiles(args.positional, 'import');
  const nodes = importFiles(args.positional, io, Boolean(args.options['--with-credentials']));
  const output = (args.options['-o'] ?? args.options['--output']) as string | undefined;
  if (!output) {
    io.out(JSON.stringify(nodes, null, 2));
    return 0;
  }
  const existing: FlowNode[] = fs.existsSync(output) ? readFlowFile(output) : [];
  fs.writeFileSync(output, JSON.stringify(mergeFlows(existing, nodes), null, 2) + '\n');
  io.err(`${output}: ${args.positional.length} contract(s) imported`);
  return 0;
}

function commandExport(args: ParsedArgs, io: Io): number {
  const [flowFile] = args.positional;
  if (!flowFile) throw new UsageError(`exs export: name a flow file\n\n${HELP.export}`);
  let contracts: ReturnType<typeof exportContracts>;
  try {
    contracts = exportContracts(readFlowFile(flowFile));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${flowFile}: ${(err as Error).message}`);
  }
  if (contracts.length === 0) throw new UsageError(`${flowFile}: no EXS job in this flow`);
  const outDir = (args.options['-o'] ?? args.options['--output']) as string | undefined;
  if (outDir) {
    fs.mkdirSync(outDir, { recursive: true });
    for (const c of contracts) fs.writeFileSync(path.join(outDir, `${c.id}.sync.yaml`), c.yaml);
    io.err(`${contracts.length} contract(s) written to ${outDir}`);
  } else {
    io.out(contracts.map((c) => c.yaml.trimEnd()).join('\n---\n'));
  }
  return 0;
}

function intOption(args: ParsedArgs, flag: string, fallback: number): number {
  const raw = args.options[flag];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new UsageError(`${flag} must be a whole number (got '${raw}')`);
  return value;
}

function loadSettingsFile(file: string | undefined): Record<string, unknown> | undefined {
  if (!file) return undefined;
  return require(path.resolve(file));
}

/** Resolves when the process is told to stop; the runtime is stopped before exiting. */
export function stopOnSignals(stop: () => Promise<void>, io: Io): void {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) return;
    stopping = true;
    io.err(`exs: ${signal}, stopping`);
    stop().then(
      () => process.exit(0),
      (err) => {
        io.err(`exs: stop failed: ${(err as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => handler('SIGTERM'));
  process.once('SIGINT', () => handler('SIGINT'));
}

async function commandRun(args: ParsedArgs, io: Io): Promise<number> {
  needFiles(args.positional, 'run');
  const flows = importFiles(args.positional, io, true);
  const runtime = await startRuntime({
    flows,
    userDir: (args.options['--user-dir'] as string) ?? '.exs',
    port: intOption(args, '--port', 1880),
    host: args.options['--host'] as string | undefined,
    editor: !args.options['--no-editor'],
    settings: loadSettingsFile(args.options['--settings'] as string | undefined),
  });
  io.err(`exs: Node-RED ${runtime.nodeRedVersion} running ${args.positional.length} contract(s) at ${runtime.url} (user dir ${runtime.userDir})`);
  stopOnSignals(() => runtime.stop(), io);
  return new Promise<number>(() => undefined);
}

function formatEntry(e: ChangeLogEntry): string {
  const key = e.key === null || e.key === undefined ? '-' : typeof e.key === 'string' ? e.key : JSON.stringify(e.key);
  const detail = e.error ? `  ${e.error}` : e.after ? `  ${JSON.stringify(e.after)}` : '';
  // Why the law kept, parked or resolved a row; an applied write needs no explaining unless both sides changed it.
  const why = e.reason && (e.outcome !== 'applied' || e.conflicts) ? `  (${e.reason})` : '';
  return `${e.time}  #${e.seq}  ${key}  ${e.outcome} (${e.dest_row})  ${e.latency_ms} ms  attempts ${e.attempts}${detail}${why}`;
}

/** Calls an EXS admin endpoint of a running Node-RED; errors become one readable line. */
async function adminRequest(args: ParsedArgs, path: string, method: 'GET' | 'POST' = 'GET', body?: unknown): Promise<unknown> {
  const base = String(args.options['--url'] ?? process.env.EXS_URL ?? 'http://127.0.0.1:1880').replace(/\/+$/, '');
  const token = (args.options['--token'] as string | undefined) ?? process.env.EXS_TOKEN;
  const url = `${base}${path}`;
  const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new UsageError(`cannot reach ${base}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`);
  }
  if (response.status === 401) throw new UsageError(`${url}: HTTP 401: adminAuth is on; pass --token TOKEN (or EXS_TOKEN)`);
  if (!response.ok) throw new UsageError(`${url}: HTTP ${response.status} ${await response.text()}`);
  try {
    return await response.json();
  } catch {
    throw new UsageError(`${url}: the answer is not from EXS (is ${base} the Node-RED admin URL?)`);
  }
}

function jobPath(args: ParsedArgs, command: string, suffix: string): string {
  const [jobId] = args.positional;
  if (!jobId) throw new UsageError(`exs ${command}: name a job id\n\n${HELP[command]}`);
  return `/exs/jobs/${encodeURIComponent(jobId)}${suffix}`;
}

async function commandLog(args: ParsedArgs, io: Io): Promise<number> {
  const last = intOption(args, '--last', 10);
  const entries = await adminRequest(args, jobPath(args, 'log', `/log?last=${last}`));
  if (!Array.isArray(entries)) throw new UsageError('the answer is not an EXS change log (is --url the Node-RED admin URL?)');
  if (args.options['--json']) io.out(JSON.stringify(entries, null, 2));
  else if (entries.length === 0) io.out(`no change-log entries for ${args.positional[0]}`);
  else for (const entry of entries as ChangeLogEntry[]) io.out(formatEntry(entry));
  return 0;
}

async function commandDlq(args: ParsedArgs, io: Io): Promise<number> {
  if (args.options['--replay']) {
    const ids = args.positional.slice(1).map((id) => {
      if (!/^\d+$/.test(id)) throw new UsageError(`dead-letter ids are numbers (got '${id}')`);
      return Number(id);
    });
    const answer = (await adminRequest(args, jobPath(args, 'dlq', '/dlq/replay'), 'POST', ids.length ? { ids } : {})) as { replayed: number[] };
    io.out(answer.replayed.length ? `replayed ${answer.replayed.length}: ${answer.replayed.join(', ')}` : 'nothing to replay');
    return 0;
  }
  const letters = (await adminRequest(args, jobPath(args, 'dlq', '/dlq'))) as DeadLetter[];
  if (args.options['--json']) io.out(JSON.stringify(letters, null, 2));
  else if (letters.length === 0) io.out(`no dead letters for ${args.positional[0]}`);
  else for (const l of letters) io.out(`#${l.id}  ${l.deadAt}  attempts ${l.attempts}  ${l.error}  ${l.event.slice(0, 120)}`);
  return 0;
}

/** One parked record as a block: key, since, version, then `COLUMN: old=... new=... current=...`. */
function formatParked(record: ParkedRecord): string[] {
  const value = (v: unknown) => JSON.stringify(v ?? null);
  const head = `${record.key}  since ${record.since}  version ${record.version ?? '-'}`;
  return [head, ...Object.entries(record.fields ?? {}).map(([column, f]) => `  ${column}: old=${value(f.old)} new=${value(f.new)} current=${value(f.current)}`)];
}

async function commandConflicts(args: ParsedArgs, io: Io): Promise<number> {
  const key = args.options['--resolve'];
  const take = args.options['--take'];
  if (key !== undefined) {
    if (take === undefined) throw new UsageError(`exs conflicts: --resolve needs --take hms or --take destination\n\n${HELP.conflicts}`);
    if (take !== 'hms' && take !== 'destination') throw new UsageError(`--take must be 'hms' or 'destination' (got '${take}')`);
    const answer = (await adminRequest(args, jobPath(args, 'conflicts', '/conflicts/resolve'), 'POST', { key, take })) as { resolved: string; entry?: ChangeLogEntry };
    if (args.options['--json']) io.out(JSON.stringify(answer, null, 2));
    else io.out(`resolved ${answer.resolved}: ${answer.entry?.reason ?? `${take} taken`}`);
    return 0;
  }
  if (take !== undefined) throw new UsageError(`exs conflicts: --take goes with --resolve KEY\n\n${HELP.conflicts}`);
  const records = await adminRequest(args, jobPath(args, 'conflicts', '/conflicts'));
  if (!Array.isArray(records)) throw new UsageError('the answer is not a list of EXS conflicts (is --url the Node-RED admin URL?)');
  if (args.options['--json']) io.out(JSON.stringify(records, null, 2));
  else if (records.length === 0) io.out(`no parked conflicts for ${args.positional[0]}`);
  else io.out((records as ParkedRecord[]).map((r) => formatParked(r).join('\n')).join('\n\n'));
  return 0;
}

async function commandFlush(args: ParsedArgs, io: Io): Promise<number> {
  const state = (await adminRequest(args, jobPath(args, 'flush', '/flush'), 'POST')) as { depth: number };
  io.out(`flushed ${args.positional[0]}: ${state.depth} event(s) still queued`);
  return 0;
}

const COMMANDS: Record<string, (args: ParsedArgs, io: Io) => number | Promise<number>> = {
  validate: commandValidate,
  import: commandImport,
  export: commandExport,
  run: commandRun,
  log: commandLog,
  dlq: commandDlq,
  conflicts: commandConflicts,
  flush: commandFlush,
  demo: async (args, io) => (await import('./demo.js')).commandDemo(args.options, io),
};

export async function main(argv: string[], io: Io): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    io.out(HELP[rest[0]] ?? HELP.main);
    return 0;
  }
  const run = COMMANDS[command];
  if (!run) {
    io.err(`exs: unknown command '${command}'\n\n${HELP.main}`);
    return 2;
  }
  try {
    const args = parseArgs(rest);
    if (args.options['--help'] || args.options['-h']) {
      io.out(HELP[command]);
      return 0;
    }
    checkFlags(command, args);
    return await run(args, io);
  } catch (err) {
    io.err(err instanceof UsageError ? err.message : `exs ${command}: ${(err as Error).stack ?? err}`);
    return err instanceof UsageError ? 1 : 2;
  }
}
