// The `exs` command as ops use it: exit codes, FILE:LINE:COL messages, help for every
// command, import/export round trips on real files, and no password in a flow file.
// main() runs in-process with a capturing io; one test spawns bin/exs.js for real.
import { describe, it, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { main } from '../../bin/cli';
import type { FlowNode } from '../../flows/flow-types';
import { EXS_BIN, exsSync, freePort } from '../support/exs-process';
import { tempDir } from '../support/services';

const root = path.resolve(__dirname, '..', '..', '..');
const fixtures = path.join(root, 'test', 'fixtures', 'contracts');
const examples = path.join(root, 'examples');
const SEED = path.join(fixtures, 'cobol_permit.sync.yaml');
const SMS_EXAMPLE = path.join(examples, 'sms_tracker.sync.yaml');
const COMMANDS = ['validate', 'import', 'export', 'run', 'log', 'dlq', 'conflicts', 'flush', 'demo'];

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function exs(...argv: string[]): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (text) => out.push(text), err: (text) => err.push(text) });
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line.trim() !== '');
}

function readFlow(file: string): FlowNode[] {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

function tabLabels(flow: FlowNode[]): string[] {
  return flow.filter((n) => n.type === 'tab').map((n) => String(n.label)).sort();
}

/** The line `# expect: LINE:COL: message` at the top of each broken fixture. */
function expectedError(file: string): string {
  const match = /^# expect: (.*)$/m.exec(fs.readFileSync(file, 'utf8'));
  assert.ok(match, `${file} states the error it expects`);
  return match[1];
}

function permitContract(id: string, overrides: Record<string, string> = {}): string {
  const keys: Record<string, string> = {
    id,
    source_topic: 'permits.status',
    destination: 'COBOL_Mainframe',
    connector: 'odbc://mainframe-dsn',
    table: 'PERMIT_TABLE',
    key: 'HMS:permit_id -> COBOL:PERMIT_ID',
    mapping: '\n  - HMS:status -> COBOL:PERMIT_STAT | map(Approved=APPR, Pending=PEND)\n  - HMS:updated_at -> COBOL:LAST_CHG_TS',
    conflict_rule: 'HMS_WINS',
    ...overrides,
  };
  return Object.entries(keys).map(([key, value]) => `${key}: ${value}`).join('\n') + '\n';
}

function writeContract(dir: string, id: string, overrides: Record<string, string> = {}): string {
  const file = path.join(dir, `${id}.sync.yaml`);
  fs.writeFileSync(file, permitContract(id, overrides));
  return file;
}

/** A stand-in for a running EXS admin API, recording what `exs log` asked for. */
async function fakeAdmin(
  t: TestContext,
  answer: (url: string) => { status: number; body: string; type?: string },
): Promise<{ url: string; requests: string[]; calls: Array<{ method: string; url: string; body: string }> }> {
  const requests: string[] = [];
  const calls: Array<{ method: string; url: string; body: string }> = [];
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      requests.push(request.url ?? '');
      calls.push({ method: request.method ?? '', url: request.url ?? '', body });
      const answered = answer(request.url ?? '');
      response.writeHead(answered.status, { 'Content-Type': answered.type ?? 'application/json' });
      response.end(answered.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, calls };
}

describe('exs validate', () => {
  it('accepts the seed contract verbatim (exit 0) and prints its warnings as FILE:LINE:COL', async () => {
    const result = await exs('validate', SEED);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${SEED}: valid`);
    const warnings = lines(result.stderr);
    assert.ok(warnings.length > 0, 'the seed names no table or key, which is worth a warning');
    for (const warning of warnings) assert.match(warning, new RegExp(`^${SEED.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: warning: `));
    assert.ok(warnings.includes(`${SEED}:1:1: warning: 'table' is not set; EXS needs it to write rows (for example: table: PERMIT_TABLE)`));
  });

  it('rejects a misspelt key (exit 1) with the exact FILE:LINE:COL message and a suggestion', async () => {
    const file = path.join(fixtures, 'broken-misspelt-key.sync.yaml');
    const result = await exs('validate', file);
    assert.equal(result.code, 1);
    assert.equal(result.stdout, `${file}: invalid`);
    assert.ok(lines(result.stderr).includes(`${file}:11:1: unknown key 'conflict_rul' (did you mean 'conflict_rule'?)`), result.stderr);
  });

  it('prints the expected FILE:LINE:COL error for every broken fixture', async () => {
    const broken = fs.readdirSync(fixtures).filter((f) => f.startsWith('broken-')).map((f) => path.join(fixtures, f));
    assert.ok(broken.length >= 10, 'at least ten broken contracts are covered');
    for (const file of broken) {
      const result = await exs('validate', file);
      assert.equal(result.code, 1, `${path.basename(file)} is invalid`);
      assert.ok(lines(result.stderr).includes(`${file}:${expectedError(file)}`), `${path.basename(file)} prints:\n${result.stderr}`);
    }
  });

  it('fails the whole run when one of several files is invalid', async () => {
    const broken = path.join(fixtures, 'broken-bad-enum.sync.yaml');
    const result = await exs('validate', SEED, broken);
    assert.equal(result.code, 1);
    assert.deepEqual(lines(result.stdout), [`${SEED}: valid`, `${broken}: invalid`]);
  });

  it('requires ${VAR} references to be set unless --keep-env-references is given', async (t) => {
    const saved = process.env.EXS_DEMO_DB;
    delete process.env.EXS_DEMO_DB;
    t.after(() => {
      if (saved !== undefined) process.env.EXS_DEMO_DB = saved;
    });
    const file = path.join(examples, 'cobol_permit.sync.yaml');
    const strict = await exs('validate', file);
    assert.equal(strict.code, 1);
    assert.match(strict.stderr, /cobol_permit\.sync\.yaml:\d+:\d+: environment variable 'EXS_DEMO_DB' is not set/);
    const kept = await exs('validate', '--keep-env-references', file);
    assert.equal(kept.code, 0, kept.stderr);
  });

  it('says so when a file does not exist (exit 1, no stack trace)', async () => {
    const result = await exs('validate', '/nonexistent/permit.sync.yaml');
    assert.equal(result.code, 1);
    assert.equal(result.stderr, '/nonexistent/permit.sync.yaml: no such file');
  });
});

describe('exs help', () => {
  for (const command of COMMANDS) {
    it(`exs ${command} --help prints its usage and exits 0`, async () => {
      for (const flag of ['--help', '-h']) {
        const result = await exs(command, flag);
        assert.equal(result.code, 0);
        assert.match(result.stdout, new RegExp(`^Usage: exs ${command}\\b`), `${command} ${flag}`);
      }
      const viaHelp = await exs('help', command);
      assert.equal(viaHelp.code, 0);
      assert.equal(viaHelp.stdout, (await exs(command, '--help')).stdout, `exs help ${command} is the same text`);
    });
  }

  it('exs help, exs --help and plain exs list every command', async () => {
    for (const argv of [['help'], ['--help'], []]) {
      const result = await exs(...argv);
      assert.equal(result.code, 0);
      for (const command of COMMANDS) assert.match(result.stdout, new RegExp(`^  ${command}\\b`, 'm'), `${argv.join(' ')} lists ${command}`);
    }
  });

  it('an unknown command exits 2 and shows the commands', async () => {
    const result = await exs('frobnicate', 'x.sync.yaml');
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^exs: unknown command 'frobnicate'/);
    assert.match(result.stderr, /^  validate\b/m);
  });

  it('a misspelt option is an error with a suggestion, not silently ignored', async () => {
    const result = await exs('import', SEED, '--outptu', 'flow.json');
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^exs import: unknown option '--outptu' \(did you mean '--output'\?\)/);
    assert.equal(result.stdout, '', 'no flow is printed');
  });

  it('bin/exs.js --help runs as a real process and exits 0', () => {
    assert.ok(fs.existsSync(EXS_BIN), EXS_BIN);
    const result = exsSync(['--help']);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^exs - EXS sync contracts for Node-RED/);
    assert.match(result.stdout, /^  import FILE\.\.\./m);
  });
});

describe('exs import', () => {
  it('writes one tab per contract, and importing again replaces them and keeps the user\'s own tab', async () => {
    const dir = tempDir('cli-import');
    const permits = writeContract(dir, 'Permit_Sync');
    const flowFile = path.join(dir, 'flow.json');
    const userTab: FlowNode = { id: 'user-tab', type: 'tab', label: 'My dashboard', disabled: false, info: '' };
    const userNode: FlowNode = { id: 'user-debug', type: 'debug', z: 'user-tab', name: 'mine', wires: [] };
    fs.writeFileSync(flowFile, JSON.stringify([userTab, userNode], null, 2));

    const first = await exs('import', permits, SMS_EXAMPLE, '-o', flowFile);
    assert.equal(first.code, 0, first.stderr);
    const afterFirst = readFlow(flowFile);
    assert.deepEqual(tabLabels(afterFirst), ['My dashboard', 'PermitStatus_To_SMS', 'Permit_Sync']);

    // The same contracts again, one of them changed: still one tab each, with the change.
    writeContract(dir, 'Permit_Sync', { conflict_rule: 'LAST_WRITE_WINS' });
    const second = await exs('import', permits, SMS_EXAMPLE, '--output', flowFile);
    assert.equal(second.code, 0, second.stderr);
    const afterSecond = readFlow(flowFile);
    assert.deepEqual(tabLabels(afterSecond), ['My dashboard', 'PermitStatus_To_SMS', 'Permit_Sync']);
    assert.equal(afterSecond.length, afterFirst.length, 'no node is duplicated');
    assert.deepEqual(new Set(afterSecond.map((n) => n.id)).size, afterSecond.length, 'ids are unique');
    const job = afterSecond.find((n) => n.type === 'exs-job' && n.jobId === 'Permit_Sync');
    assert.equal(job?.conflict_rule, 'LAST_WRITE_WINS', 'the tab holds the new version');
    assert.deepEqual(afterSecond.find((n) => n.id === 'user-tab'), userTab, "the user's tab is kept as it was");
    assert.deepEqual(afterSecond.find((n) => n.id === 'user-debug'), userNode, "the user's node is kept as it was");
  });

  it('prints the flow to stdout without -o', async () => {
    const result = await exs('import', SMS_EXAMPLE);
    assert.equal(result.code, 0, result.stderr);
    const flow = JSON.parse(result.stdout) as FlowNode[];
    assert.deepEqual(tabLabels(flow), ['PermitStatus_To_SMS']);
    assert.ok(flow.some((n) => n.type === 'exs-mqtt-connector'));
  });

  it('writes no flow when a contract is invalid (exit 1)', async () => {
    const dir = tempDir('cli-import-invalid');
    const flowFile = path.join(dir, 'flow.json');
    const broken = path.join(fixtures, 'broken-misspelt-key.sync.yaml');
    const result = await exs('import', SMS_EXAMPLE, broken, '-o', flowFile);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /broken-misspelt-key\.sync\.yaml:11:1: unknown key 'conflict_rul'/);
    assert.equal(fs.existsSync(flowFile), false);
  });

  it('refuses to merge into a file that is not a flow, and leaves it untouched', async () => {
    const dir = tempDir('cli-import-bad-flow');
    const flowFile = path.join(dir, 'flow.json');
    fs.writeFileSync(flowFile, '{"not": "a flow"');
    const result = await exs('import', SMS_EXAMPLE, '-o', flowFile);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /flow\.json: not a Node-RED flow file \(invalid JSON/);
    assert.equal(fs.readFileSync(flowFile, 'utf8'), '{"not": "a flow"');
  });

  it('keeps a literal connector password out of the flow file (and out of its export)', async () => {
    const dir = tempDir('cli-secret');
    const contract = writeContract(dir, 'Secret_Sync', {
      connector: '"odbc:DRIVER={PostgreSQL Unicode};SERVER=db.example;DATABASE=permits;UID=clerk;PWD=s3cret-Pa55"',
    });
    const flowFile = path.join(dir, 'flow.json');
    const result = await exs('import', contract, '-o', flowFile);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /holds a literal password; it is not written to flow files/);
    const text = fs.readFileSync(flowFile, 'utf8');
    assert.doesNotMatch(text, /s3cret-Pa55/);
    assert.doesNotMatch(text, /PWD=/);
    const odbc = readFlow(flowFile).find((n) => n.type === 'exs-odbc');
    assert.match(String(odbc?.connector), /SERVER=db\.example/, 'the rest of the connection string is kept');

    const exported = await exs('export', flowFile);
    assert.equal(exported.code, 0, exported.stderr);
    assert.doesNotMatch(exported.stdout, /s3cret-Pa55/);
  });
});

describe('exs export', () => {
  it('prints YAML that imports back to the same nodes', async () => {
    const dir = tempDir('cli-export');
    const permits = writeContract(dir, 'Permit_Sync');
    const flowFile = path.join(dir, 'flow.json');
    assert.equal((await exs('import', permits, SMS_EXAMPLE, '-o', flowFile)).code, 0);

    const exported = await exs('export', flowFile);
    assert.equal(exported.code, 0, exported.stderr);
    const documents = exported.stdout.split(/^---$/m);
    assert.equal(documents.length, 2, 'one YAML document per job');
    const files = documents.map((yaml, i) => {
      const file = path.join(dir, `exported-${i}.sync.yaml`);
      fs.writeFileSync(file, yaml.trim() + '\n');
      return file;
    });
    const reimported = await exs('import', ...files);
    assert.equal(reimported.code, 0, reimported.stderr);
    assert.deepEqual(JSON.parse(reimported.stdout), readFlow(flowFile));
  });

  it('with -o DIR writes <id>.sync.yaml per job, each a valid contract', async () => {
    const dir = tempDir('cli-export-dir');
    const permits = writeContract(dir, 'Permit_Sync');
    const flowFile = path.join(dir, 'flow.json');
    assert.equal((await exs('import', permits, SMS_EXAMPLE, '-o', flowFile)).code, 0);
    const outDir = path.join(dir, 'contracts');

    const result = await exs('export', flowFile, '-o', outDir);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(fs.readdirSync(outDir).sort(), ['PermitStatus_To_SMS.sync.yaml', 'Permit_Sync.sync.yaml']);
    const files = fs.readdirSync(outDir).map((f) => path.join(outDir, f));
    const validated = await exs('validate', ...files);
    assert.equal(validated.code, 0, validated.stderr);
    const reimported = await exs('import', ...files);
    assert.deepEqual(JSON.parse(reimported.stdout).sort((a: FlowNode, b: FlowNode) => a.id.localeCompare(b.id)),
      readFlow(flowFile).sort((a, b) => a.id.localeCompare(b.id)));
  });

  it('says what is wrong with a missing flow file or one without EXS jobs (exit 1)', async () => {
    const missing = await exs('export', '/nonexistent/flow.json');
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, '/nonexistent/flow.json: no such file');

    const dir = tempDir('cli-export-empty');
    const flowFile = path.join(dir, 'flow.json');
    fs.writeFileSync(flowFile, JSON.stringify([{ id: 't', type: 'tab', label: 'plain' }]));
    const empty = await exs('export', flowFile);
    assert.equal(empty.code, 1);
    assert.equal(empty.stderr, `${flowFile}: no EXS job in this flow`);
  });
});

describe('exs log', () => {
  it('exits 1 with a readable message when nothing answers at --url', async () => {
    const port = await freePort();
    const result = await exs('log', 'PermitStatus_To_COBOL', '--url', `http://127.0.0.1:${port}`);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`^cannot reach http://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
    assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
  });

  it('asks the admin endpoint for the last N entries and prints one line each', async (t) => {
    const entry = (seq: number, key: string, outcome: string) => ({
      time: `2026-03-01T10:00:0${seq}.000Z`, job: 'Permit_Sync', seq, key, outcome, dest_row: outcome === 'applied' ? 'OK' : 'FAILED',
      attempts: 1, latency_ms: 12, after: { PERMIT_STAT: 'APPR' },
    });
    const admin = await fakeAdmin(t, () => ({ status: 200, body: JSON.stringify([entry(1, 'P-1', 'applied'), entry(2, 'P-2', 'applied')]) }));
    const result = await exs('log', 'Permit_Sync', '--last', '2', '--url', `${admin.url}/`);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(admin.requests, ['/exs/jobs/Permit_Sync/log?last=2']);
    const printed = lines(result.stdout);
    assert.equal(printed.length, 2);
    assert.match(printed[0], /#1\s+P-1\s+applied \(OK\)/);
    assert.match(printed[1], /#2\s+P-2\s+applied \(OK\)/);
  });

  it('reports an HTTP error or an answer that is not a change log (exit 1)', async (t) => {
    const admin = await fakeAdmin(t, (url) =>
      url.startsWith('/exs/jobs/Nope/') ? { status: 404, body: 'no job Nope' } : { status: 200, body: '<html>editor</html>', type: 'text/html' },
    );
    const notFound = await exs('log', 'Nope', '--url', admin.url);
    assert.equal(notFound.code, 1);
    assert.match(notFound.stderr, /HTTP 404 no job Nope/);
    const notExs = await exs('log', 'Permit_Sync', '--url', admin.url);
    assert.equal(notExs.code, 1);
    assert.match(notExs.stderr, /the answer is not (from EXS|an EXS change log)/);
  });
});

describe('exs dlq and exs flush', () => {
  const letter = { id: 17, job: 'Permit_Sync', event: '{"status":"Approved"}', error: "key field 'permit_id' is missing", attempts: 5, firstReceivedAt: '2026-03-01T10:00:00.000Z', deadAt: '2026-03-01T10:05:00.000Z' };

  it('lists the dead letters with id, attempts, reason and event', async (t) => {
    const admin = await fakeAdmin(t, () => ({ status: 200, body: JSON.stringify([letter]) }));
    const result = await exs('dlq', 'Permit_Sync', '--url', admin.url);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(admin.calls.map((c) => `${c.method} ${c.url}`), ['GET /exs/jobs/Permit_Sync/dlq']);
    assert.match(result.stdout, /^#17 .*attempts 5 .*key field 'permit_id' is missing .*\{"status":"Approved"\}/);
  });

  it('replays the named letters, or all of them, through POST .../dlq/replay', async (t) => {
    const admin = await fakeAdmin(t, () => ({ status: 200, body: JSON.stringify({ replayed: [17, 42] }) }));
    const named = await exs('dlq', 'Permit_Sync', '--replay', '17', '42', '--url', admin.url);
    assert.equal(named.code, 0, named.stderr);
    assert.equal(named.stdout, 'replayed 2: 17, 42');
    const all = await exs('dlq', 'Permit_Sync', '--replay', '--url', admin.url);
    assert.equal(all.code, 0, all.stderr);
    assert.deepEqual(admin.calls.map((c) => [c.method, c.url, c.body]), [
      ['POST', '/exs/jobs/Permit_Sync/dlq/replay', '{"ids":[17,42]}'],
      ['POST', '/exs/jobs/Permit_Sync/dlq/replay', '{}'],
    ]);
    const bad = await exs('dlq', 'Permit_Sync', '--replay', 'seventeen', '--url', admin.url);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /dead-letter ids are numbers/);
  });

  it('flushes a held job through POST .../flush', async (t) => {
    const admin = await fakeAdmin(t, () => ({ status: 200, body: JSON.stringify({ flushed: true, depth: 0 }) }));
    const result = await exs('flush', 'Nightly_Job', '--url', admin.url);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(admin.calls.map((c) => `${c.method} ${c.url}`), ['POST /exs/jobs/Nightly_Job/flush']);
    assert.match(result.stdout, /flushed Nightly_Job: 0 event\(s\) still queued/);
  });

  it('says what to do on 401 when adminAuth is on', async (t) => {
    const admin = await fakeAdmin(t, () => ({ status: 401, body: 'Unauthorized' }));
    const result = await exs('flush', 'Nightly_Job', '--url', admin.url);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /HTTP 401.*--token/);
  });
});

describe('exs conflicts', () => {
  const parked = {
    key: 'P-123',
    version: '2026-03-01T10:05:00.000Z',
    since: '2026-03-01T10:05:01.000Z',
    fields: { PERMIT_STAT: { old: 'PEND', new: 'APPR', current: 'HOLD' }, FEE_AMT: { old: 10, new: 12.5, current: null } },
  };
  const entry = {
    time: '2026-03-01T11:00:00.000Z', job: 'Permit_Sync', seq: 0, key: 'P-123', outcome: 'resolved', dest_row: 'RESOLVED',
    attempts: 0, latency_ms: 0, after: { PERMIT_STAT: 'APPR' }, reason: 'MANUAL: resolved, HMS taken for PERMIT_STAT, FEE_AMT',
  };

  it('exs conflicts --help names the endpoints and both sides', async () => {
    const result = await exs('conflicts', '--help');
    assert.equal(result.code, 0);
    assert.match(result.stdout, /^Usage: exs conflicts JOB_ID \[--resolve KEY --take hms\|destination\]/);
    assert.match(result.stdout, /GET \/exs\/jobs\/JOB_ID\/conflicts/);
    assert.match(result.stdout, /POST \/exs\/jobs\/JOB_ID\/conflicts\/resolve/);
  });

  it('lists one block per parked record: key, since, version, and old/new/current per column (JSON)', async (t) => {
    const admin = await fakeAdmin(t, () => ({ status: 200, body: JSON.stringify([parked, { ...parked, key: 'P-7', version: null, fields: { PERMIT_STAT: { old: null, new: 'PEND', current: 'APPR' } } }]) }));
    const result = await exs('conflicts', 'Permit_Sync', '--url', admin.url);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(admin.calls.map((c) => `${c.method} ${c.url}`), ['GET /exs/jobs/Permit_Sync/conflicts']);
    assert.deepEqual(result.stdout.split('\n'), [
      'P-123  since 2026-03-01T10:05:01.000Z  version 2026-03-01T10:05:00.000Z',
      '  PERMIT_STAT: old="PEND" new="APPR" current="HOLD"',
      '  FEE_AMT: old=10 new=12.5 current=null',
      '',
      'P-7  since 2026-03-01T10:05:01.000Z  version -',
      '  PERMIT_STAT: old=null new="PEND" current="APPR"',
    ]);

    const json = await exs('conflicts', 'Permit_Sync', '--url', admin.url, '--json');
    assert.equal(json.code, 0, json.stderr);
    assert.equal(JSON.parse(json.stdout)[0].key, 'P-123');
  });

  it('says so when nothing is parked', async (t) => {
    const admin = await fakeAdmin(t, () => ({ status: 200, body: '[]' }));
    const result = await exs('conflicts', 'Permit_Sync', '--url', admin.url);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'no parked conflicts for Permit_Sync');
  });

  it('settles one record through POST .../conflicts/resolve with {key, take}', async (t) => {
    const admin = await fakeAdmin(t, () => ({ status: 200, body: JSON.stringify({ resolved: 'P-123', entry }) }));
    const hms = await exs('conflicts', 'Permit_Sync', '--resolve', 'P-123', '--take', 'hms', '--url', admin.url);
    assert.equal(hms.code, 0, hms.stderr);
    assert.equal(hms.stdout, 'resolved P-123: MANUAL: resolved, HMS taken for PERMIT_STAT, FEE_AMT');
    const destination = await exs('conflicts', 'Permit_Sync', '--resolve=P-123', '--take=destination', '--url', admin.url, '--json');
    assert.equal(destination.code, 0, destination.stderr);
    assert.deepEqual(JSON.parse(destination.stdout), { resolved: 'P-123', entry });
    assert.deepEqual(admin.calls.map((c) => [c.method, c.url, c.body]), [
      ['POST', '/exs/jobs/Permit_Sync/conflicts/resolve', '{"key":"P-123","take":"hms"}'],
      ['POST', '/exs/jobs/Permit_Sync/conflicts/resolve', '{"key":"P-123","take":"destination"}'],
    ]);
  });

  it('reports the admin API\'s refusal (404 no parked conflict, 409 no open connector) with exit 1', async (t) => {
    const admin = await fakeAdmin(t, (url) =>
      url.endsWith('/resolve')
        ? { status: 404, body: JSON.stringify({ error: "no parked conflict for key 'P-9'" }) }
        : { status: 409, body: JSON.stringify({ error: 'job Permit_Sync has no open ODBC connector to keep conflicts in' }) },
    );
    const missing = await exs('conflicts', 'Permit_Sync', '--resolve', 'P-9', '--take', 'hms', '--url', admin.url);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /HTTP 404 .*no parked conflict for key 'P-9'/);
    const closed = await exs('conflicts', 'Permit_Sync', '--url', admin.url);
    assert.equal(closed.code, 1);
    assert.match(closed.stderr, /HTTP 409 .*no open ODBC connector/);
  });

  it('usage errors send nothing: no job id, --resolve without --take, a bad --take, --take alone, a misspelt flag', async (t) => {
    const admin = await fakeAdmin(t, () => ({ status: 500, body: '{}' }));
    const cases: Array<[string[], RegExp]> = [
      [['--url', admin.url], /^exs conflicts: name a job id/],
      [['Permit_Sync', '--resolve', 'P-123', '--url', admin.url], /^exs conflicts: --resolve needs --take hms or --take destination/],
      [['Permit_Sync', '--resolve', 'P-123', '--take', 'mine', '--url', admin.url], /^--take must be 'hms' or 'destination' \(got 'mine'\)/],
      [['Permit_Sync', '--take', 'hms', '--url', admin.url], /^exs conflicts: --take goes with --resolve KEY/],
      [['Permit_Sync', '--resolve'], /^--resolve needs a value/],
      [['Permit_Sync', '--reslove', 'P-123'], /^exs conflicts: unknown option '--reslove' \(did you mean '--resolve'\?\)/],
    ];
    for (const [argv, message] of cases) {
      const result = await exs('conflicts', ...argv);
      assert.equal(result.code, 1, argv.join(' '));
      assert.match(result.stderr, message, argv.join(' '));
      assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
    }
    assert.deepEqual(admin.calls, [], 'no request was made');
  });
});
