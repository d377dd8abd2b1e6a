// Takes a job's events from its journal and hands them to the flow, a bounded window at a
// time, so the backlog stays on disk however long it grows. Decides what happens after a
// failure: a destination that is down pauses the job and retries the same event until it
// is back (no attempts burned); a data failure is retried with backoff up to max_attempts
// and then dead-lettered. Held schedules flush on time, writing only the newest event of
// each record (and an older one that fills a column the newest leave out); a realtime job
// with `backlog: newest_per_record` does the same with the events waiting in its journal.
import { EventEmitter } from 'node:events';
import type { JournalRecord } from '../journal/sync-journal';
import { compareVersions, type SourceVersion } from '../conflict';
import type { RecordIdentity, RetryPolicy } from '../types';

export type { RecordIdentity };
import { outageProbeDelayMs, retryDelayMs } from './backoff';
import { parseCron, isRealtime, type CronSchedule } from './schedule';

export type { JournalRecord };

/** What the dispatcher needs of a journal (nodes/core/journal/sync-journal.ts). */
export interface DispatchJournal {
  readUnsettled(afterSeq: number, limit: number): Promise<JournalRecord[]>;
  settle(seq: number): void;
  readonly lowWater: number;
  readonly lastSeq: number;
  pendingCount(): number;
}

export interface Delivery {
  record: JournalRecord;
  attempt: number;
  /** Which queue attachment handed it out (DispatcherOptions.queue): a failure reported for an earlier one's copy is not this one's. */
  queue?: number;
  /**
   * Which hand-out of the event this is (numbered per dispatcher): an event handed out again (a
   * retry, a probe, after a deploy) has copies in the flow, and only the latest one's failure counts.
   */
  handout?: number;
}

export type FailureKind = 'transient' | 'data';

/**
 * What a failed copy of an event becomes: `retry` (the event comes again: the record's later events
 * wait for it), `dead_letter` (its attempts are spent: the caller records it, which settles it), or
 * `gone`: the event is settled (another copy of it was written) or superseded, and will not come
 * again. A copy whose event failed already (another copy's failure was heard first) is `retry`
 * without counting as another attempt.
 */
export type FailureAnswer = 'retry' | 'dead_letter' | 'gone';

/** A record's winners in a held flush: its newest version, the events that carry it, and the columns they write. */
interface NewestOfRecord {
  version: SourceVersion;
  /** Ascending: noted in journal order. */
  seqs: number[];
  /** Shared by every record whose newest write the same columns (columnSet()): never changed in place. */
  columns: ReadonlySet<string>;
}

export interface DispatcherOptions {
  retry: RetryPolicy;
  /** `realtime`, `hourly`, `nightly` or a cron expression. */
  schedule: string;
  /** Most events in the flow at once. */
  window?: number;
  maxBackoffSeconds?: number;
  /**
   * The record key of an event, its version and the columns it writes, for coalescing held events;
   * undefined = never coalesced. The newest by version is kept (the later arrival among events
   * without one); an older event is left out only when the newest write every column it writes.
   */
  identify?: (record: JournalRecord) => RecordIdentity | undefined;
  /**
   * Realtime only (`backlog: newest_per_record`): the journal is read up to LOOKAHEAD events past
   * those handed out, and of a record's events among them only the newest are handed out, as in a
   * held flush. Needs `identify`.
   */
  coalesceBacklog?: boolean;
  /** Stamped on every delivery (Delivery.queue). */
  queue?: number;
  /** Events read ahead at most (default LOOKAHEAD). */
  lookahead?: number;
  /** Records a held flush coalesces at a time (default FLUSH_RECORDS). */
  flushRecords?: number;
  random?: () => number;
}

export interface DispatcherState {
  /** Appended and not yet settled, on disk or in flight. */
  depth: number;
  inFlight: number;
  retrying: number;
  paused: boolean;
  /** ms since epoch of the next scheduled flush, for held schedules. */
  nextFlush?: number;
}

interface InFlight {
  record: JournalRecord;
  attempt: number;
  timer?: NodeJS.Timeout;
  /** Failed because the destination is down: waits for the outage to end. */
  waitingForDestination?: boolean;
  /** Replaced by a newer event: never in the flow, settled once the job has logged it. */
  superseded?: boolean;
  /** Its latest hand-out (Delivery.handout). */
  handout?: number;
}

const DEFAULT_WINDOW = 2048;
/**
 * `backlog: newest_per_record`: how many events past those handed out are read for each record's
 * newest. A backlog is coalesced in steps this long, so memory stays bounded however long it is;
 * each event is mapped once more when it is read ahead.
 */
const LOOKAHEAD = 10_000;
/** ... and at most this many bytes of their payloads, however large the events (the journal's own memory window is 8 MiB). */
const LOOKAHEAD_BYTES = 8 * 1024 * 1024;
/**
 * A held flush finds its records' newest events in steps of this many records (a few hundred bytes
 * each: a key, a version, the columns), so its memory stays bounded however many records were held.
 * A record whose events fall in two steps is written once in each: a write more, nothing lost (the
 * conflict law orders them, as in realtime).
 */
const FLUSH_RECORDS = 100_000;

export class SyncDispatcher extends EventEmitter {
  private readonly inFlight = new Map<number, InFlight>();
  /** Every seq <= cursor has been handed out (or was settled before). */
  private cursor: number;
  private pumping = false;
  /** pump() was called while the pump ran: it looks again before it stops. */
  private pumpAgain = false;
  private paused = false;
  private stopped = false;
  private readonly window: number;
  private readonly cron?: CronSchedule;
  private flushTimer?: NodeJS.Timeout;
  private nextFlush?: number;
  /** During a held flush: deliver events up to this seq, then hold again. */
  private flushLimit = 0;
  /** During a held flush: each record's newest events in the current step; the others of a record are superseded. */
  private newestOfRecord?: Map<string, NewestOfRecord>;
  /** The last seq the flush's current step covers: later events wait for the next step, or came during the flush. */
  private flushScannedTo = 0;
  /** The last seq the latest held flush coalesces; its steps go on until they reach it. */
  private flushTarget = 0;
  private readonly flushRecords: number;
  /** Realtime with coalesceBacklog: each record's newest among the events read ahead. */
  private ahead?: Map<string, NewestOfRecord>;
  /**
   * The events read ahead and not handed out yet, in journal order from `aheadHead` on, with what
   * identify() answered (null: nothing). The pump takes them from here rather than reading the
   * journal again: the journal reads a segment with one cursor, which would rewind each time.
   */
  private aheadRecords: JournalRecord[] = [];
  private aheadIdentities: Array<RecordIdentity | null> = [];
  private aheadHead = 0;
  /** Payload bytes of the events read ahead and not handed out yet. */
  private aheadBytes = 0;
  /** Every unsettled event up to this seq has been read ahead. */
  private readTo = 0;
  /** Events read ahead since `ahead` was last pruned. */
  private readSincePrune = 0;
  /** Counts mappingChanged() calls: a read-ahead or a flush's scan that awaited across one drops what it read. */
  private mappingGeneration = 0;
  private readonly lookahead: number;
  private flushing?: Promise<void>;
  /** A held flush's next step is being scanned, or its current one again by a new mapping (scanFlushStep()). */
  private rescanning = false;
  /**
   * A step's scan failed (a journal read: a corrupt frame): no step is scanned again until the next
   * flush, which reports it again if it still fails. Scanned again at once, it failed in a loop
   * that kept the event loop busy.
   */
  private scanFailed = false;
  /** Consecutive failed probes of a down destination: they pace the probes but are not attempts. */
  private outages = 0;
  private probeTimer?: NodeJS.Timeout;
  /** While paused: the event out as the probe, until it settles or fails. */
  private probeSeq?: number;
  /** Hand-outs so far: each copy of an event in the flow has its number. */
  private handouts = 0;

  constructor(
    private readonly journal: DispatchJournal,
    private readonly deliver: (delivery: Delivery) => void,
    private readonly options: DispatcherOptions,
  ) {
    super();
    this.window = options.window ?? DEFAULT_WINDOW;
    this.lookahead = options.lookahead ?? LOOKAHEAD;
    this.flushRecords = Math.max(1, options.flushRecords ?? FLUSH_RECORDS);
    this.cursor = journal.lowWater;
    if (!isRealtime(options.schedule)) this.cron = parseCron(options.schedule);
  }

  start(): void {
    if (this.cron) this.armFlush();
    else this.flushLimit = Number.POSITIVE_INFINITY;
    if (!this.cron && this.options.coalesceBacklog && this.options.identify) this.ahead = new Map();
    this.pump();
  }

  /** New records were appended to the journal. */
  notify(): void {
    this.emitState();
    this.pump();
  }

  /** The event has a durable change-log entry: it is done, whatever its outcome. */
  settled(seq: number, succeeded: boolean): void {
    const entry = this.inFlight.get(seq);
    if (entry?.timer) clearTimeout(entry.timer);
    this.inFlight.delete(seq);
    this.journal.settle(seq);
    if (this.paused) {
      if (succeeded) {
        // A write that went through means the destination is back.
        this.resume();
      } else if (seq === this.probeSeq) {
        // The probe came to nothing (dead-lettered, say): it says nothing, so the next event asks,
        // or the pause would last for good with no probe armed. None left to ask: nothing waits.
        this.probeSeq = undefined;
        if (this.anyWaiting()) this.scheduleProbe();
        else this.resume();
      }
    }
    this.emitState();
    this.pump();
  }

  /**
   * The outage is over: what failed during it goes again in journal order, so the events of one
   * record are written in the order they arrived, as if there had been no outage.
   */
  private resume(): void {
    this.paused = false;
    this.outages = 0;
    this.probeSeq = undefined;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
    this.emit('resumed');
    const waiting = [...this.inFlight.values()].filter((e) => e.waitingForDestination).sort((a, b) => a.record.seq - b.record.seq);
    for (const entry of waiting) {
      entry.waitingForDestination = false;
      this.handOut(entry);
    }
  }

  /** Hands the event to the flow (again), numbered so that only this copy's failure counts. */
  private handOut(entry: InFlight): void {
    entry.handout = ++this.handouts;
    this.deliver({ record: entry.record, attempt: entry.attempt, queue: this.options.queue, handout: entry.handout });
  }

  private anyWaiting(): boolean {
    for (const entry of this.inFlight.values()) if (entry.waitingForDestination) return true;
    return false;
  }

  /** While paused, one event at a time - the oldest that failed - asks whether the destination is back. */
  private scheduleProbe(): void {
    if (this.probeTimer || this.stopped) return;
    this.outages += 1;
    const delay = outageProbeDelayMs(this.outages, this.options.retry.backoff_seconds, this.options.maxBackoffSeconds, this.options.random);
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      if (this.stopped || !this.paused) return;
      let oldest: InFlight | undefined;
      for (const entry of this.inFlight.values()) {
        if (entry.waitingForDestination && (!oldest || entry.record.seq < oldest.record.seq)) oldest = entry;
      }
      if (!oldest) return this.resume();
      oldest.waitingForDestination = false;
      this.probeSeq = oldest.record.seq;
      this.handOut(oldest);
    }, delay);
    this.probeTimer.unref?.();
  }

  /**
   * The event failed. Returns `retry` when it will be delivered again, or `dead_letter`
   * when its attempts are spent (the caller records it; that settles it).
   */
  failed(seq: number, kind: FailureKind, handout?: number): FailureAnswer {
    const entry = this.inFlight.get(seq);
    // Settled already (another copy of it was written), or superseded: nothing to try again.
    if (!entry || entry.superseded) return 'gone';
    // Not the latest copy (the event was handed out again since: a retry, the probe, after a
    // deploy), or its failure was heard already: the event comes again, counted once, and the
    // latest copy alone says whether a paused destination is back.
    if ((handout !== undefined && handout !== entry.handout) || entry.timer || entry.waitingForDestination) return 'retry';
    if (seq === this.probeSeq) this.probeSeq = undefined;
    if (kind === 'transient') {
      entry.waitingForDestination = true;
      if (!this.paused) {
        this.paused = true;
        this.emit('paused');
      }
      this.scheduleProbe();
      this.emitState();
      return 'retry';
    }
    // Paused with no probe out (the probe failed for its data: it waits for its retry, or goes to
    // the dead letter): the next event that waits for the destination asks; none waits, no pause.
    if (this.paused && this.probeSeq === undefined) {
      if (this.anyWaiting()) this.scheduleProbe();
      else this.resume();
    }
    if (entry.attempt >= this.options.retry.max_attempts) return 'dead_letter';
    entry.attempt += 1;
    const delay = retryDelayMs(entry.attempt - 1, this.options.retry.backoff_seconds, this.options.maxBackoffSeconds, this.options.random);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      if (this.stopped || !this.inFlight.has(seq)) return;
      this.handOut(entry);
    }, delay);
    entry.timer.unref?.();
    this.emitState();
    return 'retry';
  }

  /**
   * Nodes of the flow between the queue and the change log were (re)deployed alone: what they held
   * is gone (Node-RED drops the messages of a node it stops, and a node with a broken configuration
   * refuses its input). Those of `seqs` (inTheFlowNow() before the deploy) still not heard of go
   * out again, in journal order; a copy of one the rest of the flow still carries is not written
   * twice (SyncJob.writtenAs) nor logged twice (SyncJob.startLogging). Without this they stayed in
   * flight until a restart.
   */
  redeliver(seqs: readonly number[]): void {
    if (this.stopped) return;
    for (const seq of [...seqs].sort((a, b) => a - b)) {
      const entry = this.inFlight.get(seq);
      if (entry && this.inTheFlow(entry)) this.handOut(entry);
    }
  }

  /**
   * The events handed to the flow and not heard of since (neither settled, failed nor superseded);
   * with `since`, only those whose latest hand-out came after that many hand-outs (handoutCount).
   */
  inTheFlowNow(since = 0): number[] {
    const seqs: number[] = [];
    for (const [seq, entry] of this.inFlight) if (this.inTheFlow(entry) && (entry.handout ?? 0) > since) seqs.push(seq);
    return seqs;
  }

  /** Hand-outs so far. */
  get handoutCount(): number {
    return this.handouts;
  }

  private inTheFlow(entry: InFlight): boolean {
    return !entry.timer && !entry.waitingForDestination && !entry.superseded;
  }

  /** Applies held events now (also what a schedule does when its time comes). */
  flush(): Promise<void> {
    this.flushing ??= this.runFlush().finally(() => {
      this.flushing = undefined;
      // The pump may have reached the end of the first step meanwhile: it goes on with the next.
      this.pump();
    });
    return this.flushing;
  }

  state(): DispatcherState {
    let retrying = 0;
    for (const entry of this.inFlight.values()) if (entry.timer || entry.waitingForDestination) retrying += 1;
    return { depth: this.journal.pendingCount(), inFlight: this.inFlight.size, retrying, paused: this.paused, nextFlush: this.nextFlush };
  }

  /** Stops handing out events; what is in flight stays unsettled in the journal for next time. */
  stop(): void {
    this.stopped = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.probeTimer) clearTimeout(this.probeTimer);
    for (const entry of this.inFlight.values()) if (entry.timer) clearTimeout(entry.timer);
    this.inFlight.clear();
    this.clearAhead();
    this.removeAllListeners();
  }

  /**
   * A failure of the background work (a journal read). After stop() it is expected (the journal
   * closes under a read) and dropped: no listener is left, and an 'error' event without one throws.
   */
  private reportError(err: Error): void {
    if (!this.stopped && this.listenerCount('error') > 0) this.emit('error', err);
  }

  /** Tells listeners the state changed; they read `state()` when they need it (not per event). */
  private emitState(): void {
    this.emit('state');
  }

  private pump(): void {
    if (this.stopped) return;
    if (this.pumping) {
      // The running pump may be past its last look (its end is a microtask away): it looks again.
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    this.pumpAgain = false;
    void this.pumpLoop()
      .catch((err: Error) => this.reportError(err))
      .finally(() => {
        this.pumping = false;
        if (this.pumpAgain) this.pump();
      });
  }

  /** The last seq the pump may hand out now: a held job's flush limit, and during a flush the end of its current step. */
  private handOutCeiling(): number {
    return this.flushScannedTo < this.flushTarget ? Math.min(this.flushLimit, this.flushScannedTo) : this.flushLimit;
  }

  private async pumpLoop(): Promise<void> {
    await this.handOutUpToCeiling();
    // The step is all handed out (the hand-out stops at its end): its records' newest are no longer needed.
    if (this.newestOfRecord && this.cursor >= this.flushScannedTo) this.newestOfRecord = undefined;
    // A held flush's step is all handed out: the next one is scanned, then handed out.
    if (!this.stopped && this.flushScannedTo < this.flushTarget && this.cursor >= this.flushScannedTo) this.scanFlushStep();
  }

  private async handOutUpToCeiling(): Promise<void> {
    while (!this.stopped && !this.paused && this.inFlight.size < this.window && this.cursor < Math.min(this.handOutCeiling(), this.journal.lastSeq)) {
      const ceiling = this.handOutCeiling();
      const room = this.window - this.inFlight.size;
      let records: JournalRecord[];
      let identities: Array<RecordIdentity | null> | undefined;
      if (this.ahead && (await this.readAhead(this.ahead))) {
        records = this.aheadRecords.slice(this.aheadHead, this.aheadHead + room);
        identities = this.aheadIdentities.slice(this.aheadHead, this.aheadHead + room);
        this.aheadHead += records.length;
        for (const record of records) this.aheadBytes -= record.payload.length;
        if (this.aheadHead >= this.aheadRecords.length) this.clearAhead();
        else if (this.aheadHead >= 1024) this.dropHandedOut();
      } else {
        records = await this.journal.readUnsettled(this.cursor, room);
      }
      if (records.length === 0) {
        this.cursor = this.journal.lastSeq;
        break;
      }
      for (let i = 0; i < records.length; i++) {
        const record = records[i];
        if (this.stopped) return;
        if (record.seq > ceiling) {
          // Every unsettled event up to the ceiling is handed out: the rest waits (the next flush, or the flush's next step).
          this.cursor = Math.max(this.cursor, ceiling);
          return;
        }
        this.cursor = record.seq;
        if (this.inFlight.has(record.seq)) continue;
        const newest = this.newestOf(record, identities?.[i]);
        if (newest) {
          // In flight until the job has its change-log entry on disk and settles it, as any event.
          this.inFlight.set(record.seq, { record, attempt: 1, superseded: true });
          this.emit('superseded', record, newest.seq, newest.key);
          continue;
        }
        const entry: InFlight = { record, attempt: 1 };
        this.inFlight.set(record.seq, entry);
        this.handOut(entry);
      }
      this.emitState();
    }
  }

  /**
   * The event that supersedes this one (in a held flush, or read ahead in a realtime backlog) and
   * the record's key, or undefined when this one is to be written.
   */
  private newestOf(record: JournalRecord, readAhead: RecordIdentity | null | undefined): { seq: number; key: string } | undefined {
    const identify = this.options.identify;
    // A flush knows the newest of what it scanned; an event that came after it is left to the read-ahead.
    const flushed = this.newestOfRecord !== undefined && record.seq <= this.flushScannedTo;
    const newestByKey = flushed ? this.newestOfRecord : this.ahead;
    if (!newestByKey || !identify) return undefined;
    // Realtime: an event that was not read ahead came alone, with nothing to coalesce it with.
    const identity = flushed ? identify(record) : readAhead;
    const newest = identity && newestByKey.get(identity.key);
    if (!identity || !newest || includesSeq(newest.seqs, record.seq)) return undefined;
    // Only an older event is replaced: one whose identity changed since the scan (a time that was
    // too far ahead then) or that came after it may be the newest by now. Without versions, the later arrival wins.
    const lastSeq = newest.seqs[newest.seqs.length - 1];
    const order = compareVersions(identity.version, newest.version);
    if (order > 0 || (order === 0 && (identity.version !== null || record.seq > lastSeq))) return undefined;
    // Read ahead: only by a newest still to be handed out. One handed out already may yet fail for
    // good, and this event would be lost with it; written, the conflict law skips what is older.
    // (A held flush replaces an event by its record's newest wherever it stands: should that one
    // end in the dead letter, it holds every column this one writes, so replaying it loses nothing.)
    if (!flushed && lastSeq < record.seq) return undefined;
    // A column only this older event fills (a partial newest event) would be lost: it is written,
    // and the conflict law lets it fill what no newer event carried.
    if (identity.columns.some((column) => !newest.columns.has(column))) return undefined;
    return { seq: lastSeq, key: identity.key };
  }

  /**
   * Reads the journal on to LOOKAHEAD events past the cursor into the read-ahead buffer, noting
   * each record's newest event; answers whether the buffer holds events to hand out. A lone event
   * (light load) has nothing to coalesce with: it is read as usual, not read ahead.
   */
  private async readAhead(ahead: Map<string, NewestOfRecord>): Promise<boolean> {
    const buffered = this.aheadRecords.length - this.aheadHead;
    const limit = Math.min(this.journal.lastSeq, this.cursor + this.lookahead);
    if (buffered === 0 && limit - this.cursor <= 1) return false;
    let after = Math.max(this.readTo, this.cursor);
    const generation = this.mappingGeneration;
    while (after < limit && !this.stopped && this.aheadBytes < LOOKAHEAD_BYTES) {
      const page = await this.journal.readUnsettled(after, Math.min(limit - after, 1000));
      // The mapping changed meanwhile: the buffer was emptied and is read again from the cursor.
      if (generation !== this.mappingGeneration) return false;
      if (page.length === 0) break;
      for (const record of page) {
        if (record.seq > limit || this.aheadBytes >= LOOKAHEAD_BYTES) break;
        const identity = this.options.identify!(record) ?? null;
        this.aheadRecords.push(record);
        this.aheadIdentities.push(identity);
        this.aheadBytes += record.payload.length;
        if (identity) noteNewest(ahead, identity, record.seq);
        after = record.seq;
        this.readSincePrune += 1;
      }
      if (page[page.length - 1].seq >= limit) break;
    }
    this.readTo = Math.max(this.readTo, after);
    // Records whose events have all been handed out are forgotten, once per lookahead's worth of reading.
    if (this.readSincePrune >= this.lookahead) {
      this.readSincePrune = 0;
      for (const [key, newest] of ahead) if (newest.seqs[newest.seqs.length - 1] <= this.cursor) ahead.delete(key);
    }
    return this.aheadRecords.length > this.aheadHead;
  }

  /** The buffer keeps only what is still to be handed out, so it stays within LOOKAHEAD however long the backlog. */
  private dropHandedOut(): void {
    this.aheadRecords = this.aheadRecords.slice(this.aheadHead);
    this.aheadIdentities = this.aheadIdentities.slice(this.aheadHead);
    this.aheadHead = 0;
  }

  private clearAhead(): void {
    this.aheadRecords = [];
    this.aheadIdentities = [];
    this.aheadHead = 0;
    this.aheadBytes = 0;
  }

  /**
   * The mapping changed (a redeploy of the mapper alone): what was read ahead was identified by
   * the old one, so it is read again.
   */
  mappingChanged(): void {
    this.mappingGeneration += 1;
    if ((this.newestOfRecord || this.rescanning) && this.cursor < this.flushScannedTo) this.scanFlushStep();
    if (!this.ahead) return;
    this.clearAhead();
    this.ahead = new Map();
    this.readTo = this.cursor;
  }

  private armFlush(): void {
    if (!this.cron || this.stopped) return;
    const next = this.cron.nextRun(new Date());
    this.nextFlush = next.getTime();
    // setTimeout cannot wait longer than ~24.8 days; re-arm in steps.
    const wait = Math.min(next.getTime() - Date.now(), 2 ** 31 - 1);
    this.flushTimer = setTimeout(() => {
      if (Date.now() >= next.getTime()) this.flush().catch((err: Error) => this.reportError(err));
      this.armFlush();
    }, Math.max(0, wait));
    this.flushTimer.unref?.();
    this.emitState();
  }

  /**
   * Finds each record's newest held event by version (keys only, in steps of `flushRecords`
   * records, so memory is bounded however many records were held); the pump then writes those and
   * settles the older ones as superseded, unless an older one writes a column the newest do not
   * (newestOf()), and scans the next step once it has handed out this one.
   */
  private async runFlush(): Promise<void> {
    const limit = this.journal.lastSeq;
    // Only a held schedule coalesces: a realtime job writes every event (or its read-ahead
    // coalesces, with `backlog: newest_per_record`), also when flushed by hand.
    if (this.cron && this.options.identify) {
      const previousTarget = this.flushTarget;
      this.flushTarget = limit;
      this.scanFailed = false;
      let step: FlushStep | undefined | null;
      try {
        step = await this.scanNewestStable(limit);
      } catch (err) {
        // The flush reports it; an earlier flush's steps wait for the next flush, as this one's events.
        this.flushTarget = previousTarget;
        this.scanFailed = true;
        throw err;
      }
      if (!step || limit !== this.flushTarget) return;
      this.newestOfRecord = step.newest;
      this.flushScannedTo = step.to;
    }
    if (this.stopped) return;
    this.flushLimit = Math.max(this.flushLimit, limit);
    this.pump();
  }

  /**
   * Each record's newest events among the unsettled ones (those in the flow, and from the cursor on
   * in the journal), up to `limit` or to where the step holds `flushRecords` records (`to`: the
   * last seq it covers); undefined when stopped, or when the mapping changed meanwhile (the events
   * were identified by the old one); null when a later flush has begun (it scans its own first
   * step: two scans at once would make the journal's one read cursor rewind at every page).
   */
  private async scanNewest(limit: number): Promise<FlushStep | undefined | null> {
    const identify = this.options.identify!;
    const generation = this.mappingGeneration;
    const newest = new Map<string, NewestOfRecord>();
    const from = this.cursor;
    // Every unsettled event up to the cursor is in the flow, in memory: noted from there rather than
    // read again from the low-water mark, which one event waiting out a long retry holds back (each
    // step of a large flush would read the journal from there again). Superseded ones, their entries
    // still being written, are never the newest of anything. One that settles while the step is
    // scanned stays a candidate (written, it is as good a newest as any; should it end in the dead
    // letter, see newestOf()).
    const flowing = [...this.inFlight.values()].filter((entry) => !entry.superseded).map((entry) => entry.record).sort((a, b) => a.seq - b.seq);
    for (const record of flowing) {
      if (record.seq > limit) return { newest, to: limit };
      const identity = identify(record);
      if (identity !== undefined) noteNewest(newest, identity, record.seq);
    }
    /** Records first met past `from`: those in the flow (at most a window of events) take no room in the step. */
    let stepRecords = 0;
    let after = from;
    for (;;) {
      const page = await this.journal.readUnsettled(after, 1000);
      if (this.stopped || generation !== this.mappingGeneration) return undefined;
      if (limit !== this.flushTarget) return null;
      for (const record of page) {
        if (record.seq > limit) return { newest, to: limit };
        // Superseded by an earlier flush, its entry still being written: never the newest of anything.
        if (this.inFlight.get(record.seq)?.superseded) {
          after = record.seq;
          continue;
        }
        const identity = identify(record);
        if (identity !== undefined && record.seq > from && !newest.has(identity.key)) {
          // A step ends before a record it has no room for.
          if (stepRecords >= this.flushRecords) return { newest, to: after };
          stepRecords += 1;
        }
        after = record.seq;
        if (identity !== undefined) noteNewest(newest, identity, record.seq);
      }
      if (page.length === 0) return { newest, to: limit };
    }
  }

  /**
   * Scans a held flush's next step, or its current one again when the mapping changed (its newest
   * events were found by the old mapping: keys, versions, what it refuses). Meanwhile nothing is
   * coalesced: events handed out then, up to the step's end, are written.
   */
  private scanFlushStep(): void {
    this.newestOfRecord = undefined;
    // A scan under way (a step's, or a flush's first) starts over by itself when the mapping
    // changed: it sees the new generation. Two at once would make the journal's one read cursor
    // rewind at every page.
    if (this.rescanning || this.flushing || this.scanFailed) return;
    this.rescanning = true;
    const target = this.flushTarget;
    void this.scanNewestStable(target)
      .then((step) => {
        // Not when a later flush has started meanwhile: it scans its own first step.
        if (!step || this.stopped || target !== this.flushTarget) return;
        this.newestOfRecord = step.newest;
        this.flushScannedTo = step.to;
        this.pump();
      }, (err: Error) => {
        this.scanFailed = true;
        this.reportError(err);
      })
      .finally(() => {
        this.rescanning = false;
        // The pump may have asked for the next step while this one was scanned (it handed out this
        // one meanwhile, or the scan covered nothing new): it asks again.
        this.pump();
      });
  }

  /** scanNewest() again until no new mapping came during it; undefined when stopped, null when a later flush began. */
  private async scanNewestStable(limit: number): Promise<FlushStep | undefined | null> {
    for (;;) {
      const step = await this.scanNewest(limit);
      if (step !== undefined || this.stopped) return step;
    }
  }
}

/** One step of a held flush: each record's newest among the unsettled events up to `to`. */
interface FlushStep {
  newest: Map<string, NewestOfRecord>;
  to: number;
}

/**
 * Notes an event as its record's newest when its version is newer (or, without versions, when it
 * came later). Equal versions with different content are all written: the conflict law orders
 * them by content.
 */
function noteNewest(newestByKey: Map<string, NewestOfRecord>, identity: RecordIdentity, seq: number): void {
  const known = newestByKey.get(identity.key);
  const order = known ? compareVersions(identity.version, known.version) : 1;
  if (order > 0 || (order === 0 && identity.version === null)) {
    newestByKey.set(identity.key, { version: identity.version, seqs: [seq], columns: columnSet(identity.columns) });
  } else if (order === 0) {
    known!.seqs.push(seq);
    if (identity.columns.some((column) => !known!.columns.has(column))) known!.columns = columnSet([...known!.columns, ...identity.columns]);
  }
}

/** Whether ascending `seqs` holds `seq`: a binary search, since a record's events of one version can be many. */
function includesSeq(seqs: readonly number[], seq: number): boolean {
  let lo = 0;
  let hi = seqs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (seqs[mid] === seq) return true;
    if (seqs[mid] < seq) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

/**
 * The set of these columns, one per distinct list: a flush or a read-ahead notes a set for each of
 * up to a hundred thousand records, and their events mostly write the same columns (a Set of its
 * own was about half of what a record cost).
 */
const columnSets = new Map<string, ReadonlySet<string>>();
function columnSet(columns: readonly string[]): ReadonlySet<string> {
  const name = columns.join('\u0000');
  let set = columnSets.get(name);
  if (set === undefined) {
    // The lists come from the mappings deployed: few. A bound all the same, should a mapping make many.
    if (columnSets.size >= 1000) columnSets.clear();
    set = new Set(columns);
    columnSets.set(name, set);
  }
  return set;
}
