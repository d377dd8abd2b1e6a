// The shared state of one sync job while it runs: its journal (every accepted event, on
// disk before it is acknowledged), the dispatcher that hands events to the flow, the change
// log, the dead letters, and the destination schema the mapper declares. The exs-job config
// node owns one; every node of the job talks through it, so acknowledgements and retries
// travel back to the queue without hidden globals.
import { EventEmitter } from 'node:events';
import * as path from 'node:path';
import { ChangeLogStore } from './changelog-store';
import { SyncJournal } from './journal/sync-journal';
import { DeadLetterStore, type DeadLetter } from './queue/dead-letters';
import { SyncDispatcher, type Delivery, type DispatcherState, type FailureAnswer, type FailureKind, type JournalRecord, type RecordIdentity } from './queue/dispatcher';
import type { ParkedConflict } from './conflict';
import { parseEvent } from './event';
import { outageProbeDelayMs } from './queue/backoff';
import { RecordOrder } from './queue/record-order';
import type { ApplyResult, BacklogMode, ChangeLogEntry, ChangelogFeed, ConflictRule, RetryPolicy, SettledOutcome } from './types';

/** What the queue node tells the job when it attaches. */
export interface QueueOptions {
  /** The queue's size limit for an event (it dead-letters larger ones); parseEvent's default when unset. */
  maxEventBytes?: number;
  /** The queue node's id: a deploy that changes a node its messages reach may have dropped events (deployFinished). */
  nodeId?: string;
}

export interface JobSettings {
  id: string;
  source_topic: string;
  destination: string;
  /** `realtime`, `hourly`, `nightly` or a cron expression. */
  schedule: string;
  conflict_rule: ConflictRule;
  retry_policy: RetryPolicy;
  dead_letter: string;
  changelog: string;
  changelog_feed: ChangelogFeed;
  backlog: BacklogMode;
}

/** The destination columns a mapper writes, so the connector can check them at deploy. */
export interface DestinationSchema {
  keyColumn: string;
  /**
   * The record key and version of a raw event, read as the mapper reads them: what held schedules
   * coalesce by. Undefined for an event the mapper will refuse (no key, a flagged version).
   */
  identify?: (event: unknown) => RecordIdentity | undefined;
  columns: string[];
  /** Column fed by the event's version field: what LAST_WRITE_WINS compares. */
  timestampColumn?: string;
}

export type JobCounters = Record<SettledOutcome, number>;

/** A record whose conflict waits for a person (MANUAL). */
export interface ParkedRecord extends ParkedConflict {
  key: string;
}

/** Where a job's parked conflicts live: its connector, which keeps them in the destination. */
export interface ConflictDesk {
  list(): Promise<ParkedRecord[]>;
  resolve(key: string, take: 'hms' | 'destination'): Promise<ApplyResult>;
}

export interface JobState extends DispatcherState {
  deadLetters: number;
  counters: JobCounters;
}

/** Outcomes that show the destination took the write (or had it already). */
const DESTINATION_REACHED: ReadonlySet<SettledOutcome> = new Set(['applied', 'unchanged', 'skipped', 'parked']);

export class SyncJob extends EventEmitter {
  readonly changeLog: ChangeLogStore;
  readonly deadLetters: DeadLetterStore;
  readonly counters: JobCounters = { applied: 0, unchanged: 0, skipped: 0, parked: 0, superseded: 0, dead_letter: 0, failed: 0 };
  /** Resolves once the journal is open and recovered. */
  readonly ready: Promise<void>;
  private journal?: SyncJournal;
  private dispatcher?: SyncDispatcher;
  /** Records whose failed event will come again: their later events wait (connector nodes keep this order). */
  readonly recordOrder = new RecordOrder();
  /** Between a deploy's start and end: the events that were in the flow. */
  private inTheFlowAtDeploy?: { dispatcher: SyncDispatcher; seqs: number[]; handouts: number };
  private queueNodeId?: string;
  /** Events a connector wrote whose change-log entry is not written yet, and what the write decided (writtenAs()). */
  private readonly writtenUnsettled = new Map<number, ApplyResult>();
  /** Events whose change-log entry a change-log node is writing (or trying again): another copy of one adds no entry. */
  private readonly logging = new Set<number>();
  /** Dead letters stored whose events are not settled yet (their change-log entry is not written). */
  private readonly lettersAwaitingLog = new Set<number>();
  /** Timers of superseded events whose change-log entry is tried again. */
  private readonly supersededRetries = new Set<NodeJS.Timeout>();
  /** Queue attachments so far, and the current dispatcher's (stamped on its deliveries). */
  private queueAttachments = 0;
  private dispatcherQueue = 0;
  private schema: DestinationSchema | undefined;
  private readonly schemaWaiters: Array<(schema: DestinationSchema) => void> = [];
  private deadLetterCount = 0;
  private conflictDesk?: ConflictDesk;
  private closed = false;

  constructor(readonly settings: JobSettings, dataDir: string) {
    super();
    this.setMaxListeners(50);
    this.changeLog = new ChangeLogStore(dataDir, settings.id);
    // Its entries are on disk; the file just grows past its limit until a rotation works.
    this.changeLog.on('rotateFailed', (err: Error) => {
      if (this.listenerCount('error') > 0) this.emit('error', new Error(`change log rotation failed, the file grows on: ${err.message}`));
    });
    const jobDir = path.dirname(this.changeLog.file);
    const deadLetters = new DeadLetterStore(jobDir);
    this.deadLetters = deadLetters;
    this.ready = (async () => {
      this.journal = await SyncJournal.open(path.join(jobDir, 'journal'));
      this.deadLetterCount = await deadLetters.waiting();
    })();
    // Reported by whoever awaits `ready`; this keeps an early failure from being unhandled.
    this.ready.catch(() => undefined);
  }

  get id(): string {
    return this.settings.id;
  }

  /** Stores an event durably; resolves with its sequence number once it is on disk. */
  async accept(topic: string, payload: Buffer, receivedAt = Date.now()): Promise<number> {
    await this.ready;
    if (this.closed || !this.journal) throw new Error(`job ${this.id} is closed`);
    const seq = await this.journal.append(topic, payload, receivedAt);
    this.dispatcher?.notify();
    return seq;
  }

  /**
   * Connects the job's queue node: from now on events are delivered to it from the journal,
   * those left unsettled by an earlier run first. Returns the function that detaches it.
   */
  attachQueue(deliver: (delivery: Delivery) => void, options: QueueOptions = {}): () => void {
    if (this.dispatcher) throw new Error(`job ${this.id} already has a sync queue`);
    let detached = false;
    const queue = ++this.queueAttachments;
    this.queueNodeId = options.nodeId;
    void this.ready.then(() => {
      if (detached || this.closed || !this.journal) return;
      const dispatcher = new SyncDispatcher(this.journal, deliver, {
        retry: this.settings.retry_policy,
        schedule: this.settings.schedule,
        identify: (record) => this.identify(record, options.maxEventBytes),
        coalesceBacklog: this.settings.backlog === 'newest_per_record',
        queue,
      });
      dispatcher.on('state', () => this.emit('state'));
      dispatcher.on('paused', () => this.emit('paused'));
      dispatcher.on('resumed', () => this.emit('resumed'));
      dispatcher.on('superseded', (record: JournalRecord, newest: number, key: string) => void this.logSuperseded(record, newest, key));
      dispatcher.on('error', (err: Error) => this.emit('error', err));
      this.dispatcher = dispatcher;
      this.dispatcherQueue = queue;
      dispatcher.start();
    });
    return () => {
      detached = true;
      this.dispatcher?.stop();
      this.dispatcher = undefined;
    };
  }

  /**
   * Called once the event's change-log entry is durable: the event is done. Events of a
   * dead letter are stored as letters first (see `recordDeadLetter`).
   */
  settle(seq: number, outcome: SettledOutcome): void {
    this.counters[outcome] += 1;
    this.lettersAwaitingLog.delete(seq);
    this.writtenUnsettled.delete(seq);
    this.logging.delete(seq);
    // Settled another way than by the copy a connector waits for (after a deploy): its record goes on.
    if (this.recordOrder.release(seq)) this.emit('released', seq);
    // Its entry is on disk: settled in the journal even while no queue node is attached (one
    // redeployed alone), or the next one would hand the event out again.
    if (this.dispatcher) this.dispatcher.settled(seq, DESTINATION_REACHED.has(outcome));
    else if (!this.closed) this.journal?.settle(seq);
    this.emit('settled', { seq, outcome });
    this.emit('state');
  }

  /** A connector wrote the event (whatever the law decided): another copy of it is not written again. */
  noteWritten(seq: number, result: ApplyResult): void {
    this.writtenUnsettled.set(seq, result);
  }

  /**
   * What the write of an event this run has written decided (a copy of it then goes on with that
   * result, not written again); `settled` when its entry is on disk already (a copy adds nothing);
   * undefined when it has not been written.
   */
  writtenAs(seq: number): ApplyResult | 'settled' | undefined {
    if (this.journal?.isSettled(seq)) return 'settled';
    return this.writtenUnsettled.get(seq);
  }

  /**
   * A change-log node starts writing the event's entry: false when another copy's entry is being
   * written already, or is on disk (it is not written twice). stopLogging() when the node gives up
   * (closes), so the next one writes it.
   */
  startLogging(seq: number): boolean {
    if (this.logging.has(seq) || this.journal?.isSettled(seq)) return false;
    this.logging.add(seq);
    return true;
  }

  stopLogging(seq: number): void {
    this.logging.delete(seq);
  }

  /**
   * A deploy begins (Node-RED's `flows:starting`): the events now in the flow are noted, since a
   * node that holds some may be stopped and replaced (a deploy of modified nodes or flows).
   */
  deployStarting(): void {
    this.inTheFlowAtDeploy = this.dispatcher && { dispatcher: this.dispatcher, seqs: this.dispatcher.inTheFlowNow(), handouts: this.dispatcher.handoutCount };
  }

  /**
   * The deploy is done (`flows:started`; `changedAfter(id)`: whether it stopped a node that node
   * `id`'s messages reach). When it replaced a node between the queue and the change log while this
   * job ran on, what was in the flow before it and is still not heard of goes out again: the old
   * node may have held it. (A full deploy replaces the job too, which starts afresh.)
   */
  deployFinished(type: string | undefined, changedAfter: (nodeId: string) => boolean = () => false): void {
    const before = this.inTheFlowAtDeploy;
    // A node the queue node's messages reach was stopped: an EXS node or any other (a delay node
    // between the mapper and the connector holds messages too).
    const restarted = this.queueNodeId !== undefined && changedAfter(this.queueNodeId);
    this.inTheFlowAtDeploy = undefined;
    if (type === 'full' || !restarted || !before || this.closed) return;
    // A queue node replaced in the same deploy has handed everything unsettled out afresh already.
    if (this.dispatcher !== before.dispatcher) return;
    // Also what went out during the deploy (a retry's timer, say) before the node to take it was
    // started: Node-RED drops a message to a node it has not created yet.
    const during = this.dispatcher.inTheFlowNow(before.handouts);
    this.dispatcher.redeliver([...new Set([...before.seqs, ...during])]);
  }

  /**
   * A copy of an event failed (see FailureAnswer). `copy` is its envelope's `queue` and `handout`:
   * a copy an earlier queue node handed out (one redeployed alone) is no attempt of the current
   * one's, which hands the event out itself (`retry`, or `gone` once settled); without a queue node
   * the event stays in the journal for the next one (`retry`).
   */
  fail(seq: number, kind: FailureKind, copy: { queue?: number; handout?: number } = {}): FailureAnswer {
    // No queue node, or an earlier one's copy: the current (or next) queue node hands the event out
    // itself, unless it is settled.
    if (!this.dispatcher || (copy.queue !== undefined && copy.queue !== this.dispatcherQueue)) return this.journal?.isSettled(seq) ? 'gone' : 'retry';
    return this.dispatcher.failed(seq, kind, copy.handout);
  }

  async recordDeadLetter(...letters: DeadLetter[]): Promise<void> {
    // A letter stored whose change-log entry then failed comes again with the event's next probe:
    // stored once, or a replay would send the event once per copy.
    const fresh = letters.filter((letter) => !this.lettersAwaitingLog.has(letter.id));
    if (fresh.length === 0) return;
    await this.deadLetters.add(...fresh);
    for (const letter of fresh) this.lettersAwaitingLog.add(letter.id);
    this.deadLetterCount += fresh.length;
  }

  /** Sends dead letters (all, or those ids) through the job again as new events. */
  async replayDeadLetters(ids?: number[]): Promise<DeadLetter[]> {
    const waiting = await this.deadLetters.list();
    const chosen = ids ? waiting.filter((l) => ids.includes(l.id)) : waiting;
    for (const letter of chosen) await this.accept(letter.topic ?? this.settings.source_topic, Buffer.from(letter.event, 'utf8'));
    await this.deadLetters.markReplayed(chosen.map((l) => l.id));
    this.deadLetterCount = await this.deadLetters.waiting();
    this.emit('state');
    return chosen;
  }

  /** Applies held events now (hourly, nightly and cron schedules). */
  async flush(): Promise<void> {
    await this.ready;
    await this.dispatcher?.flush();
  }

  state(): JobState {
    const base: DispatcherState = this.dispatcher?.state() ?? {
      depth: this.journal?.pendingCount() ?? 0,
      inFlight: 0,
      retrying: 0,
      paused: false,
    };
    return { ...base, deadLetters: this.deadLetterCount, counters: { ...this.counters } };
  }

  /** The connector offers its parked conflicts; returns the function that withdraws them. */
  attachConflictDesk(desk: ConflictDesk): () => void {
    this.conflictDesk = desk;
    return () => {
      if (this.conflictDesk === desk) this.conflictDesk = undefined;
    };
  }

  /** Parked conflicts waiting for a person; fails when the job's destination keeps none (not open, or not ODBC). */
  async listConflicts(): Promise<ParkedRecord[]> {
    return this.desk().list();
  }

  /** Settles a parked conflict and records the decision in the change log. */
  async resolveConflict(key: string, take: 'hms' | 'destination'): Promise<ChangeLogEntry> {
    const result = await this.desk().resolve(key, take);
    const entry: ChangeLogEntry = {
      time: new Date().toISOString(),
      job: this.id,
      seq: 0,
      key,
      outcome: 'resolved',
      dest_row: 'RESOLVED',
      before: result.before,
      after: result.after,
      attempts: 0,
      latency_ms: 0,
      reason: result.reason,
      conflicts: result.conflicts,
    };
    await this.changeLog.append(entry);
    this.counters.parked = Math.max(0, this.counters.parked - 1);
    this.emit('entry', entry);
    this.emit('state');
    return entry;
  }

  private desk(): ConflictDesk {
    if (!this.conflictDesk) throw new Error(`job ${this.id} has no open ODBC connector to keep conflicts in`);
    return this.conflictDesk;
  }

  declareSchema(schema: DestinationSchema): void {
    // A new mapping (the mapper redeployed alone): events read ahead were identified by the old one.
    if (this.schema) this.dispatcher?.mappingChanged();
    this.schema = schema;
    for (const waiter of this.schemaWaiters.splice(0)) waiter(schema);
    this.emit('schema', schema);
  }

  /** The mapper's schema, or undefined when no mapper declares one within `timeoutMs`. */
  whenSchema(timeoutMs: number): Promise<DestinationSchema | undefined> {
    if (this.schema) return Promise.resolve(this.schema);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(undefined), timeoutMs);
      this.schemaWaiters.push((schema) => {
        clearTimeout(timer);
        resolve(schema);
      });
    });
  }

  /**
   * The event's record key and version, read by the mapper's rules; undefined when the queue
   * (not JSON, not an object, over its size limit) or the mapper would refuse it: such an event
   * goes to the dead letter, so it must neither replace another nor be replaced.
   */
  private identify(record: JournalRecord, maxEventBytes?: number): RecordIdentity | undefined {
    const identify = this.schema?.identify;
    if (!identify) return undefined;
    const parsed = parseEvent(record.payload, maxEventBytes);
    return parsed.ok ? identify(parsed.event) : undefined;
  }

  /**
   * An event replaced by a newer one of the same record (a held flush, `backlog: newest_per_record`):
   * it is recorded, not written, and settled once its entry is on disk. An entry that cannot be
   * written leaves it unsettled: it comes again after a restart, as any event the log failed.
   */
  private async logSuperseded(record: JournalRecord, newest: number, key: string, attempt = 1, by = this.dispatcher): Promise<void> {
    const entry: ChangeLogEntry = {
      time: new Date().toISOString(),
      job: this.id,
      seq: record.seq,
      key,
      outcome: 'superseded',
      dest_row: 'SUPERSEDED',
      attempts: 0,
      latency_ms: Date.now() - record.receivedAt,
      reason: `coalesced into event #${newest}`,
    };
    try {
      await this.changeLog.append(entry);
    } catch (err) {
      if (this.closed) return;
      // Reported once per event, not per try: a log that fails fails for every one of them.
      if (attempt === 1 && this.listenerCount('error') > 0) this.emit('error', err);
      // Tried again (as a down destination is probed) until the log takes it: unlogged, it would
      // stay in flight, and hold the journal's low-water mark, until a restart.
      const timer = setTimeout(() => {
        this.supersededRetries.delete(timer);
        // Not for a queue node replaced meanwhile: the new one hands the event out itself.
        if (!this.closed && this.dispatcher === by) void this.logSuperseded(record, newest, key, attempt + 1, by);
      }, outageProbeDelayMs(attempt, 1));
      timer.unref?.();
      this.supersededRetries.add(timer);
      return;
    }
    if (this.closed) return;
    this.settle(record.seq, 'superseded');
    this.emit('entry', entry);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.supersededRetries) clearTimeout(timer);
    this.supersededRetries.clear();
    this.dispatcher?.stop();
    this.dispatcher = undefined;
    await this.ready.catch(() => undefined);
    await this.journal?.close();
    await this.changeLog.close();
    this.removeAllListeners();
  }
}
