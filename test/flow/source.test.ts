// exs-source inside Node-RED, against the machine's Mosquitto: each event reaches the flow through
// the journal; the source's own output carries each stored event only when something besides a
// sync queue listens (to the queue alone it would be a Node-RED hop per event for nothing).
import { after, afterEach, before, describe, it, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import * as mqtt from 'mqtt';
import { helper, loadFlow, collectMessages, nodeRedVersion } from '../support/node-red';
import { MQTT_URL, needService, tempDir } from '../support/services';

/** The queue delivers the parsed event; the source sends the bytes it stored. */
const statusOf = (payload: unknown): string =>
  (Buffer.isBuffer(payload) ? JSON.parse(payload.toString('utf8')) : payload as { status: string }).status;

function sourceFlow(jobId: string, topic: string, clientId: string, sourceWires: string[]) {
  const at = { x: 100, y: 100, z: 'tab' };
  return [
    { id: 'tab', type: 'tab' },
    { id: 'job', type: 'exs-job', z: 'tab', jobId, source_topic: 'permits.status', destination: 'SQLite', schedule: 'realtime', conflict_rule: 'HMS_WINS', max_attempts: 1, backoff_seconds: 0 },
    { id: 'source', type: 'exs-source', ...at, job: 'job', broker: MQTT_URL, topic, client_id: clientId, session_expiry: 60, wires: [sourceWires] },
    { id: 'queue', type: 'exs-sync-queue', ...at, job: 'job', batch: 1, wires: [['delivered'], []] },
    { id: 'delivered', type: 'helper', ...at },
    { id: 'watcher', type: 'helper', ...at },
  ];
}

describe(`exs-source on Node-RED ${nodeRedVersion()}`, () => {
  before(() => new Promise<void>((resolve) => helper.startServer(resolve)));
  after(() => new Promise<void>((resolve) => helper.stopServer(resolve)));
  afterEach(async () => {
    await helper.unload();
    delete process.env.EXS_DATA_DIR;
  });

  /**
   * Three events wait in the source's persistent session at the broker (made beforehand with its
   * client id), so they arrive as soon as the flow's source connects; counts what the source sends.
   */
  async function run(t: TestContext, sourceWires: string[]): Promise<{ delivered: any[]; watched: Promise<any[]>; sent: () => number; jobId: string; topic: string; clientId: string } | undefined> {
    if (!(await needService(t, 'mosquitto'))) return undefined;
    process.env.EXS_DATA_DIR = path.join(tempDir('source'), 'exs');
    // Unique per test: both Node-RED suites use the machine's broker, where these sessions outlive a test by a minute.
    const jobId = `Source_${crypto.randomBytes(4).toString('hex')}`;
    const topic = `exs-test/${jobId}`;
    const clientId = `exs-test-${jobId}`;
    const session = await mqtt.connectAsync(MQTT_URL, { clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 } });
    await session.subscribeAsync(topic, { qos: 1 });
    await session.endAsync();
    const publisher = await mqtt.connectAsync(MQTT_URL, { clientId: `${clientId}-pub` });
    for (const status of ['Pending', 'Approved', 'Issued']) {
      await publisher.publishAsync(topic, JSON.stringify({ permit_id: 'P-1', status }), { qos: 1 });
    }
    await publisher.endAsync();

    let sends = 0;
    // Hooked as soon as the nodes exist: the source connects only after the job's journal has opened (disk work).
    await loadFlow(sourceFlow(jobId, topic, clientId, sourceWires));
    const source = helper.getNode('source');
    const send = source.send.bind(source);
    source.send = (msg: unknown) => {
      sends++;
      send(msg);
    };
    const delivered = collectMessages(helper.getNode('delivered'), 3);
    const watched = collectMessages(helper.getNode('watcher'), 3);
    watched.catch(() => undefined); // only the second test waits for it
    return { delivered: await delivered, watched, sent: () => sends, jobId, topic, clientId };
  }

  it('wired to the sync queue alone, sends nothing itself: the queue delivers every event from the journal', async (t) => {
    const result = await run(t, ['queue']);
    if (!result) return;
    assert.deepEqual(result.delivered.map((m) => statusOf(m.payload)), ['Pending', 'Approved', 'Issued']);
    assert.equal(result.sent(), 0);
  });

  it('with another node wired to it, sends each stored event with its journal number', async (t) => {
    const result = await run(t, ['queue', 'watcher']);
    if (!result) return;
    assert.deepEqual(result.delivered.map((m) => statusOf(m.payload)), ['Pending', 'Approved', 'Issued']);
    const watched = await result.watched;
    assert.deepEqual(watched.map((m) => [statusOf(m.payload), m.exs.journaled, typeof m.exs.seq]),
      [['Pending', true, 'number'], ['Approved', true, 'number'], ['Issued', true, 'number']]);
    assert.equal(result.sent(), 3);
  });

  it('sends again once a deploy of modified nodes wires something else to it, without restarting it', async (t) => {
    const result = await run(t, ['queue']);
    if (!result) return;
    assert.equal(result.sent(), 0);
    const source = helper.getNode('source');
    await helper.setFlows(sourceFlow(result.jobId, result.topic, result.clientId, ['queue', 'watcher']), 'nodes');
    assert.equal(helper.getNode('source'), source, 'the source kept running: only its wires changed');
    const watched = collectMessages(helper.getNode('watcher'), 2);
    const publisher = await mqtt.connectAsync(MQTT_URL, { clientId: `${result.clientId}-pub2` });
    t.after(() => publisher.endAsync());
    for (const status of ['Denied', 'Appealed']) {
      await publisher.publishAsync(result.topic, JSON.stringify({ permit_id: 'P-2', status }), { qos: 1 });
    }
    assert.deepEqual((await watched).map((m) => statusOf(m.payload)), ['Denied', 'Appealed']);
  });
});
