// Everything a connector node does that does not depend on the destination: wait for the
// mapper's schema, open the connector at deploy (a missing table is reported there, not per
// event) and again after an outage, keep each record's writes in arrival order, tell the job
// whether a failure is transient (pause and retry) or about the data (retry, then dead
// letter), and drain writes in flight before closing on redeploy. A developer adds a
// destination by implementing SyncConnector and calling this.
import type { DestinationSchema, JobSettings } from '../core/sync-job';
import type { ApplyResult, ExsEnvelope, SyncConnector } from '../core/types';
import type { RecordOrder } from '../core/queue/record-order';
import { isBatchMessage, itemsOf, messagesFor, type EventItem } from './batch-message';
import { jobOf } from './job-node';
import type { DoneFunction, JobNodeConfig, NodeMessage, RED, RedNode, SendFunction } from './red';

/** How long a connector waits at deploy for its job's mapper to declare the columns. */
const SCHEMA_WAIT_MS = 5_000;
/** Node-RED gives a closing node 15 s; writes in flight get most of it. */
const DRAIN_MS = 10_000;

/** Most records written in one batch. */
const MAX_BATCH = 500;

/** An input message: its events are written and settled one by one, and it is done once the last one is. */
interface Arrival {
  msg: NodeMessage;
  asBatch: boolean;
  send: SendFunction;
  done: DoneFunction;
  /** Events of this message not settled yet. */
  open: number;
  finished: boolean;
}

interface PendingWrite {
  item: EventItem;
  arrival: Arrival;
}

function finish(arrival: Arrival): void {
  if (arrival.finished) return;
  arrival.finished = true;
  arrival.done();
}

/** Keys are compared as lower-case text, as a case-insensitive collation would. */
const recordOf = (write: PendingWrite) => String(write.item.exs.record!.keyValue).toLowerCase();

/**
 * The next batch: the oldest waiting event of each record that has no write under way, up to
 * MAX_BATCH, taken out of the queue; a record's later events stay queued, in order, for the
 * batches after, so each record's events are written in the order they arrived.
 */
export function takeBatch(queue: PendingWrite[], busy: ReadonlySet<string>, order: RecordOrder): PendingWrite[] {
  const batch: PendingWrite[] = [];
  const seen = new Set<string>();
  const rest: PendingWrite[] = [];
  for (const write of queue) {
    const key = recordOf(write);
    const seq = write.item.exs.seq;
    const waitingFor = order.waitsFor(key);
    // A record whose failed event will come again waits for it: its later events must not overtake
    // it. (It comes again behind them in the queue, so they must not hold it back either; nor must
    // an earlier event of the record, which would otherwise wait behind a later one for good.)
    if (waitingFor !== undefined && seq > waitingFor) {
      rest.push(write);
      continue;
    }
    if (batch.length < MAX_BATCH && !seen.has(key) && !busy.has(key)) {
      batch.push(write);
      order.release(seq);
    } else {
      rest.push(write);
    }
    seen.add(key);
  }
  queue.splice(0, queue.length, ...rest);
  return batch;
}

export type ConnectorFactory = (schema: DestinationSchema | undefined, job: JobSettings) => SyncConnector;

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Errors a connector marks transient (a DbError with `transient`, a lost connection). */
function isTransient(err: unknown): boolean {
  return Boolean((err as { transient?: boolean } | undefined)?.transient);
}

class DestinationNotReady extends Error {
  readonly transient = true;
}

export function runConnectorNode(red: RED, node: RedNode, config: JobNodeConfig, createConnector: ConnectorFactory): void {
  const job = jobOf(red, node, config.job);
  if (!job) return;
  let closing = false;
  let opening: Promise<SyncConnector> | undefined;
  /** A failed open is tried again at most this often, however many events arrive meanwhile. */
  const REOPEN_AFTER_MS = 1000;
  let lastFailure: { at: number; error: unknown } | undefined;
  let detachConflicts: (() => void) | undefined;
  /** Batches written at once under a backlog: what the open connector can take (SyncConnector.parallelBatches). */
  let parallel = 1;

  /** The open connector; a failed open is forgotten so the next write tries again. */
  const connected = (): Promise<SyncConnector> => {
    if (!opening && lastFailure && Date.now() - lastFailure.at < REOPEN_AFTER_MS) return Promise.reject(lastFailure.error);
    if (!opening) {
      node.status({ fill: 'yellow', shape: 'ring', text: 'connecting' });
      const attempt = job.whenSchema(SCHEMA_WAIT_MS).then(async (schema) => {
        const connector = createConnector(schema, job.settings);
        try {
          await connector.open();
        } catch (err) {
          await connector.close().catch(() => undefined);
          throw err;
        }
        if (connector.listConflicts && connector.resolveParked) {
          const { listConflicts, resolveParked } = connector;
          detachConflicts = job.attachConflictDesk({
            list: () => listConflicts.call(connector),
            resolve: (key, take) => resolveParked.call(connector, key, take),
          });
        }
        return connector;
      });
      opening = attempt;
      attempt.then(
        (c) => {
          parallel = Math.max(1, c.parallelBatches ?? 1);
          node.status({ fill: 'green', shape: 'dot', text: c.describe().slice(0, 32) });
        },
        (err) => {
          if (opening === attempt) opening = undefined;
          lastFailure = { at: Date.now(), error: err };
          node.status({ fill: 'red', shape: 'ring', text: 'not ready' });
          node.error(`${job.id}: destination not ready: ${errorText(err)}`);
        },
      );
    }
    return opening;
  };
  connected().catch(() => undefined);

  // Adaptive micro-batching: when the destination is idle an event is written at once; events
  // that arrive while writes are under way are written together next, up to MAX_BATCH of them.
  // Up to `parallel` batches run at once: an event that arrives while a write is under way goes out
  // on a free connection at once rather than waiting for that write (at 500 events/s this took the
  // median publish-to-write from 4.3 to 2.7 ms and the p99 from 32 to 24 ms, bench/sync-bench.js),
  // and under a backlog the database works on one batch while the flow settles another. A record
  // is never in two of them, and a record whose event failed waits for that event to come again
  // before its later events are written.
  const queue: PendingWrite[] = [];
  const writing = new Set<Promise<void>>();
  const busy = new Set<string>();
  /** Records whose failed event will be delivered again: the job's, so they outlive this node. */
  const order = job.recordOrder;
  // An event waited for may be settled another way (another copy of it was written): its record's
  // later events may go now. The job releases it before it tells.
  const forgetSettled = (): void => {
    if (queue.length > 0) kick();
  };
  job.on('released', forgetSettled);
  const kick = (): void => {
    while (!closing && writing.size < parallel && queue.length > 0) {
      const batch = takeBatch(queue, busy, order);
      if (batch.length === 0) return;
      const keys = batch.map(recordOf);
      for (const key of keys) busy.add(key);
      const run: Promise<void> = writeBatch(batch)
        .catch((err) => node.error(`write loop: ${errorText(err)}`))
        .finally(() => {
          writing.delete(run);
          for (const key of keys) busy.delete(key);
          kick();
        });
      writing.add(run);
    }
  };

  const deadLetter = (item: EventItem, error: string): EventItem => ({ payload: item.payload, exs: { ...item.exs, outcome: 'dead_letter', error } });

  /** The event's next message (written, or dead letter), or nothing when it will come again. */
  const settle = (write: PendingWrite, outcome: { result?: ApplyResult; error?: unknown }): { written?: EventItem; dead?: EventItem } => {
    const { item } = write;
    if (outcome.result) {
      job.noteWritten(item.exs.seq, outcome.result);
      return { written: { payload: item.payload, exs: { ...item.exs, result: outcome.result, outcome: outcome.result.outcome } } };
    }
    const transient = isTransient(outcome.error);
    const answer = job.fail(item.exs.seq, transient ? 'transient' : 'data', item.exs);
    if (answer === 'dead_letter') return { dead: deadLetter(item, errorText(outcome.error)) };
    // The record's later events wait for this one to come again; a copy that is `gone` will not.
    if (answer === 'retry') order.hold(recordOf(write), item.exs.seq);
    return {};
  };

  /** Settles a batch's writes and sends each input message's events on, in the shape they came. */
  const settleAll = (batch: PendingWrite[], outcomeOf: (index: number) => { result?: ApplyResult; error?: unknown }): void => {
    const byArrival = new Map<Arrival, { written: EventItem[]; dead: EventItem[] }>();
    batch.forEach((write, i) => {
      let out = byArrival.get(write.arrival);
      if (!out) byArrival.set(write.arrival, (out = { written: [], dead: [] }));
      try {
        const { written, dead } = settle(write, outcomeOf(i));
        if (written) out.written.push(written);
        if (dead) out.dead.push(dead);
      } catch (err) {
        node.error(`settling ${String(write.item.exs.key)}: ${errorText(err)}`);
      }
      write.arrival.open -= 1;
    });
    for (const [arrival, { written, dead }] of byArrival) {
      // Two sends: Node-RED deep-copies every message of a send but the first.
      if (written.length > 0) arrival.send([messagesFor(arrival.msg, arrival.asBatch, written), null]);
      if (dead.length > 0) arrival.send([null, messagesFor(arrival.msg, arrival.asBatch, dead)]);
      if (arrival.open === 0) finish(arrival);
    }
  };

  const writeBatch = async (taken: PendingWrite[]): Promise<void> => {
    // A copy of an event this run has written already (it was handed out again after a deploy) is
    // not written again: written after a newer event of its record, an older one would undo it
    // (the later arrival wins for events without a version). It goes on with what the first write
    // decided; a copy of an event whose entry is on disk already goes no further.
    let batch = taken;
    const earlier = taken.map((write) => job.writtenAs(write.item.exs.seq));
    if (earlier.some((result) => result !== undefined)) {
      batch = taken.filter((_, i) => earlier[i] === undefined);
      const copies = taken.filter((_, i) => earlier[i] !== undefined && earlier[i] !== 'settled');
      const results = earlier.filter((result): result is ApplyResult => result !== undefined && result !== 'settled');
      for (const [i, write] of taken.entries()) {
        if (earlier[i] !== 'settled') continue;
        write.arrival.open -= 1;
        if (write.arrival.open === 0) finish(write.arrival);
      }
      if (copies.length > 0) settleAll(copies, (i) => ({ result: { ...results[i], reason: `${results[i].reason ? `${results[i].reason}; ` : ''}written already by another copy of this event` } }));
      if (batch.length === 0) return;
    }
    let connector: SyncConnector;
    try {
      connector = await connected();
    } catch (err) {
      const notReady = new DestinationNotReady(`destination not ready: ${errorText(err)}`);
      settleAll(batch, () => ({ error: notReady }));
      return;
    }
    const items = batch.map((w) => ({ record: w.item.exs.record!, policy: w.item.exs.conflict }));
    type Outcome = { result?: ApplyResult; error?: unknown };
    const outcomes: Outcome[] = connector.applyBatch
      ? await connector.applyBatch(items).catch((error: unknown) => items.map(() => ({ error })))
      // Records of different keys, in parallel on the connector's own pool.
      : await Promise.all(items.map((item) => connector.apply(item.record, item.policy).then((result): Outcome => ({ result }), (error: unknown): Outcome => ({ error }))));
    settleAll(batch, (i) => outcomes[i] ?? { error: new DestinationNotReady('the connector gave no result for this record') });
    const last = batch[batch.length - 1];
    const failed = outcomes.find((o) => o.error);
    if (failed) node.status({ fill: 'red', shape: 'ring', text: isTransient(failed.error) ? 'destination down' : 'write failed' });
    else node.status({ fill: 'green', shape: 'dot', text: `${outcomes[outcomes.length - 1].result?.outcome} ${String(last.item.exs.key)}`.slice(0, 32) });
  };

  node.on('input', (msg, send, done) => {
    if (closing) return done(new Error('connector is closing; the event stays in the journal'));
    let items: EventItem[];
    try {
      items = itemsOf(msg);
    } catch (err) {
      return done(err as Error);
    }
    const asBatch = isBatchMessage(msg);
    const unmapped = items.filter((item) => !item.exs?.record);
    const arrival: Arrival = { msg, asBatch, send, done, open: items.length - unmapped.length, finished: false };
    if (unmapped.length > 0) {
      const reason = 'message has no mapped record: wire an exs-mapper before the connector';
      send([null, messagesFor(msg, asBatch, unmapped.map((item) => deadLetter(item, reason)))]);
    }
    if (arrival.open === 0) return finish(arrival);
    for (const item of items) if (item.exs?.record) queue.push({ item, arrival });
    kick();
  });

  node.on('close', (_removed, done) => {
    closing = true;
    job.removeListener('released', forgetSettled);
    // What is still queued is left in the journal, unsettled: it is delivered again after the redeploy.
    for (const write of queue.splice(0)) finish(write.arrival);
    const drained = Promise.all(writing);
    const timeout = new Promise((resolve) => setTimeout(resolve, DRAIN_MS).unref());
    Promise.race([drained, timeout])
      .then(() => opening?.catch(() => undefined))
      .then((connector) => {
        detachConflicts?.();
        return connector?.close();
      })
      .catch((err) => node.error(errorText(err)))
      .finally(done);
  });
}
