// The shared state of one sync job while it runs: sequence numbers, the events in flight
// and their acknowledgements, the destination schema the mapper declares, and the change
// log. The exs-job config node owns one; every node of the job talks through it, so the
// acknowledgement travels back to the queue without hidden globals.
import { EventEmitter } from 'node:events';
import { ChangeLogStore } from './changelog-store';
import type { ConflictRule, RetryPolicy, Schedule, SettledOutcome } from './types';

export interface JobSettings {
  id: string;
  source_topic: string;
  destination: string;
  schedule: Schedule;
  conflict_rule: ConflictRule;
  retry_policy: RetryPolicy;
  dead_letter: string;
  changelog: string;
}

/** The destination columns a mapper writes, so the connector can check them at deploy. */
export interface DestinationSchema {
  keyColumn: string;
  columns: string[];
  /** Column fed by the event's `updated_at`: what LAST_WRITE_WINS compares. */
  timestampColumn?: string;
}

export type JobCounters = Record<SettledOutcome, number>;

type SettleListener = (outcome: SettledOutcome) => void;

export class SyncJob extends EventEmitter {
  readonly changeLog: ChangeLogStore;
  readonly counters: JobCounters = { applied: 0, unchanged: 0, skipped: 0, dead_letter: 0, failed: 0 };
  /** Resolves once the sequence counter continues from the change log's last entry. */
  readonly ready: Promise<void>;
  private lastSeq = 0;
  private readonly inFlight = new Map<number, SettleListener | undefined>();
  private schema: DestinationSchema | undefined;
  private readonly schemaWaiters: Array<(schema: DestinationSchema) => void> = [];

  constructor(readonly settings: JobSettings, dataDir: string) {
    super();
    this.changeLog = new ChangeLogStore(dataDir, settings.id);
    this.ready = this.changeLog.tail(1).then(
      ([last]) => {
        if (last && Number.isFinite(last.seq)) this.lastSeq = Math.max(this.lastSeq, last.seq);
      },
      () => undefined,
    );
  }

  get id(): string {
    return this.settings.id;
  }

  nextSeq(): number {
    this.lastSeq += 1;
    return this.lastSeq;
  }

  /** Registers an event as in flight; `onSettled` is its acknowledgement. */
  track(seq: number, onSettled?: SettleListener): void {
    this.inFlight.set(seq, onSettled);
    this.emit('depth', this.inFlight.size);
  }

  /** Called once the event's change-log entry is durable: acknowledges it to its source. */
  settle(seq: number, outcome: SettledOutcome): void {
    this.counters[outcome] += 1;
    const listener = this.inFlight.get(seq);
    const known = this.inFlight.delete(seq);
    if (known) listener?.(outcome);
    this.emit('settled', { seq, outcome });
    this.emit('depth', this.inFlight.size);
  }

  get depth(): number {
    return this.inFlight.size;
  }

  declareSchema(schema: DestinationSchema): void {
    this.schema = schema;
    for (const waiter of this.schemaWaiters.splice(0)) waiter(schema);
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

  async close(): Promise<void> {
    await this.changeLog.close();
    this.removeAllListeners();
  }
}
