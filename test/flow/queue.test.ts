// The durable queue inside Node-RED: held schedules flush newest-per-record, dead letters are
// listed and replayed through the admin endpoints, and a redeploy delivers what was in flight.
import { after, afterEach, before, describe, it, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { helper, loadFlow, collectMessages, nextMessage, nodeRedVersion } from '../support/node-red';
import { needService, sqlQuery, sqliteConn, tempDir } from '../support/services';

function queueFlow(dbFile: string, jobId: string, options: { schedule?: string; mapping?: string; maxAttempts?: number; backoffSeconds?: number; backlog?: string } = {}) {
  const at = { x: 100, y: 100, z: 'tab' };
  return [
    { id: 'tab', type: 'tab' },
    { id: 'job', type: 'exs-job', z: 'tab', jobId, source_topic: 'permits.status', destination: 'SQLite', schedule: options.schedule ?? 'realtime', conflict_rule: 'HMS_WINS', max_attempts: options.maxAttempts ?? 1, backoff_seconds: options.backoffSeconds ?? 0, ...(options.backlog && { backlog: options.backlog }) },
    { id: 'db', type: 'exs-odbc', z: 'tab', connector: `odbc:${sqliteConn(dbFile)}`, pool_size: 2 },
    { id: 'queue', type: 'exs-sync-queue', ...at, job: 'job', wires: [['mapper'], ['log']] },
    { id: 'mapper', type: 'exs-mapper', ...at, job: 'job', key: 'HMS:permit_id -> COBOL:PERMIT_ID', mapping: options.mapping ?? 'HMS:status -> COBOL:PERMIT_STAT', wires: [['resolver'], ['log']] },
    { id: 'resolver', type: 'exs-conflict-resolver', ...at, job: 'job', wires: [['connector']] },
    { id: 'connector', type: 'exs-connector', ...at, job: 'job', odbc: 'db', table: 'PERMIT_TABLE', wires: [['log'], ['log']] },
    { id: 'log', type: 'exs-change-log', ...at, job: 'job', wires: [['entries'], ['deadLetters']] },
    { id: 'entries', type: 'helper', ...at },
    { id: 'deadLetters', type: 'helper', ...at },
  ];
}

describe(`EXS durable queue on Node-RED ${nodeRedVersion()}`, () => {
  let dbFile: string;

  before(() => new Promise<void>((resolve) => helper.startServer(resolve)));
  after(() => new Promise<void>((resolve) => helper.stopServer(resolve)));
  afterEach(async () => {
    await helper.unload();
    delete process.env.EXS_DATA_DIR;
  });

  async function setUp(t: TestContext): Promise<boolean> {
    if (!(await needService(t, 'sqlite-odbc'))) return false;
    const dir = tempDir('queue');
    process.env.EXS_DATA_DIR = path.join(dir, 'exs');
    dbFile = path.join(dir, 'mainframe.db');
    await sqlQuery(sqliteConn(dbFile), 'CREATE TABLE PERMIT_TABLE (PERMIT_ID VARCHAR(20) PRIMARY KEY, PERMIT_STAT VARCHAR(20))');
    return true;
  }

  it('holds events of a nightly job and, on flush, writes only the newest of each record', async (t) => {
    if (!(await setUp(t))) return;
    await loadFlow(queueFlow(dbFile, 'Nightly_Job', { schedule: 'nightly' }));
    const queue = helper.getNode('queue');
    const events = [['P-1', 'Pending'], ['P-2', 'Pending'], ['P-1', 'Approved'], ['P-1', 'Issued'], ['P-2', 'Denied']];
    for (const [permit_id, status] of events) queue.receive({ payload: { permit_id, status } });
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(await sqlQuery(sqliteConn(dbFile), 'SELECT * FROM PERMIT_TABLE'), [], 'nothing is written before the flush');
    const state = await helper.request().get('/exs/jobs/Nightly_Job').expect(200);
    assert.equal(state.body.depth, 5);
    assert.ok(state.body.nextFlush > Date.now(), 'the next flush is scheduled');

    const entries = collectMessages(helper.getNode('entries'), 5);
    await helper.request().post('/exs/jobs/Nightly_Job/flush').expect(200);
    const outcomes = (await entries).map((m) => `${m.payload.key}:${m.payload.outcome}`).sort();
    assert.deepEqual(outcomes, ['P-1:applied', 'P-1:superseded', 'P-1:superseded', 'P-2:applied', 'P-2:superseded']);
    const rows = await sqlQuery(sqliteConn(dbFile), 'SELECT PERMIT_ID, PERMIT_STAT FROM PERMIT_TABLE ORDER BY PERMIT_ID');
    assert.deepEqual(rows.map((r) => `${r.PERMIT_ID}:${r.PERMIT_STAT}`), ['P-1:Issued', 'P-2:Denied']);
  });

  it('on flush keeps the newest of each record by its updated_at, not by arrival', async (t) => {
    if (!(await setUp(t))) return;
    await loadFlow(queueFlow(dbFile, 'Hourly_Job', { schedule: 'hourly' }));
    const queue = helper.getNode('queue');
    const events = [
      ['P-1', 'Issued', '2026-03-01T10:00:03Z'], ['P-1', 'Pending', '2026-03-01T10:00:01Z'], ['P-1', 'Approved', '2026-03-01T10:00:02Z'],
      ['P-2', 'Denied', '2026-03-01T10:00:05Z'], ['P-2', 'Pending', '2026-03-01T10:00:04Z'],
    ];
    for (const [permit_id, status, updated_at] of events) queue.receive({ payload: { permit_id, status, updated_at } });
    await new Promise((r) => setTimeout(r, 300));
    const entries = collectMessages(helper.getNode('entries'), 5);
    await helper.request().post('/exs/jobs/Hourly_Job/flush').expect(200);
    const outcomes = (await entries).map((m) => `${m.payload.key}:${m.payload.outcome}`).sort();
    assert.deepEqual(outcomes, ['P-1:applied', 'P-1:superseded', 'P-1:superseded', 'P-2:applied', 'P-2:superseded']);
    const rows = await sqlQuery(sqliteConn(dbFile), 'SELECT PERMIT_ID, PERMIT_STAT FROM PERMIT_TABLE ORDER BY PERMIT_ID');
    assert.deepEqual(rows.map((r) => `${r.PERMIT_ID}:${r.PERMIT_STAT}`), ['P-1:Issued', 'P-2:Denied'], 'the first to arrive was the newest');
  });

  it('on flush writes an older event that fills a column the newest leaves out, and never lets a refused event replace one', async (t) => {
    if (!(await setUp(t))) return;
    await sqlQuery(sqliteConn(dbFile), 'ALTER TABLE PERMIT_TABLE ADD COLUMN INSPECTOR VARCHAR(20)');
    const mapping = 'HMS:status -> COBOL:PERMIT_STAT | map(Pending=PEND, Approved=APPR, Denied=DENY)\nHMS:inspector -> COBOL:INSPECTOR';
    await loadFlow(queueFlow(dbFile, 'Partial_Job', { schedule: 'hourly', mapping }));
    const queue = helper.getNode('queue');
    const events = [
      // P-1: the newest (10:00:02) carries no inspector, so the event that named one is written too;
      // the oldest writes nothing the newest does not, and is superseded.
      { permit_id: 'P-1', status: 'Pending', inspector: 'Ada', updated_at: '2026-03-01T10:00:01Z' },
      { permit_id: 'P-1', status: 'Approved', updated_at: '2026-03-01T10:00:02Z' },
      { permit_id: 'P-1', status: 'Denied', updated_at: '2026-03-01T10:00:00Z' },
      // P-2: the newest has a status the value table refuses: it goes to the dead letter, so it
      // must not replace the record's valid event.
      { permit_id: 'P-2', status: 'Pending', updated_at: '2026-03-01T10:00:01Z' },
      { permit_id: 'P-2', status: 'Misfiled', updated_at: '2026-03-01T10:00:02Z' },
    ];
    for (const payload of events) queue.receive({ payload });
    await new Promise((r) => setTimeout(r, 300));
    const entries = collectMessages(helper.getNode('entries'), 5);
    await helper.request().post('/exs/jobs/Partial_Job/flush').expect(200);
    const outcomes = (await entries).map((m) => `${m.payload.seq}:${m.payload.outcome}`).sort();
    assert.deepEqual(outcomes, ['1:applied', '2:applied', '3:superseded', '4:applied', '5:dead_letter']);
    const rows = await sqlQuery(sqliteConn(dbFile), 'SELECT PERMIT_ID, PERMIT_STAT, INSPECTOR FROM PERMIT_TABLE ORDER BY PERMIT_ID');
    assert.deepEqual(rows.map((r) => `${r.PERMIT_ID}:${r.PERMIT_STAT}:${r.INSPECTOR}`), ['P-1:APPR:Ada', 'P-2:PEND:null']);
  });

  it('on flush leaves out a far-future event: it is flagged, and the record\'s real newest is written', async (t) => {
    if (!(await setUp(t))) return;
    await loadFlow(queueFlow(dbFile, 'Skewed_Job', { schedule: 'hourly' }));
    const queue = helper.getNode('queue');
    const now = Date.now();
    const events = [['Pending', now - 2000], ['Approved', now - 1000], ['Marty', now + 86_400_000]] as const;
    for (const [status, at] of events) queue.receive({ payload: { permit_id: 'P-1', status, updated_at: new Date(at).toISOString() } });
    await new Promise((r) => setTimeout(r, 300));
    const entries = collectMessages(helper.getNode('entries'), 3);
    await helper.request().post('/exs/jobs/Skewed_Job/flush').expect(200);
    const outcomes = (await entries).map((m) => `${m.payload.outcome}${m.payload.error ? `: ${m.payload.error}` : ''}`).sort();
    assert.equal(outcomes.length, 3);
    assert.equal(outcomes[0], 'applied');
    assert.match(outcomes[1], /^dead_letter: 'updated_at' .* is 86400 s in the future, beyond max_clock_skew_seconds \(300\): flagged/);
    assert.equal(outcomes[2], 'superseded');
    const rows = await sqlQuery(sqliteConn(dbFile), 'SELECT PERMIT_STAT FROM PERMIT_TABLE');
    assert.deepEqual(rows.map((r) => r.PERMIT_STAT), ['Approved']);
  });

  it('lists dead letters and replays them through the job once the cause is fixed', async (t) => {
    if (!(await setUp(t))) return;
    await loadFlow(queueFlow(dbFile, 'Dlq_Job', { mapping: 'HMS:status -> COBOL:PERMIT_STAT | map(Approved=APPR)' }));
    const dead = nextMessage(helper.getNode('deadLetters'));
    helper.getNode('queue').receive({ payload: '{"permit_id": "P-7", "status": "Withdrawn"}' });
    const letter = (await dead).payload;
    assert.match(letter.error, /Withdrawn/);
    const listed = await helper.request().get('/exs/jobs/Dlq_Job/dlq').expect(200);
    assert.deepEqual(listed.body.map((l: any) => l.id), [letter.id]);
    assert.deepEqual(JSON.parse(listed.body[0].event), { permit_id: 'P-7', status: 'Withdrawn' });

    // Fix the mapping (a redeploy), then replay: the letter goes through the job as a new event.
    await helper.unload();
    await loadFlow(queueFlow(dbFile, 'Dlq_Job', { mapping: 'HMS:status -> COBOL:PERMIT_STAT | map(Approved=APPR, *=OTHR)' }));
    const applied = nextMessage(helper.getNode('entries'));
    const replay = await helper.request().post('/exs/jobs/Dlq_Job/dlq/replay').send({ ids: [letter.id] }).expect(200);
    assert.deepEqual(replay.body.replayed, [letter.id]);
    assert.equal((await applied).payload.outcome, 'applied');
    assert.deepEqual(await sqlQuery(sqliteConn(dbFile), 'SELECT PERMIT_STAT FROM PERMIT_TABLE'), [{ PERMIT_STAT: 'OTHR' }]);
    const after = await helper.request().get('/exs/jobs/Dlq_Job/dlq').expect(200);
    assert.deepEqual(after.body, [], 'a replayed letter is no longer waiting');
  });

  it('delivers after a redeploy what the journal held but the flow had not settled', async (t) => {
    if (!(await setUp(t))) return;
    // A mapping that refuses to deploy: events reach the journal but are never settled.
    await loadFlow(queueFlow(dbFile, 'Redeploy_Job', { mapping: 'HMS:status COBOL:PERMIT_STAT' }));
    const queue = helper.getNode('queue');
    for (const id of ['R-1', 'R-2', 'R-3']) queue.receive({ payload: { permit_id: id, status: 'Approved' } });
    await new Promise((r) => setTimeout(r, 300));
    await helper.unload();

    await loadFlow(queueFlow(dbFile, 'Redeploy_Job'));
    const entries = await collectMessages(helper.getNode('entries'), 3);
    assert.deepEqual(entries.map((m) => m.payload.key).sort(), ['R-1', 'R-2', 'R-3']);
    assert.equal((await sqlQuery(sqliteConn(dbFile), 'SELECT COUNT(*) AS N FROM PERMIT_TABLE'))[0].N, 3);
  });

  it('a mapper fixed and deployed alone (modified nodes) gets the events its broken predecessor refused, without a restart', async (t) => {
    if (!(await setUp(t))) return;
    // The mapping does not compile: the mapper refuses its input, and the events stay in flight.
    const broken = queueFlow(dbFile, 'Fixed_Mapper_Job', { mapping: 'HMS:status COBOL:PERMIT_STAT' });
    await loadFlow(broken);
    const queue = helper.getNode('queue');
    for (const id of ['M-1', 'M-2', 'M-3']) queue.receive({ payload: { permit_id: id, status: 'Approved' } });
    for (let i = 0; i < 50 && (await helper.request().get('/exs/jobs/Fixed_Mapper_Job')).body.inFlight < 3; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal((await helper.request().get('/exs/jobs/Fixed_Mapper_Job')).body.inFlight, 3, 'handed out to the broken mapper');

    // A deploy of modified nodes: only the mapper restarts; the job and its journal run on.
    const entries = collectMessages(helper.getNode('entries'), 3);
    const fixed = queueFlow(dbFile, 'Fixed_Mapper_Job');
    await helper.setFlows(fixed, 'nodes');
    const outcomes = (await entries).map((m) => `${m.payload.key}:${m.payload.outcome}`).sort();
    assert.deepEqual(outcomes, ['M-1:applied', 'M-2:applied', 'M-3:applied']);
    assert.equal((await sqlQuery(sqliteConn(dbFile), 'SELECT COUNT(*) AS N FROM PERMIT_TABLE'))[0].N, 3);
    await new Promise((r) => setTimeout(r, 300));
    const state = await helper.request().get('/exs/jobs/Fixed_Mapper_Job').expect(200);
    assert.deepEqual({ depth: state.body.depth, inFlight: state.body.inFlight }, { depth: 0, inFlight: 0 });
    assert.deepEqual({ applied: state.body.counters.applied, unchanged: state.body.counters.unchanged }, { applied: 3, unchanged: 0 }, 'each handed out again once');
  });

  it('a queue node inside a subflow sees a mapper after the subflow fixed and deployed alone: the refused events go to the new mapper', async (t) => {
    if (!(await setUp(t))) return;
    // The flow above with its queue node inside a subflow, whose instance is wired on to the mapper and the log.
    const inSubflow = (flow: ReturnType<typeof queueFlow>) => [
      ...flow.filter((node) => node.id !== 'queue'),
      { id: 'S', type: 'subflow', name: 'queue', in: [{ x: 50, y: 30, wires: [{ id: 'queue' }] }], out: [{ x: 300, y: 30, wires: [{ id: 'queue', port: 0 }] }, { x: 300, y: 80, wires: [{ id: 'queue', port: 1 }] }] },
      { ...flow.find((node) => node.id === 'queue')!, z: 'S', wires: [[], []] },
      { id: 'sf', type: 'subflow:S', x: 100, y: 100, z: 'tab', wires: [['mapper'], ['log']] },
    ];
    await loadFlow(inSubflow(queueFlow(dbFile, 'Subflow_Queue_Job', { mapping: 'HMS:status COBOL:PERMIT_STAT' })));
    const instance = helper.getNode('sf');
    for (const id of ['S-1', 'S-2', 'S-3']) instance.receive({ payload: { permit_id: id, status: 'Approved' } });
    for (let i = 0; i < 50 && (await helper.request().get('/exs/jobs/Subflow_Queue_Job')).body.inFlight < 3; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal((await helper.request().get('/exs/jobs/Subflow_Queue_Job')).body.inFlight, 3, 'handed out to the broken mapper');

    const entries = collectMessages(helper.getNode('entries'), 3);
    await helper.setFlows(inSubflow(queueFlow(dbFile, 'Subflow_Queue_Job')), 'nodes');
    const outcomes = (await entries).map((m) => `${m.payload.key}:${m.payload.outcome}`).sort();
    assert.deepEqual(outcomes, ['S-1:applied', 'S-2:applied', 'S-3:applied']);
    assert.equal((await sqlQuery(sqliteConn(dbFile), 'SELECT COUNT(*) AS N FROM PERMIT_TABLE'))[0].N, 3);
  });

  it('keeps events unsettled while the change log cannot be written, writes their entries once it can, and never writes an event twice for it', async (t) => {
    if (!(await setUp(t))) return;
    // A directory where the change log's file goes: every append fails (EISDIR), a real fault.
    const logFile = path.join(process.env.EXS_DATA_DIR!, 'Log_Fail_Job', 'changelog.jsonl');
    fs.mkdirSync(logFile, { recursive: true });
    await loadFlow(queueFlow(dbFile, 'Log_Fail_Job'));
    const conn = sqliteConn(dbFile);
    // Every write to the table is counted: an event written again would show.
    await sqlQuery(conn, 'CREATE TABLE WRITES (PERMIT_ID VARCHAR(20), PERMIT_STAT VARCHAR(20))');
    await sqlQuery(conn, 'CREATE TRIGGER COUNT_INSERT AFTER INSERT ON PERMIT_TABLE BEGIN INSERT INTO WRITES VALUES (NEW.PERMIT_ID, NEW.PERMIT_STAT); END');
    await sqlQuery(conn, 'CREATE TRIGGER COUNT_UPDATE AFTER UPDATE ON PERMIT_TABLE BEGIN INSERT INTO WRITES VALUES (NEW.PERMIT_ID, NEW.PERMIT_STAT); END');
    const queue = helper.getNode('queue');
    // L-1's two events carry no version: the later arrival must stay the row's.
    for (const [id, status] of [['L-1', 'Pending'], ['L-2', 'Approved'], ['L-1', 'Issued']]) queue.receive({ payload: { permit_id: id, status } });
    for (let i = 0; i < 100 && Number((await sqlQuery(conn, 'SELECT COUNT(*) AS N FROM WRITES'))[0].N) < 3; i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 1500)); // a retry of the entries, which fails again
    const state = await helper.request().get('/exs/jobs/Log_Fail_Job').expect(200);
    assert.deepEqual({ depth: state.body.depth, paused: state.body.paused }, { depth: 3, paused: false }, 'unsettled, and the destination is not blamed');

    const entries = collectMessages(helper.getNode('entries'), 3);
    fs.rmdirSync(logFile);
    const outcomes = (await entries).map((m) => `${m.payload.key}:${m.payload.outcome}`).sort();
    assert.deepEqual(outcomes, ['L-1:applied', 'L-1:applied', 'L-2:applied']);
    assert.deepEqual(await sqlQuery(conn, 'SELECT PERMIT_ID, PERMIT_STAT FROM PERMIT_TABLE ORDER BY PERMIT_ID'), [{ PERMIT_ID: 'L-1', PERMIT_STAT: 'Issued' }, { PERMIT_ID: 'L-2', PERMIT_STAT: 'Approved' }]);
    assert.equal((await sqlQuery(conn, 'SELECT COUNT(*) AS N FROM WRITES'))[0].N, 3, 'each event written once');
    const after = await helper.request().get('/exs/jobs/Log_Fail_Job').expect(200);
    assert.deepEqual({ depth: after.body.depth, inFlight: after.body.inFlight }, { depth: 0, inFlight: 0 });
  });

  it('with backlog: newest_per_record, writes each record\'s newest of a realtime backlog and logs the others as superseded', async (t) => {
    if (!(await setUp(t))) return;
    // A mapping that refuses to deploy: the events wait in the journal, a backlog for the next deploy.
    await loadFlow(queueFlow(dbFile, 'Backlog_Job', { mapping: 'HMS:status COBOL:PERMIT_STAT', backlog: 'newest_per_record' }));
    const queue = helper.getNode('queue');
    // B-1's last event is older than its newest, which is handed out before it: it is written, and the law skips it.
    const events = [['B-1', 'Pending', '10:00:01'], ['B-2', 'Pending', '10:00:01'], ['B-1', 'Approved', '10:00:03'], ['B-1', 'Denied', '10:00:02']];
    for (const [permit_id, status, at] of events) queue.receive({ payload: { permit_id, status, updated_at: `2026-03-01T${at}Z` } });
    await new Promise((r) => setTimeout(r, 300));
    await helper.unload();

    await loadFlow(queueFlow(dbFile, 'Backlog_Job', { backlog: 'newest_per_record' }));
    const entries = await collectMessages(helper.getNode('entries'), 4);
    const outcomes = entries.map((m) => `${m.payload.seq}:${m.payload.key}:${m.payload.outcome}${m.payload.reason?.startsWith('coalesced') ? `:${m.payload.reason}` : ''}`).sort();
    assert.deepEqual(outcomes, ['1:B-1:superseded:coalesced into event #3', '2:B-2:applied', '3:B-1:applied', '4:B-1:skipped']);
    const rows = await sqlQuery(sqliteConn(dbFile), 'SELECT PERMIT_ID, PERMIT_STAT FROM PERMIT_TABLE ORDER BY PERMIT_ID');
    assert.deepEqual(rows.map((r) => `${r.PERMIT_ID}:${r.PERMIT_STAT}`), ['B-1:Approved', 'B-2:Pending']);
    const state = await helper.request().get('/exs/jobs/Backlog_Job').expect(200);
    assert.equal(state.body.depth, 0, 'the superseded events are settled too');
  });

  it('writes a record\'s later event only after its failed earlier event came again: arrival order holds through a retry', async (t) => {
    if (!(await setUp(t))) return;
    // The first write of 'A' fails while BLOCK holds a row (a data error: retried after backoff).
    const conn = sqliteConn(dbFile);
    await sqlQuery(conn, 'CREATE TABLE BLOCK (N INTEGER)');
    await sqlQuery(conn, 'INSERT INTO BLOCK VALUES (1)');
    await sqlQuery(conn, "CREATE TRIGGER FAIL_A BEFORE INSERT ON PERMIT_TABLE WHEN NEW.PERMIT_STAT = 'A' AND EXISTS (SELECT 1 FROM BLOCK)"
      + " BEGIN SELECT RAISE(ABORT, 'blocked'); END");
    await loadFlow(queueFlow(dbFile, 'Retry_Order_Job', { maxAttempts: 3, backoffSeconds: 1 }));
    const entries = collectMessages(helper.getNode('entries'), 2);
    const queue = helper.getNode('queue');
    // No updated_at: the later arrival is the newer event.
    queue.receive({ payload: { permit_id: 'K-1', status: 'A' } });
    for (let i = 0; i < 50 && (await helper.request().get('/exs/jobs/Retry_Order_Job')).body.retrying === 0; i++) await new Promise((r) => setTimeout(r, 20));
    queue.receive({ payload: { permit_id: 'K-1', status: 'B' } });
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(await sqlQuery(conn, 'SELECT PERMIT_STAT FROM PERMIT_TABLE'), [], 'B waits for A to come again');
    await sqlQuery(conn, 'DELETE FROM BLOCK');
    assert.deepEqual((await entries).map((m) => `${m.payload.outcome} ${m.payload.after?.PERMIT_STAT}`), ['applied A', 'applied B']);
    assert.deepEqual(await sqlQuery(conn, 'SELECT PERMIT_STAT FROM PERMIT_TABLE'), [{ PERMIT_STAT: 'B' }]);
  });
});
