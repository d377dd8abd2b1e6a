// The change log's MQTT feed through Node-RED's own mqtt out node and a real Mosquitto: every
// entry of a batch is a message of its own, in the order the events settled, and the batch
// leaves the runtime in a few socket writes instead of one per entry; with `changelog_feed:
// batch`, a batch's entries are one message, their array.
import { afterEach, after, before, describe, it, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as mqtt from 'mqtt';
import { exsNodes, helper, nodeRedModule, nodeRedVersion } from '../support/node-red';
import { MQTT_URL, needService, sqlQuery, sqliteConn, tempDir } from '../support/services';
import { waitFor } from '../support/wait';

const JOB_ID = 'Feed_Test';
const EVENTS = 150;

/** Node-RED's core mqtt nodes, from the runtime under test. */
const coreMqttNodes = require(require.resolve('@node-red/nodes/core/network/10-mqtt.js', {
  paths: [path.dirname(require.resolve(`${nodeRedModule}/package.json`))],
}));

function feedFlow(dbFile: string, feedTopic: string, changelogFeed?: 'entry' | 'batch') {
  const { hostname, port } = new URL(MQTT_URL);
  const nodes = [
    { id: 'job', type: 'exs-job', jobId: JOB_ID, source_topic: 'permits.status', destination: 'SQLite', schedule: 'nightly', conflict_rule: 'HMS_WINS', max_attempts: 2, backoff_seconds: 0, dead_letter: '', changelog: feedTopic, ...(changelogFeed && { changelog_feed: changelogFeed }) },
    { id: 'db', type: 'exs-odbc', connector: `odbc:${sqliteConn(dbFile)}`, dialect: '', pool_size: 2 },
    { id: 'queue', type: 'exs-sync-queue', job: 'job', batch: 100, wires: [['mapper'], ['log']] },
    { id: 'mapper', type: 'exs-mapper', job: 'job', key: 'HMS:permit_id -> COBOL:PERMIT_ID', mapping: 'HMS:status -> COBOL:PERMIT_STAT', wires: [['resolver'], ['log']] },
    { id: 'resolver', type: 'exs-conflict-resolver', job: 'job', rule: '', wires: [['connector']] },
    { id: 'connector', type: 'exs-connector', job: 'job', odbc: 'db', table: 'PERMIT_TABLE', wires: [['log'], ['log']] },
    { id: 'log', type: 'exs-change-log', job: 'job', wires: [['entries', 'feed'], ['letters']] },
    { id: 'feed', type: 'mqtt out', broker: 'broker', topic: '', qos: '1', retain: 'false' },
    { id: 'broker', type: 'mqtt-broker', broker: hostname, port: Number(port || 1883), clientid: '', protocolVersion: '4', keepalive: '60', cleansession: true, autoConnect: true },
    { id: 'entries', type: 'helper' },
    { id: 'letters', type: 'helper' },
  ];
  const flowNode = (n: { type: string }) => ('wires' in n || n.type === 'helper' || n.type === 'mqtt out' ? { x: 100, y: 100 } : {});
  return [{ id: 'tab', type: 'tab' }, ...nodes.map((n) => ({ ...n, z: 'tab', ...flowNode(n) }))] as Array<Record<string, unknown>>;
}

/**
 * The job's flow loaded against a fresh SQLite table, its feed on a topic of its own; returns what a
 * subscriber receives there, parsed (undefined when a service is missing and the test was skipped).
 */
async function startFeedJob(t: TestContext, changelogFeed?: 'entry' | 'batch'): Promise<any[] | undefined> {
  if (!(await needService(t, 'mosquitto'))) return undefined;
  if (!(await needService(t, 'sqlite-odbc'))) return undefined;
  const dir = tempDir('feed');
  process.env.EXS_DATA_DIR = path.join(dir, 'exs');
  const dbFile = path.join(dir, 'mainframe.db');
  await sqlQuery(sqliteConn(dbFile), 'CREATE TABLE PERMIT_TABLE (PERMIT_ID VARCHAR(20) PRIMARY KEY, PERMIT_STAT VARCHAR(20))');
  const feedTopic = `exs-test/feed-${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

  const subscriber = await mqtt.connectAsync(MQTT_URL);
  t.after(() => subscriber.endAsync());
  const received: any[] = [];
  subscriber.on('message', (_topic, payload) => received.push(JSON.parse(payload.toString())));
  await subscriber.subscribeAsync(feedTopic, { qos: 1 });

  await new Promise<void>((resolve) => helper.load([...exsNodes, coreMqttNodes], feedFlow(dbFile, feedTopic, changelogFeed), {}, () => resolve()));
  const broker = helper.getNode('broker');
  await waitFor('the mqtt out node to connect', () => (broker.connected ? true : undefined));
  return received;
}

describe(`change-log feed through Node-RED ${nodeRedVersion()}'s mqtt out node`, () => {
  before(() => new Promise<void>((resolve) => helper.startServer(resolve)));
  after(() => new Promise<void>((resolve) => helper.stopServer(resolve)));
  afterEach(async () => {
    await helper.unload();
    delete process.env.EXS_DATA_DIR;
  });

  it('publishes each entry of a batch as a message of its own, in settling order, in a few socket writes', async (t) => {
    const published = await startFeedJob(t);
    if (!published) return;
    const broker = helper.getNode('broker');
    // Counts what reaches the socket: each _write or _writev call is one system call's worth of data.
    const socket = broker.client.stream;
    let socketWrites = 0;
    for (const method of ['_write', '_writev'] as const) {
      const original = socket[method];
      if (typeof original !== 'function') continue;
      socket[method] = function (this: unknown, ...args: unknown[]) {
        socketWrites += 1;
        return original.apply(this, args);
      };
    }

    const delivered: any[] = [];
    helper.getNode('entries').on('input', (msg: any) => delivered.push(msg.payload));
    // Held by the schedule, then flushed: the journal hands the events out in batches of 100.
    const queue = helper.getNode('queue');
    for (let i = 0; i < EVENTS; i++) queue.receive({ payload: { permit_id: `F-${i}`, status: `S${i}` } });
    await waitFor('the events to be queued', async () => ((await helper.request().get(`/exs/jobs/${JOB_ID}`)).body.depth === EVENTS ? true : undefined));
    await helper.request().post(`/exs/jobs/${JOB_ID}/flush`).expect(200);

    await waitFor(`${EVENTS} entries on the feed`, () => (published.length >= EVENTS ? true : undefined), { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(published.length, EVENTS, 'each entry once');
    for (const entry of published) assert.ok(!Array.isArray(entry) && typeof entry.seq === 'number', 'one entry per message');
    assert.deepEqual(published.map((e) => e.seq), delivered.map((e) => e.seq), 'the feed has the order the entries were sent in');
    assert.deepEqual(published.map((e) => e.key).sort(), Array.from({ length: EVENTS }, (_, i) => `F-${i}`).sort());
    assert.equal(socket.writableCorked, 0, 'the socket is released after the batch');
    // One write per entry before the socket was held back for a batch's deliveries.
    assert.ok(socketWrites < EVENTS / 10, `${EVENTS} entries took ${socketWrites} socket writes`);
  });

  it('with changelog_feed batch, publishes each batch as one message holding its entries in settling order', async (t) => {
    const messages = await startFeedJob(t, 'batch');
    if (!messages) return;
    const sent: any[] = [];
    helper.getNode('entries').on('input', (msg: any) => sent.push(msg));

    const letters: any[] = [];
    helper.getNode('letters').on('input', (msg: any) => letters.push(msg));
    const socket = helper.getNode('broker').client.stream;

    // Every fifth event repeats an earlier record: the flush writes only the newest, and the job
    // itself logs the older one as superseded. One event has no key: a dead letter.
    const queue = helper.getNode('queue');
    const superseded = EVENTS / 5;
    const total = EVENTS + 1;
    for (let i = 0; i < EVENTS; i++) {
      const key = i % 5 === 4 ? `F-${i - 1}` : `F-${i}`;
      queue.receive({ payload: { permit_id: key, status: `S${i}` } });
      if (i === 50) queue.receive({ payload: { status: 'no key' } });
    }
    await waitFor('the events to be queued', async () => ((await helper.request().get(`/exs/jobs/${JOB_ID}`)).body.depth === total ? true : undefined));
    await helper.request().post(`/exs/jobs/${JOB_ID}/flush`).expect(200);

    const entryCount = () => messages.reduce((n, m) => n + (Array.isArray(m) ? m.length : 1), 0);
    await waitFor(`${total} entries on the feed`, () => (entryCount() >= total ? true : undefined), { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 200));
    for (const message of messages) assert.ok(Array.isArray(message) && message.length > 0, 'every message is an array of entries');
    const entries = messages.flat();
    assert.equal(entries.length, total, 'each entry once');
    assert.deepEqual(entries.map((e) => e.seq).sort((a, b) => a - b), Array.from({ length: total }, (_, i) => i + 1), 'every event has its entry');
    for (const message of messages) {
      const seqs = message.map((e: any) => e.seq);
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'a message holds its entries in settling order');
    }
    // The node sent one message per batch, and the feed kept them whole and in order.
    assert.deepEqual(messages.map((m) => m.map((e: any) => e.seq)), sent.map((msg) => msg.payload.map((e: any) => e.seq)));
    const batches = sent.filter((msg) => Array.isArray(msg.exs?.batch));
    const written = EVENTS - superseded;
    assert.equal(batches.flatMap((msg) => msg.payload).filter((e: any) => e.outcome === 'applied').length, written);
    assert.ok(batches.length >= 2 && batches.length < 10, `the ${written} written events and the dead letter left in ${batches.length} batch messages`);
    for (const msg of batches) {
      assert.equal(msg.exs.job, JOB_ID);
      assert.deepEqual(msg.exs.batch.map((e: any) => e.seq), msg.payload.map((e: any) => e.seq), 'exs.batch holds the entries\' envelopes, index for index');
    }
    // The job's own entries (the superseded ones) come grouped too, without an envelope.
    const own = sent.filter((msg) => msg.exs === undefined);
    assert.deepEqual(own.flatMap((msg) => msg.payload).map((e: any) => e.outcome), Array(superseded).fill('superseded'));
    assert.ok(own.length < superseded / 3, `${superseded} superseded entries left in ${own.length} messages`);
    // The dead letter: in the feed's arrays once, and on output 2 as a message of its own.
    const dead = entries.filter((e) => e.outcome === 'dead_letter');
    assert.equal(dead.length, 1);
    assert.equal(letters.length, 1);
    assert.equal(letters[0].payload.id, dead[0].seq);
    assert.equal(socket.writableCorked, 0, 'the socket is released after the batch');
  });
});
