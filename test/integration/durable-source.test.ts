// The EXS source against a real Mosquitto of its own: an event is acknowledged only once it is
// stored, the session outlives the connection, and closing never unsubscribes.
import { describe, it, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import * as mqtt from 'mqtt';
import { DurableMqttSource } from '../../nodes/core/connectors/durable-mqtt-source';
import { mosquittoInstalled, startMosquitto, type MosquittoInstance } from '../support/mosquitto-instance';
import { waitFor, type WaitOptions } from '../support/wait';

async function broker(t: TestContext): Promise<MosquittoInstance | undefined> {
  if (!mosquittoInstalled()) {
    if (process.env.CI === 'true') throw new Error('the mosquitto binary is required under CI=true');
    t.skip('mosquitto is not installed');
    return undefined;
  }
  const instance = await startMosquitto();
  t.after(() => instance.stop());
  return instance;
}

/** Each test's broker is its own and local: look often, and give up sooner than over the network. */
const LOCAL_BROKER: WaitOptions = { timeoutMs: 10_000, intervalMs: 25 };

async function publish(url: string, topic: string, texts: string[]): Promise<void> {
  const client = await mqtt.connectAsync(url, { clientId: `publisher-${Math.random()}` });
  for (const text of texts) await client.publishAsync(topic, text, { qos: 1 });
  await client.endAsync();
}

describe('DurableMqttSource', () => {
  it('does not acknowledge an event before it is stored: the broker delivers it again', async (t) => {
    const mosquitto = await broker(t);
    if (!mosquitto) return;
    const received: string[] = [];
    // A store that never completes, like a disk that stalls before a crash.
    const stalled = new DurableMqttSource({
      url: mosquitto.url, topic: 'permits', clientId: 'exs-test-a', sessionExpirySeconds: 600,
      store: (_topic, payload) => {
        received.push(payload.toString());
        return new Promise(() => undefined);
      },
    });
    stalled.start();
    await new Promise((r) => setTimeout(r, 300));
    await publish(mosquitto.url, 'permits', ['e1', 'e2', 'e3']);
    await waitFor('three deliveries', () => received.length === 3, LOCAL_BROKER);
    await stalled.stop();

    const stored: string[] = [];
    const healthy = new DurableMqttSource({
      url: mosquitto.url, topic: 'permits', clientId: 'exs-test-a', sessionExpirySeconds: 600,
      store: async (_topic, payload) => {
        stored.push(payload.toString());
      },
    });
    healthy.start();
    t.after(() => healthy.stop());
    await waitFor('the unacknowledged events again', () => stored.length >= 3, LOCAL_BROKER);
    assert.deepEqual(stored, ['e1', 'e2', 'e3']);
  });

  it('keeps its session: what arrives while it is away is delivered when it is back', async (t) => {
    const mosquitto = await broker(t);
    if (!mosquitto) return;
    const stored: string[] = [];
    const options = {
      url: mosquitto.url, topic: 'permits/+', clientId: 'exs-test-b', sessionExpirySeconds: 600,
      store: async (_topic: string, payload: Buffer) => {
        stored.push(payload.toString());
      },
    };
    const first = new DurableMqttSource(options);
    first.start();
    await new Promise((r) => setTimeout(r, 500));
    await publish(mosquitto.url, 'permits/a', ['before']);
    await waitFor('the first event', () => stored.length === 1, LOCAL_BROKER);
    await first.stop(); // a redeploy: disconnects, must not unsubscribe

    await publish(mosquitto.url, 'permits/a', ['while-away-1', 'while-away-2']);
    const second = new DurableMqttSource(options);
    second.start();
    t.after(() => second.stop());
    await waitFor('the events published while away', () => stored.length === 3, LOCAL_BROKER);
    assert.deepEqual(stored, ['before', 'while-away-1', 'while-away-2']);
  });

  it('speaks MQTT 3.1.1 with a broker that refuses MQTT 5 (Aedes, as in the demo), keeping its session', async (t) => {
    const net = await import('node:net');
    const { Aedes } = await import('aedes');
    const aedes = await Aedes.createBroker();
    const server = net.createServer(aedes.handle);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    t.after(() => new Promise<void>((resolve) => aedes.close(() => server.close(() => resolve()))));
    const url = `mqtt://127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}`;
    const stored: string[] = [];
    const options = {
      url, topic: 'permits', clientId: 'exs-test-d', sessionExpirySeconds: 600,
      store: async (_topic: string, payload: Buffer) => {
        stored.push(payload.toString());
      },
    };
    const first = new DurableMqttSource(options);
    first.start();
    await new Promise((r) => setTimeout(r, 800));
    await publish(url, 'permits', ['one']);
    await waitFor('the first event', () => stored.length === 1, LOCAL_BROKER);
    await first.stop();
    await publish(url, 'permits', ['while-away']);
    const second = new DurableMqttSource(options);
    second.start();
    t.after(() => second.stop());
    await waitFor('the event published while away', () => stored.length === 2, LOCAL_BROKER);
    assert.deepEqual(stored, ['one', 'while-away']);
  });

  it('stores many events with few disk syncs and acknowledges them all, in order', async (t) => {
    const mosquitto = await broker(t);
    if (!mosquitto) return;
    const stored: number[] = [];
    let pendingStores = 0;
    let mostPending = 0;
    const source = new DurableMqttSource({
      url: mosquitto.url, topic: 'bulk', clientId: 'exs-test-c', sessionExpirySeconds: 600,
      store: async (_topic, payload) => {
        pendingStores += 1;
        mostPending = Math.max(mostPending, pendingStores);
        await new Promise((r) => setTimeout(r, 2)); // a slow disk
        stored.push(Number(payload.toString()));
        pendingStores -= 1;
      },
    });
    source.start();
    t.after(() => source.stop());
    await new Promise((r) => setTimeout(r, 500));
    const texts = Array.from({ length: 500 }, (_, i) => String(i));
    const client = await mqtt.connectAsync(mosquitto.url, { clientId: 'bulk-publisher' });
    await Promise.all(texts.map((text) => client.publishAsync('bulk', text, { qos: 1 })));
    await client.endAsync();
    await waitFor('500 stored events', () => stored.length === 500, LOCAL_BROKER);
    assert.deepEqual(stored, texts.map(Number), 'stored in arrival order');
    assert.ok(mostPending > 1, 'stores overlap, so one disk sync can cover several events');
  });
});
