// The EXS nodes wired as the importer wires them, in Node-RED's own runtime (4.1 or 5,
// chosen by EXS_NODE_RED), writing to a real SQLite database through its ODBC driver.
import { after, afterEach, before, describe, it, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { readChangeLogTail, changeLogPath } from '../../nodes/core/changelog-store';
import { helper, loadFlow, collectMessages, nextMessage, nodeRedVersion } from '../support/node-red';
import { needService, sqliteConn, tempDir } from '../support/services';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const odbc = require('odbc');

const JOB_ID = 'Flow_Test';

function pipeline(dbFile: string, table = 'PERMIT_TABLE', mapping = 'HMS:status -> COBOL:PERMIT_STAT | upper\nHMS:updated_at -> COBOL:LAST_CHG_TS') {
  return [
    { id: 'job', type: 'exs-job', jobId: JOB_ID, source_topic: 'permits.status', destination: 'SQLite', schedule: 'realtime', conflict_rule: 'HMS_WINS', max_attempts: 5, backoff_seconds: 30, dead_letter: '', changelog: '' },
    { id: 'db', type: 'exs-odbc', connector: `odbc:${sqliteConn(dbFile)}`, dialect: '', pool_size: 2 },
    { id: 'queue', type: 'exs-sync-queue', job: 'job', wires: [['mapper'], ['log']] },
    { id: 'mapper', type: 'exs-mapper', job: 'job', key: 'HMS:permit_id -> COBOL:PERMIT_ID', mapping, wires: [['resolver'], ['log']] },
    { id: 'resolver', type: 'exs-conflict-resolver', job: 'job', rule: '', wires: [['connector']] },
    { id: 'connector', type: 'exs-connector', job: 'job', odbc: 'db', table, wires: [['log'], ['log']] },
    { id: 'log', type: 'exs-change-log', job: 'job', wires: [['entries'], ['deadLetters']] },
    { id: 'entries', type: 'helper' },
    { id: 'deadLetters', type: 'helper' },
  ];
}

async function createPermitTable(dbFile: string): Promise<void> {
  const connection = await odbc.connect(sqliteConn(dbFile));
  // SQLite ignores VARCHAR lengths; the CHECK makes it refuse an overlong value as a legacy table would.
  await connection.query('CREATE TABLE PERMIT_TABLE (PERMIT_ID VARCHAR(20) PRIMARY KEY, PERMIT_STAT VARCHAR(8) CHECK (length(PERMIT_STAT) <= 8), LAST_CHG_TS VARCHAR(32))');
  await connection.close();
}

async function rows(dbFile: string): Promise<Array<Record<string, unknown>>> {
  const connection = await odbc.connect(sqliteConn(dbFile));
  try {
    return [...(await connection.query('SELECT PERMIT_ID, PERMIT_STAT, LAST_CHG_TS FROM PERMIT_TABLE ORDER BY PERMIT_ID'))];
  } finally {
    await connection.close();
  }
}

describe(`EXS pipeline on Node-RED ${nodeRedVersion()}`, () => {
  let dataDir: string;
  let dbFile: string;

  before(() => new Promise<void>((resolve) => helper.startServer(resolve)));
  after(() => new Promise<void>((resolve) => helper.stopServer(resolve)));

  async function setUp(t: TestContext): Promise<boolean> {
    if (!(await needService(t, 'sqlite-odbc'))) return false;
    const dir = tempDir('flow');
    dataDir = path.join(dir, 'exs');
    process.env.EXS_DATA_DIR = dataDir;
    dbFile = path.join(dir, 'mainframe.db');
    await createPermitTable(dbFile);
    return true;
  }

  afterEach(async () => {
    await helper.unload();
    delete process.env.EXS_DATA_DIR;
  });

  it('writes an event to the table and records it in the change log', async (t) => {
    if (!(await setUp(t))) return;
    await loadFlow(pipeline(dbFile));
    const entry = nextMessage(helper.getNode('entries'));
    helper.getNode('queue').receive({ topic: 'permits/status', payload: JSON.stringify({ permit_id: 'P-123', status: 'Approved', updated_at: '2026-03-01T10:00:00.250Z' }) });
    const { payload } = await entry;
    assert.equal(payload.outcome, 'applied');
    assert.equal(payload.dest_row, 'OK');
    assert.equal(payload.key, 'P-123');
    assert.equal(payload.job, JOB_ID);
    assert.equal(payload.attempts, 1);
    assert.equal(payload.before, null);
    assert.equal(payload.after.PERMIT_STAT, 'APPROVED');
    assert.deepEqual(await rows(dbFile), [{ PERMIT_ID: 'P-123', PERMIT_STAT: 'APPROVED', LAST_CHG_TS: payload.after.LAST_CHG_TS }]);
    const stored = await readChangeLogTail(changeLogPath(dataDir, JOB_ID), 5);
    assert.equal(stored.length, 1);
    assert.equal(stored[0].seq, payload.seq);
  });

  it('updates the row on a later event and reports the row before', async (t) => {
    if (!(await setUp(t))) return;
    await loadFlow(pipeline(dbFile));
    const entries = collectMessages(helper.getNode('entries'), 2);
    const queue = helper.getNode('queue');
    queue.receive({ payload: { permit_id: 'P-9', status: 'Pending' } });
    queue.receive({ payload: { permit_id: 'P-9', status: 'Approved' } });
    const [first, second] = (await entries).map((m) => m.payload);
    assert.equal(first.after.PERMIT_STAT, 'PENDING');
    assert.equal(second.before.PERMIT_STAT, 'PENDING');
    assert.equal(second.after.PERMIT_STAT, 'APPROVED');
    assert.ok(second.seq > first.seq, 'sequence numbers increase');
    assert.equal((await rows(dbFile))[0].PERMIT_STAT, 'APPROVED');
  });

  it('sends malformed events to the dead letter with their reason, and goes on', async (t) => {
    if (!(await setUp(t))) return;
    await loadFlow(pipeline(dbFile));
    const deadLetters = collectMessages(helper.getNode('deadLetters'), 4);
    const entries = collectMessages(helper.getNode('entries'), 5);
    const queue = helper.getNode('queue');
    queue.receive({ payload: 'permit P-1 approved' });
    queue.receive({ payload: '{"status": "Approved"}' });
    queue.receive({ payload: '{"permit_id": "P-2", "status": {"code": 7}}' });
    queue.receive({ payload: '{"permit_id": "P-3", "status": "Approved but much too long for the column"}' });
    queue.receive({ payload: '{"permit_id": "P-4", "status": "Approved"}' });

    // The first three are refused before any write, in order; P-3 and P-4 are written in parallel.
    const reasons = (await deadLetters).map((m) => m.payload.error as string);
    assert.match(reasons[0], /not JSON/);
    assert.match(reasons[1], /permit_id/);
    assert.match(reasons[2], /status/);
    assert.match(reasons[3], /CHECK constraint failed/i, 'a value the database refuses is reported with its reason');
    assert.match(reasons[3], /"P-3"/, 'the reason names the record');
    assert.equal((await deadLetters)[0].payload.event, 'permit P-1 approved', 'the dead letter keeps the original');
    assert.equal((await deadLetters)[0].topic, `exs/${JOB_ID}/dead_letter`);

    const outcomes = (await entries).map((m) => `${m.payload.key ?? '-'}:${m.payload.outcome}`);
    assert.deepEqual(outcomes.slice(0, 3), ['-:dead_letter', '-:dead_letter', 'P-2:dead_letter']);
    assert.deepEqual(outcomes.slice(3).sort(), ['P-3:dead_letter', 'P-4:applied']);
    assert.equal((await entries)[0].topic, 'exs/changelog');
    assert.deepEqual((await rows(dbFile)).map((r) => `${r.PERMIT_ID}:${r.PERMIT_STAT}`), ['P-4:APPROVED']);
  });

  it('reports a missing table at deploy and dead-letters events with that reason', async (t) => {
    if (!(await setUp(t))) return;
    await loadFlow(pipeline(dbFile, 'NO_SUCH_TABLE'));
    const dead = nextMessage(helper.getNode('deadLetters'));
    helper.getNode('queue').receive({ payload: { permit_id: 'P-5', status: 'Approved' } });
    const { payload } = await dead;
    assert.match(payload.error, /destination not ready: .*NO_SUCH_TABLE/);
    const logged = helper.log().args.map((a: any[]) => a[0]).filter((e: any) => e.level === helper.log().ERROR);
    assert.ok(logged.some((e: any) => /NO_SUCH_TABLE/.test(String(e.msg))), 'the deploy error is logged');
  });

  it('reports a broken mapping at deploy', async (t) => {
    if (!(await setUp(t))) return;
    await loadFlow(pipeline(dbFile, 'PERMIT_TABLE', 'HMS:status COBOL:PERMIT_STAT'));
    const logged = helper.log().args.map((a: any[]) => a[0]).filter((e: any) => e.level === helper.log().ERROR);
    assert.ok(logged.some((e: any) => /mapping/.test(String(e.msg))), 'the mapping error is logged');
  });

  it('serves the change log at GET /exs/jobs/:id/log', async (t) => {
    if (!(await setUp(t))) return;
    await loadFlow(pipeline(dbFile));
    const entries = collectMessages(helper.getNode('entries'), 3);
    for (const id of ['A-1', 'A-2', 'A-3']) helper.getNode('queue').receive({ payload: { permit_id: id, status: 'Approved' } });
    await entries;
    const response = await helper.request().get(`/exs/jobs/${JOB_ID}/log?last=2`).expect(200);
    // Different keys are written concurrently, so the last two entries are two of the three.
    assert.equal(response.body.length, 2);
    for (const entry of response.body) assert.match(entry.key, /^A-[123]$/);
    assert.ok(response.body[0].seq !== response.body[1].seq);
  });
});
