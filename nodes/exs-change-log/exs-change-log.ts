// exs-change-log: the end of every path. Writes the event's entry durably, publishes it
// (output 1: the changelog topic; output 2: the dead-letter topic for events that could
// not be applied), then settles the event with its job, which acknowledges it to the queue.
// Also serves the log to `exs log` through GET /exs/jobs/:id/log.
import { buildChangeLogEntry, groupBySize } from '../core/changelog-entry';
import { changeLogPath, readChangeLogTail } from '../core/changelog-store';
import { outageProbeDelayMs } from '../core/queue/backoff';
import type { ChangeLogEntry, ExsEnvelope } from '../core/types';
import { itemsOf, type BatchEnvelope, type EventItem } from '../shared/batch-message';
import { exsDataDir, jobOf } from '../shared/job-node';
import type { JobNodeConfig, NodeMessage, RED, RedNode } from '../shared/red';

const DEFAULT_LOG_TAIL = 10;
const MAX_LOG_TAIL = 10_000;

const STATUS_INTERVAL_MS = 250;
const STATUS_KEY_CHARS = 10;

/** `applied P-123 · dlq 2`: what happened last, and the dead letters waiting for a replay. */
function statusText(last: ChangeLogEntry | undefined, deadLetters: number, parked: number): string {
  const parts: string[] = [];
  if (last) {
    const key = last.key === undefined || last.key === null ? '' : typeof last.key === 'string' ? last.key : JSON.stringify(last.key);
    const shortKey = key.length > STATUS_KEY_CHARS ? `${key.slice(0, STATUS_KEY_CHARS - 1)}…` : key;
    parts.push(`${last.outcome.replace('_', ' ')} ${shortKey}`.trim());
  }
  parts.push(`dlq ${deadLetters}`);
  if (parked > 0) parts.push(`parked ${parked}`);
  return parts.join(' · ');
}

/** What a stream must offer to be held back (a net.Socket does). */
interface Corkable {
  cork(): void;
  uncork(): void;
  writable?: boolean;
}

/**
 * The sockets of the MQTT brokers that the nodes wired to output 1 publish through (core mqtt out
 * nodes: `brokerConn.client.stream`); none when something else is wired there.
 *
 * Why: Node-RED delivers each message in a setImmediate of its own, and mqtt.js flushes each
 * packet on the next tick, so a batch of a hundred entries cost a hundred writev calls, in the
 * runtime and in the broker: a tenth of the runtime's CPU under a backlog. Held back while the
 * batch's messages are delivered, the socket takes them in one write. Holding back changes no
 * order and loses nothing: the socket is released right after those deliveries.
 */
function feedSockets(RED: RED, wires: string[] | undefined): Corkable[] {
  const sockets = new Set<Corkable>();
  for (const id of wires ?? []) {
    const out = RED.nodes.getNode(id) as { brokerConn?: { client?: { stream?: Partial<Corkable> } } } | undefined;
    const stream = out?.brokerConn?.client?.stream;
    if (stream && typeof stream.cork === 'function' && typeof stream.uncork === 'function' && stream.writable !== false) sockets.add(stream as Corkable);
  }
  return [...sockets];
}

export = function registerExsChangeLog(RED: RED) {
  function ExsChangeLog(this: RedNode, config: JobNodeConfig) {
    RED.nodes.createNode(this, config);
    const job = jobOf(RED, this, config.job);
    if (!job) return;
    // The last outcome and the dead letters waiting, refreshed a few times a second at most.
    let last: ChangeLogEntry | undefined;
    let statusTimer: NodeJS.Timeout | undefined;
    const render = () => {
      const { deadLetters, counters } = job.state();
      const fill = deadLetters + counters.parked > 0 ? 'yellow' : 'green';
      this.status({ fill, shape: 'dot', text: statusText(last, deadLetters, counters.parked) });
    };
    const showStatus = () => {
      statusTimer ??= setTimeout(() => {
        statusTimer = undefined;
        render();
      }, STATUS_INTERVAL_MS);
    };
    render();
    job.ready.then(render, () => undefined);
    job.on('state', showStatus);
    // `changelog_feed: batch`: a group's entries leave as one message whose payload is their array.
    const grouped = job.settings.changelog_feed === 'batch';
    // Entries the job writes itself (events coalesced into a newer one by a flush or a backlog, resolved
    // conflicts) are published too; in batch mode those of one turn of the event loop together
    // (a flush writes its superseded entries one by one). They carry no envelope.
    let jobEntries: ChangeLogEntry[] = [];
    let jobEntriesTimer: NodeJS.Immediate | undefined;
    const sendJobEntries = () => {
      jobEntriesTimer = undefined;
      const entries = jobEntries;
      jobEntries = [];
      const lengths = entries.map((entry) => JSON.stringify(entry).length);
      for (const group of groupBySize(entries, lengths)) this.send([{ topic: job.settings.changelog, payload: group }, null]);
    };
    const publishJobEntry = (entry: ChangeLogEntry) => {
      last = entry;
      showStatus();
      if (!grouped) return this.send([{ topic: job.settings.changelog, payload: entry }, null]);
      jobEntries.push(entry);
      jobEntriesTimer ??= setImmediate(sendJobEntries);
    };
    job.on('entry', publishJobEntry);
    /** Change-log writes waiting to be tried again (the log failed); dropped at close. */
    const retries = new Set<NodeJS.Timeout>();
    /** Events whose entries this node is writing: given up at close, so the next node writes them. */
    const storing = new Set<number>();
    let closed = false;
    this.on('close', (_removed, done) => {
      closed = true;
      for (const retry of retries) clearTimeout(retry);
      retries.clear();
      for (const seq of storing) job.stopLogging(seq);
      storing.clear();
      if (statusTimer) clearTimeout(statusTimer);
      // The job's entries still waiting for their turn go out now: they are on disk already.
      if (jobEntriesTimer) {
        clearImmediate(jobEntriesTimer);
        sendJobEntries();
      }
      job.removeListener('state', showStatus);
      job.removeListener('entry', publishJobEntry);
      done();
    });

    // One entry per event whatever the message carried, all of them on disk before any is
    // published: each as a message of its own (`changelog_feed: entry`, the data lake reads one
    // entry per MQTT message), or the group's entries as one message (`batch`), which spares the
    // runtime and the broker a QoS 1 exchange per entry.
    this.on('input', (msg, send, done) => {
      let items: EventItem[];
      try {
        items = itemsOf(msg);
      } catch (err) {
        return done(err as Error);
      }
      if (items.length === 0) return done();
      if (items.some((item) => !item.exs || typeof item.exs.seq !== 'number')) {
        return done(new Error('exs-change-log takes messages from an EXS job (msg.exs is missing)'));
      }
      const now = Date.now();
      // Another copy of an event whose entry is being written (or tried again) adds none: after a
      // deploy an event can come twice.
      const mine = items.filter(({ exs: envelope }) => job.startLogging(envelope.seq));
      if (mine.length === 0) return done();
      for (const { exs: envelope } of mine) storing.add(envelope.seq);
      const logged = mine.map(({ payload, exs: envelope }) => {
        const entry = buildChangeLogEntry(envelope, payload, now);
        const letter = entry.outcome === 'dead_letter'
          ? {
              id: entry.seq, job: job.id, topic: envelope.topic, error: entry.error ?? 'unknown error', attempts: entry.attempts,
              event: typeof entry.event === 'string' ? entry.event : JSON.stringify(entry.event ?? null),
              firstReceivedAt: new Date(envelope.receivedAt).toISOString(), deadAt: entry.time,
            }
          : undefined;
        return { envelope, entry, letter };
      });
      const letters = logged.flatMap(({ letter }) => (letter ? [letter] : []));
      const publish = (lengths: number[]) => {
        // One send per message: Node-RED deep-copies every message of a send but the first.
        // The feed's sockets are released after the deliveries, which were queued before.
        const held = logged.length > 1 ? feedSockets(RED, (this as RedNode & { wires?: string[][] }).wires?.[0]) : [];
        for (const socket of held) socket.cork();
        try {
          if (grouped) {
            // Split only where the entries add up to more than a broker takes in one packet.
            for (const group of groupBySize(logged, lengths)) {
              const exs: BatchEnvelope = { job: job.id, batch: group.map(({ envelope }) => envelope) };
              send([{ topic: job.settings.changelog, payload: group.map(({ entry }) => entry), exs }, null]);
            }
          }
          for (const { entry, envelope, letter } of logged) {
            if (!grouped) send([{ topic: job.settings.changelog, payload: entry, exs: envelope }, null]);
            if (letter) send([null, { topic: job.settings.dead_letter, payload: letter, exs: envelope }]);
            job.settle(envelope.seq, entry.outcome);
          }
        } finally {
          // Whatever happened above, the sockets are released: a corked one would hold the feed for good.
          if (held.length > 0) setImmediate(() => held.forEach((socket) => socket.uncork()));
        }
        last = logged[logged.length - 1].entry;
        showStatus();
      };
      // A log that cannot be written (a full disk) keeps these events unsettled, in flight: the
      // same entries are written again, as a down destination is probed, until the log takes them
      // (the queue hands out no more than its window meanwhile). Writing the events to the
      // destination again instead would let an older one overwrite a newer one written meanwhile.
      const store = (attempt: number): void => {
        job.recordDeadLetter(...letters)
          .then(() => job.changeLog.appendAll(logged.map(({ entry }) => entry)))
          .then(
            (lengths) => {
              // On disk: settled and published even if the node closed meanwhile.
              for (const { envelope } of logged) storing.delete(envelope.seq);
              publish(lengths);
              if (attempt === 1) done();
            },
            (err: Error) => {
              if (closed) return; // unsettled: the events come again after the redeploy
              // Reported once per message (Catch nodes see it), tried again until it works.
              if (attempt === 1) done(new Error(`change log write failed (trying again): ${err.message}`));
              const retry = setTimeout(() => {
                retries.delete(retry);
                store(attempt + 1);
              }, outageProbeDelayMs(attempt, 1));
              retries.add(retry);
            },
          );
      };
      store(1);
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
