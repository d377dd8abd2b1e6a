// exs-sync-queue: the durable lane of a job. Whatever reaches its input is stored in the
// job's journal before the message is done (the EXS source stores MQTT events itself, before
// acknowledging them). Events leave from the journal - a bounded window at a time, retries
// after backoff, held until their schedule says so - parsed, numbered and enveloped.
import { parseEvent } from '../core/event';
import type { Delivery } from '../core/queue/dispatcher';
import type { JobState } from '../core/sync-job';
import type { ExsEnvelope } from '../core/types';
import { jobOf } from '../shared/job-node';
import type { JobNodeConfig, NodeMessage, RED, RedNode } from '../shared/red';

interface SyncQueueConfig extends JobNodeConfig {
  max_event_bytes?: number | string;
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

    const deliver = ({ record, attempt }: Delivery) => {
      const envelope: ExsEnvelope = { job: job.id, seq: record.seq, attempt, receivedAt: record.receivedAt, topic: record.topic };
      const parsed = parseEvent(record.payload, maxBytes);
      if (parsed.ok) {
        this.send([{ topic: record.topic, payload: parsed.event, exs: envelope }, null]);
      } else {
        // Retrying cannot make text into JSON: straight to the dead letter.
        const rejected: NodeMessage = { topic: record.topic, payload: parsed.raw, exs: { ...envelope, outcome: 'dead_letter', error: parsed.error, raw: parsed.raw } };
        this.send([null, rejected]);
      }
    };
    const detach = job.attachQueue(deliver);

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
