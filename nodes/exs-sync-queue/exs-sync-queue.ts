// exs-sync-queue: the entry of a job. Numbers each event, parses it, tracks it until the
// change log settles it (the acknowledgement), and sends what cannot be parsed to the
// dead-letter output with its reason. Durability and retries build on this envelope.
import { parseEvent } from '../core/event';
import type { ExsEnvelope } from '../core/types';
import { jobOf } from '../shared/job-node';
import type { JobNodeConfig, NodeMessage, RED, RedNode } from '../shared/red';

interface SyncQueueConfig extends JobNodeConfig {
  max_event_bytes?: number | string;
}

export = function registerExsSyncQueue(RED: RED) {
  function ExsSyncQueue(this: RedNode, config: SyncQueueConfig) {
    RED.nodes.createNode(this, config);
    const job = jobOf(RED, this, config.job);
    if (!job) return;
    const maxBytes = Number(config.max_event_bytes) || undefined;
    const showDepth = (depth: number) =>
      this.status({ fill: depth > 0 ? 'blue' : 'green', shape: depth > 0 ? 'ring' : 'dot', text: `depth ${depth} · dlq ${job.counters.dead_letter}` });
    job.on('depth', showDepth);
    showDepth(0);

    this.on('input', (msg, send, done) => {
      job.ready.then(() => {
        const envelope: ExsEnvelope = { job: job.id, seq: job.nextSeq(), attempt: 1, receivedAt: Date.now(), topic: msg.topic };
        job.track(envelope.seq);
        const parsed = parseEvent(msg.payload, maxBytes);
        if (parsed.ok) {
          send([{ ...msg, payload: parsed.event, exs: envelope }, null]);
        } else {
          const rejected: NodeMessage = { ...msg, payload: parsed.raw, exs: { ...envelope, outcome: 'dead_letter', error: parsed.error, raw: parsed.raw } };
          send([null, rejected]);
        }
        done();
      }, done);
    });
  }
  RED.nodes.registerType('exs-sync-queue', ExsSyncQueue);
};
