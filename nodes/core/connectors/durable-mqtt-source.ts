// Takes HMS events from MQTT without ever acknowledging one that is not yet stored.
// mqtt.js sends a QoS 1 PUBACK as soon as its `handleMessage` callback runs; we run it
// only after `store` has put the event on disk. The session is persistent (fixed client id,
// MQTT 5 session expiry, clean start off), so what arrives while EXS is down or redeploying
// waits at the broker, and closing never unsubscribes.
import * as mqtt from 'mqtt';

export interface DurableSourceOptions {
  url: string;
  /** `permits/status`, or a shared subscription `$share/GROUP/permits/status` for scale-out. */
  topic: string;
  /** Must stay the same across restarts for the broker to keep the session. */
  clientId: string;
  /** How long the broker keeps the session while EXS is away. */
  sessionExpirySeconds: number;
  username?: string;
  password?: string;
  /** Stores the event durably; the PUBACK goes out when it resolves. */
  store(topic: string, payload: Buffer): Promise<void>;
  onStatus?(status: 'connecting' | 'connected' | 'offline' | 'error', detail?: string): void;
}

export const DEFAULT_SESSION_EXPIRY_SECONDS = 7 * 24 * 3600;

/**
 * mqtt.js logs every packet through `debug`, whose calls gather their arguments into an array even
 * when nobody listens (a few percent of the intake's allocations under load). Unless DEBUG asks
 * for mqtt.js's log (`mqttjs*`, `mqtt*`, `*`; read at start), the client gets a logger that does nothing.
 */
export const quietMqttLog: { log?: (...args: unknown[]) => void } = /(^|[\s,])(\*|mqtt)/.test(process.env.DEBUG ?? '') ? {} : { log: () => undefined };

export class DurableMqttSource {
  private client?: mqtt.MqttClient;

  constructor(private readonly options: DurableSourceOptions) {}

  start(): void {
    this.connect(5);
  }

  /**
   * MQTT 5 first (session expiry); a broker that refuses it (Aedes, older brokers) gets
   * MQTT 3.1.1, where clean session off with the same client id keeps the session just as well.
   */
  private connect(protocolVersion: 4 | 5): void {
    const { options } = this;
    options.onStatus?.('connecting');
    const client = mqtt.connect(options.url, {
      clientId: options.clientId,
      protocolVersion,
      clean: false,
      ...(protocolVersion === 5 && { properties: { sessionExpiryInterval: options.sessionExpirySeconds } }),
      username: options.username,
      password: options.password,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      // Subscriptions live in the broker's session; mqtt.js must not replay or drop them itself.
      resubscribe: false,
      ...quietMqttLog,
    });
    this.holdAcknowledgementsUntilStored(client);
    client.on('connect', () => {
      options.onStatus?.('connected');
      // With a session present the subscription survives already; subscribing again is
      // harmless and covers a broker that lost its session store.
      client.subscribe(options.topic, { qos: 1 }, (err) => {
        if (err) options.onStatus?.('error', `subscribe failed: ${err.message}`);
      });
    });
    client.on('offline', () => options.onStatus?.('offline'));
    client.on('error', (err: Error & { code?: number }) => {
      // CONNACK 1 (3.1.1) / 132 (5): the broker does not speak MQTT 5.
      if (protocolVersion === 5 && (err.code === 1 || err.code === 132) && this.client === client) {
        client.end(true);
        this.connect(4);
        return;
      }
      options.onStatus?.('error', err.message);
    });
    this.client = client;
  }

  /**
   * mqtt.js acknowledges a QoS 1 publish when `handleMessage` calls back, and parses nothing
   * else until then; waiting there for each fdatasync would cap intake at one event per disk
   * sync. Instead `handleMessage` starts the store and lets mqtt.js read on, while the PUBACK
   * it then sends is held back here until that event is stored - released strictly in arrival
   * order, since journal appends complete in order. The broker's in-flight window bounds how
   * many events wait. A lost connection forgets the held PUBACKs: the broker redelivers those
   * events, and storing one twice is harmless.
   *
   * This relies on mqtt.js 5 sending PUBACKs through `_sendPacket` (build/lib/handlers/publish.js).
   */
  private holdAcknowledgementsUntilStored(client: mqtt.MqttClient): void {
    const { options } = this;
    interface Held {
      messageId: number | undefined;
      stored: boolean;
      puback?: unknown;
    }
    // In arrival order; `next` is the oldest not yet released (a queue without shift()'s copying).
    let held: Held[] = [];
    let next = 0;
    /** Held QoS 1 events whose PUBACK mqtt.js has not produced yet, by packet id. */
    let awaitingPuback = new Map<number, Held>();
    const internals = client as unknown as { _sendPacket(packet: { cmd: string; messageId?: number }, cb?: () => void): void };
    const send = internals._sendPacket.bind(client);
    const release = () => {
      while (next < held.length && held[next].stored && held[next].puback) send(held[next++].puback as { cmd: string });
      if (next === held.length || next > 1024) {
        held = held.slice(next);
        next = 0;
      }
    };
    internals._sendPacket = (packet, cb) => {
      const waiting = packet.cmd === 'puback' && packet.messageId !== undefined ? awaitingPuback.get(packet.messageId) : undefined;
      if (!waiting) return send(packet, cb);
      awaitingPuback.delete(packet.messageId!);
      waiting.puback = packet;
      cb?.(); // lets mqtt.js parse the next packet; the PUBACK itself waits for the store
      release();
    };
    client.handleMessage = (packet, callback) => {
      if (packet.cmd !== 'publish') return callback();
      const entry: Held = { messageId: packet.messageId, stored: false };
      if (packet.qos > 0) {
        held.push(entry);
        if (packet.messageId !== undefined) awaitingPuback.set(packet.messageId, entry);
      }
      const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
      options.store(packet.topic, payload).then(
        () => {
          entry.stored = true;
          release();
        },
        (err: Error) => {
          // Not stored, so never acknowledged: drop the connection and let the broker redeliver.
          options.onStatus?.('error', `cannot store event: ${err.message}`);
          forget();
          client.end(true, () => setTimeout(() => client.reconnect(), 1000).unref());
        },
      );
      callback();
    };
    const forget = () => {
      held = [];
      next = 0;
      awaitingPuback = new Map();
    };
    client.on('close', forget);
  }

  /** Disconnects without unsubscribing: the broker keeps queueing for this session. */
  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client) await client.endAsync(false);
  }
}
