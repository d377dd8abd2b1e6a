// exs-sync-queue: the durable lane of a job. Whatever reaches its input is stored in the
// job's journal before the message is done (the EXS source stores MQTT events itself, before
// acknowledging them). Events leave from the journal - a bounded window at a time, retries
// after backoff, held until their schedule says so - parsed, numbered and enveloped. With a
// batch size above 1, the events the journal hands out together leave as batch messages
// (see shared/batch-message.ts): under load a hundred events pay one hop per node, and when
// events trickle in each still leaves at once, alone in its batch.
import { parseEvent } from '../core/event';
import type { Delivery } from '../core/queue/dispatcher';
import type { JobState } from '../core/sync-job';
import type { ExsEnvelope } from '../core/types';
import { batchMessage, batchSizeOf, type EventItem } from '../shared/batch-message';
import { jobOf } from '../shared/job-node';
import type { JobNodeConfig, NodeMessage, RED, RedNode } from '../shared/red';

interface SyncQueueConfig extends JobNodeConfig {
  max_event_bytes?: number | string;
  /** Most events per message; 1 (and flows saved before batches existed): one message per event. */
  batch?: number | string;
}

const STATUS_INTERVAL_MS = 250;

function payloadBytes(payload: unknown): Buffer {
  if (Buffer.isBuffer(payload)) return payload;
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8');
  return Buffer.from(JSON.stringify(payload ?? null), 'utf8');
}

/** Under 20 characters where it can be: depth, then what needs attention. */
function statusText(state: JobState): string {
  const parts = [`${state.depth} queued`];
  if (state.paused) parts.push('paused');
  else if (state.retrying > 0) parts.push(`${state.retrying} retrying`);
  if (state.deadLetters > 0) parts.push(`${state.deadLetters} dlq`);
  return parts.join(' · ');
}

export = function registerExsSyncQueue(RED: RED) {
  function ExsSyncQueue(this: RedNode, config: SyncQueueConfig) {
    RED.nodes.createNode(this, config);
    const job = jobOf(RED, this, config.job);
    if (!job) return;
    const maxBytes = Number(config.max_event_bytes) || undefined;

    const render = (state: JobState) => {
      const fill = state.paused ? 'red' : state.retrying > 0 || state.deadLetters > 0 ? 'yellow' : 'green';
      this.status({ fill, shape: state.depth > 0 ? 'ring' : 'dot', text: statusText(state) });
    };
    // The job's state changes with every event; the editor needs it a few times a second at most.
    let statusTimer: NodeJS.Timeout | undefined;
    const showState = () => {
      statusTimer ??= setTimeout(() => {
        statusTimer = undefined;
        render(job.state());
      }, STATUS_INTERVAL_MS);
    };
    job.on('state', showState);
    job.ready.then(() => render(job.state()), () => this.status({ fill: 'red', shape: 'ring', text: 'exs-sync-queue.status.journalFailed' }));

    const batchSize = batchSizeOf(config.batch);

    /** The event and its envelope, or the dead letter it is when it cannot be read. Retrying cannot make text into JSON. */
    const itemOf = ({ record, attempt, queue, handout }: Delivery): { ok: boolean; item: EventItem } => {
      const envelope: ExsEnvelope = { job: job.id, seq: record.seq, attempt, receivedAt: record.receivedAt, topic: record.topic, queue, handout };
      const parsed = parseEvent(record.payload, maxBytes);
      if (parsed.ok) return { ok: true, item: { payload: parsed.event, exs: envelope } };
      return { ok: false, item: { payload: parsed.raw, exs: { ...envelope, outcome: 'dead_letter', error: parsed.error, raw: parsed.raw } } };
    };

    // Batches: the journal hands out what is ready in one synchronous burst; a microtask after
    // it sends what gathered, so no event waits for a timer or for a batch to fill.
    const events: EventItem[] = [];
    const rejected: EventItem[] = [];
    let sendScheduled = false;
    const sendGathered = () => {
      sendScheduled = false;
      if (events.length > 0) this.send([batchMessage({}, events.splice(0)), null]);
      if (rejected.length > 0) this.send([null, batchMessage({}, rejected.splice(0))]);
    };
    const deliver = (delivery: Delivery) => {
      const { ok, item } = itemOf(delivery);
      if (batchSize === 1) {
        const msg: NodeMessage = { topic: item.exs.topic, payload: item.payload, exs: item.exs };
        this.send(ok ? [msg, null] : [null, msg]);
        return;
      }
      (ok ? events : rejected).push(item);
      if (events.length >= batchSize || rejected.length >= batchSize) sendGathered();
      else if (!sendScheduled) {
        sendScheduled = true;
        queueMicrotask(sendGathered);
      }
    };
    // Inside a subflow instance the node has an id of its own; the deployed flows know it by its id in the subflow.
    const detach = job.attachQueue(deliver, { maxEventBytes: maxBytes, nodeId: this._alias ?? this.id });

    this.on('input', (msg, _send, done) => {
      // The EXS source journals its events before acknowledging them; this wire only shows the flow.
      if ((msg.exs as { journaled?: boolean } | undefined)?.journaled) return done();
      job.accept(msg.topic ?? '', payloadBytes(msg.payload)).then(() => done(), done);
    });

    this.on('close', (_removed, done) => {
      if (statusTimer) clearTimeout(statusTimer);
      job.removeListener('state', showState);
      detach();
      done();
    });
  }
  RED.nodes.registerType('exs-sync-queue', ExsSyncQueue);
};
