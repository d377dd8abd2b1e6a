// The EXS nodes wired as the importer wires them, in Node-RED's own runtime (4.1 or 5,
// chosen by EXS_NODE_RED), writing to a real SQLite database through its ODBC driver.
import { after, afterEach, before, describe, it, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { readChangeLogTail, changeLogPath } from '../../nodes/core/changelog-store';
import { helper, loadFlow, collectMessages, nextMessage, nodeRedVersion } from '../support/node-red';
import { needService, sqlQuery, sqliteConn, tempDir } from '../support/services';

const JOB_ID = 'Flow_Test';

interface PipelineOptions {
  /** The sync queue's batch setting; undefined as in a flow saved before batches existed. */
  batch?: number;
  schedule?: string;
}

function pipelineFlow(dbFile: string, table = 'PERMIT_TABLE', mapping = 'HMS:status -> COBOL:PERMIT_STAT | upper\nHMS:updated_at -> COBOL:LAST_CHG_TS', options: PipelineOptions = {}) {
  const nodes = [
    { id: 'job', type: 'exs-job', jobId: JOB_ID, source_topic: 'permits.status', destination: 'SQLite', schedule: options.schedule ?? 'realtime', conflict_rule: 'HMS_WINS', max_attempts: 2, backoff_seconds: 0, dead_letter: '', changelog: '' },
    { id: 'db', type: 'exs-odbc', connector: `odbc:${sqliteConn(dbFile)}`, dialect: '', pool_size: 2 },
    { id: 'queue', type: 'exs-sync-queue', job: 'job', ...(options.batch !== undefined && { batch: options.batch }), wires: [['mapper'], ['log']] },
    { id: 'mapper', type: 'exs-mapper', job: 'job', key: 'HMS:permit_id -> COBOL:PERMIT_ID', mapping, wires: [['resolver', 'mapped'], ['log']] },
    { id: 'resolver', type: 'exs-conflict-resolver', job: 'job', rule: '', wires: [['connector']] },
    { id: 'connector', type: 'exs-connector', job: 'job', odbc: 'db', table, wires: [['log'], ['log']] },
    { id: 'log', type: 'exs-change-log', job: 'job', wires: [['entries'], ['deadLetters']] },
    { id: 'entries', type: 'helper' },
    { id: 'deadLetters', type: 'helper' },
    { id: 'mapped', type: 'helper' },
  ];
  // Nodes on a tab with a position, as the editor deploys them: Node-RED takes a node without
  // x/y for a config node, and Catch nodes only catch on their tab.
  const flowNode = (n: { type: string }) => ('wires' in n || n.type === 'helper' ? { x: 100, y: 100 } : {});
  return [{ id: 'tab', type: 'tab' }, ...nodes.map((n) => ({ ...n, z: 'tab', ...flowNode(n) }))] as Array<Record<string, unknown>>;
}

async function createPermitTable(dbFile: string): Promise<void> {
  // SQLite ignores VARCHAR lengths; the CHECK makes it refuse an overlong value as a legacy table would.
  await sqlQuery(sqliteConn(dbFile), 'CREATE TABLE PERMIT_TABLE (PERMIT_ID VARCHAR(20) PRIMARY KEY, PERMIT_STAT VARCHAR(8) CHECK (length(PERMIT_STAT) <= 8), LAST_CHG_TS VARCHAR(32))');
}

function rows(dbFile: string): Promise<Array<Record<string, unknown>>> {
  return sqlQuery(sqliteConn(dbFile), 'SELECT PERMIT_ID, PERMIT_STAT, LAST_CHG_TS FROM PERMIT_TABLE ORDER BY PERMIT_ID');
}

// Every test with one event per message (a flow saved before batches existed) and with batches.
for (const batch of [undefined, 100]) describe(`EXS pipeline on Node-RED ${nodeRedVersion()}, ${batch ? `batches of up to ${batch}` : 'one event per message'}`, () => {
  const pipeline = (dbFile: string, table?: string, mapping?: string, options: PipelineOptions = {}) => pipelineFlow(dbFile, table, mapping, { batch, ...options });

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

    // Data failures are retried (max_attempts 2) before they are given up, so they end in any order.
    const letters = new Map((await deadLetters).map((m) => [m.payload.event as string, m.payload]));
    assert.match(letters.get('permit P-1 approved')?.error, /not JSON/, 'the dead letter keeps the original text');
    assert.equal(letters.get('permit P-1 approved')?.attempts, 1, 'text that is not JSON is not retried');
    const noKey = letters.get('{"status":"Approved"}');
    assert.match(noKey?.error, /permit_id/);
    assert.equal(noKey?.attempts, 2, 'a mapping failure is retried up to max_attempts');
    const wrongType = [...letters.values()].find((l) => l.event.includes('"code":7'));
    assert.match(wrongType?.error, /status/);
    const tooLong = [...letters.values()].find((l) => l.event.includes('P-3'));
    assert.match(tooLong?.error, /CHECK constraint failed/i, 'a value the database refuses is reported with its reason');
    assert.match(tooLong?.error, /"P-3"/, 'the reason names the record');
    assert.equal((await deadLetters)[0].topic, `exs/${JOB_ID}/dead_letter`);

    const outcomes = (await entries).map((m) => `${m.payload.key ?? '-'}:${m.payload.outcome}`).sort();
    assert.deepEqual(outcomes, ['-:dead_letter', '-:dead_letter', 'P-2:dead_letter', 'P-3:dead_letter', 'P-4:applied']);
    assert.equal((await entries)[0].topic, 'exs/changelog');
    assert.deepEqual((await rows(dbFile)).map((r) => `${r.PERMIT_ID}:${r.PERMIT_STAT}`), ['P-4:APPROVED']);
  });

  it('reports a missing table at deploy, holds events, and writes them once the table exists', async (t) => {
    if (!(await setUp(t))) return;
    await loadFlow(pipeline(dbFile, 'LATE_TABLE'));
    const deadLetters: any[] = [];
    helper.getNode('deadLetters').on('input', (m: any) => deadLetters.push(m));
    const entry = nextMessage(helper.getNode('entries'), 15_000);
    helper.getNode('queue').receive({ payload: { permit_id: 'P-5', status: 'Approved' } });
    await new Promise((r) => setTimeout(r, 300));
    const logged = helper.log().args.map((a: any[]) => a[0]).filter((e: any) => e.level === helper.log().ERROR);
    assert.ok(logged.some((e: any) => /LATE_TABLE/.test(String(e.msg))), 'the deploy error is logged');
    await sqlQuery(sqliteConn(dbFile), 'CREATE TABLE LATE_TABLE (PERMIT_ID VARCHAR(20) PRIMARY KEY, PERMIT_STAT VARCHAR(8), LAST_CHG_TS VARCHAR(32))');
    const { payload } = await entry;
    assert.equal(payload.outcome, 'applied', 'the held event is written after the outage');
    assert.equal(payload.key, 'P-5');
    assert.equal(deadLetters.length, 0, 'a destination that is not ready does not burn events into the dead letter');
  });

  it('reports a broken mapping at deploy and fails each event to Catch nodes, keeping it queued', async (t) => {
    if (!(await setUp(t))) return;
    const flow = pipeline(dbFile, 'PERMIT_TABLE', 'HMS:status COBOL:PERMIT_STAT');
    flow.push({ id: 'catch', type: 'catch', z: 'tab', x: 100, y: 200, scope: null, uncaught: false, wires: [['caught']] }, { id: 'caught', type: 'helper', z: 'tab', x: 300, y: 200 });
    await loadFlow(flow);
    const logged = helper.log().args.map((a: any[]) => a[0]).filter((e: any) => e.level === helper.log().ERROR);
    assert.ok(logged.some((e: any) => /mapping/.test(String(e.msg))), 'the mapping error is logged');
    const caught = nextMessage(helper.getNode('caught'));
    helper.getNode('queue').receive({ payload: { permit_id: 'P-6', status: 'Approved' } });
    const { error } = await caught;
    assert.match(error.message, /mapping/);
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

  it(batch ? 'carries events that are ready together as one message, and keeps each event\'s outcome its own' : 'sends one message per event', async (t) => {
    if (!(await setUp(t))) return;
    // Held by the schedule, then flushed: the journal hands all six out at once.
    await loadFlow(pipeline(dbFile, undefined, undefined, { schedule: 'nightly' }));
    const mapped: any[] = [];
    helper.getNode('mapped').on('input', (m: any) => mapped.push(m));
    const entries = collectMessages(helper.getNode('entries'), 6);
    const queue = helper.getNode('queue');
    for (const id of ['B-1', 'B-2', 'B-3', 'B-4']) queue.receive({ payload: { permit_id: id, status: 'Approved' } });
    queue.receive({ payload: 'not json' });
    queue.receive({ payload: { status: 'no key' } });
    await helper.request().get(`/exs/jobs/${JOB_ID}`).expect(200);
    await new Promise((r) => setTimeout(r, 200));
    await helper.request().post(`/exs/jobs/${JOB_ID}/flush`).expect(200);

    const outcomes = (await entries).map((m) => `${m.payload.key ?? '-'}:${m.payload.outcome}`).sort();
    assert.deepEqual(outcomes, ['-:dead_letter', '-:dead_letter', 'B-1:applied', 'B-2:applied', 'B-3:applied', 'B-4:applied']);
    for (const entry of await entries) assert.ok(!Array.isArray(entry.payload), 'the change log publishes one entry per message');
    assert.deepEqual((await rows(dbFile)).map((r) => r.PERMIT_ID), ['B-1', 'B-2', 'B-3', 'B-4']);
    if (batch) {
      assert.equal(mapped.length, 1, 'the four readable events left the mapper as one message');
      const [message] = mapped;
      assert.ok(Array.isArray(message.payload));
      assert.deepEqual(message.payload.map((e: any) => e.permit_id), ['B-1', 'B-2', 'B-3', 'B-4']);
      assert.deepEqual(message.exs.batch.map((e: any) => e.key), ['B-1', 'B-2', 'B-3', 'B-4'], 'envelopes line up with the events');
      assert.equal(message.exs.job, JOB_ID);
    } else {
      assert.equal(mapped.length, 4);
      for (const message of mapped) assert.equal(typeof message.payload.permit_id, 'string');
    }
  });

  it('maps a message\'s other events when one fails for a reason not about the data, and reports that one to Catch nodes', async (t) => {
    if (!(await setUp(t))) return;
    const flow = pipeline(dbFile);
    flow.push({ id: 'catch', type: 'catch', z: 'tab', x: 100, y: 200, scope: ['mapper'], uncaught: false, wires: [['caught']] }, { id: 'caught', type: 'helper', z: 'tab', x: 300, y: 200 });
    await loadFlow(flow);
    const mapped = nextMessage(helper.getNode('mapped'));
    const caught = nextMessage(helper.getNode('caught'));
    // A field that throws when the mapper reads it stands in for a bug: not a MappingError, so not
    // a dead letter. (Only the first read throws: Node-RED copies the message for the Catch node.)
    const broken = { permit_id: 'C-2' };
    let reads = 0;
    Object.defineProperty(broken, 'status', {
      enumerable: true,
      get: () => {
        reads += 1;
        if (reads === 1) throw new TypeError('reading status failed');
        return 'Approved';
      },
    });
    const envelope = (seq: number) => ({ job: JOB_ID, seq, attempt: 1, receivedAt: Date.now(), topic: 'permits/status' });
    const events = [{ permit_id: 'C-1', status: 'Approved' }, broken, { permit_id: 'C-3', status: 'Issued' }];
    helper.getNode('mapper').receive(batch
      ? { payload: events, exs: { job: JOB_ID, batch: events.map((_, i) => envelope(9001 + i)) } }
      : { payload: broken, exs: envelope(9002) });
    assert.match((await caught).error.message, /reading status failed/);
    if (batch) {
      const { payload, exs } = await mapped;
      assert.deepEqual(payload.map((e: any) => e.permit_id), ['C-1', 'C-3'], 'the other events went on');
      assert.deepEqual(exs.batch.map((e: any) => e.seq), [9001, 9003]);
    }
  });
});
