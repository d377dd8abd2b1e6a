// exs-change-log: the end of every path. Writes the event's entry durably, publishes it
// (output 1: the changelog topic; output 2: the dead-letter topic for events that could
// not be applied), then settles the event with its job, which acknowledges it to the queue.
// Also serves the log to `exs log` through GET /exs/jobs/:id/log.
import { buildChangeLogEntry } from '../core/changelog-entry';
import { changeLogPath, readChangeLogTail } from '../core/changelog-store';
import type { ChangeLogEntry, ExsEnvelope } from '../core/types';
import { exsDataDir, jobOf } from '../shared/job-node';
import type { JobNodeConfig, NodeMessage, RED, RedNode } from '../shared/red';

const DEFAULT_LOG_TAIL = 10;
const MAX_LOG_TAIL = 10_000;

export = function registerExsChangeLog(RED: RED) {
  function ExsChangeLog(this: RedNode, config: JobNodeConfig) {
    RED.nodes.createNode(this, config);
    const job = jobOf(RED, this, config.job);
    if (!job) return;
    const showCounts = () => {
      const c = job.counters;
      const parked = c.parked > 0 ? ` · parked ${c.parked}` : '';
      this.status({ fill: c.dead_letter + c.parked > 0 ? 'yellow' : 'green', shape: 'dot', text: `ok ${c.applied + c.unchanged + c.skipped} · dlq ${c.dead_letter}${parked}` });
    };
    showCounts();
    // Entries the job writes itself (held events coalesced into a newer one) are published too.
    const publishJobEntry = (entry: ChangeLogEntry) => this.send([{ topic: job.settings.changelog, payload: entry }, null]);
    job.on('entry', publishJobEntry);
    this.on('close', (_removed, done) => {
      job.removeListener('entry', publishJobEntry);
      done();
    });

    this.on('input', (msg, send, done) => {
      const envelope = msg.exs as ExsEnvelope | undefined;
      if (!envelope || typeof envelope.seq !== 'number') {
        return done(new Error('exs-change-log takes messages from an EXS job (msg.exs is missing)'));
      }
      const entry = buildChangeLogEntry(envelope, msg.payload);
      const isDeadLetter = entry.outcome === 'dead_letter';
      const letter = isDeadLetter
        ? {
            id: entry.seq, job: job.id, topic: envelope.topic, error: entry.error ?? 'unknown error', attempts: entry.attempts,
            event: typeof entry.event === 'string' ? entry.event : JSON.stringify(entry.event ?? null),
            firstReceivedAt: new Date(envelope.receivedAt).toISOString(), deadAt: entry.time,
          }
        : undefined;
      (letter ? job.recordDeadLetter(letter) : Promise.resolve())
        .then(() => job.changeLog.append(entry))
        .then(
          () => {
            const published: NodeMessage = { topic: job.settings.changelog, payload: entry, exs: envelope };
            const deadLetter: NodeMessage | null = letter ? { topic: job.settings.dead_letter, payload: letter, exs: envelope } : null;
            send([published, deadLetter]);
            job.settle(envelope.seq, entry.outcome);
            showCounts();
            done();
          },
          // Not settled: the event stays in the journal and comes again, so nothing is lost unlogged.
          (err: Error) => done(new Error(`change log write failed: ${err.message}`)),
        );
    });
  }
  RED.nodes.registerType('exs-change-log', ExsChangeLog);

  RED.httpAdmin.get('/exs/jobs/:id/log', RED.auth.needsPermission('exs.read'), (req: any, res: any) => {
    const requested = Number.parseInt(String(req.query.last ?? DEFAULT_LOG_TAIL), 10);
    const last = Number.isFinite(requested) && requested > 0 ? Math.min(requested, MAX_LOG_TAIL) : DEFAULT_LOG_TAIL;
    readChangeLogTail(changeLogPath(exsDataDir(RED), String(req.params.id)), last).then(
      (entries) => res.json(entries),
      (err: Error) => res.status(500).json({ error: err.message }),
    );
  });
};
