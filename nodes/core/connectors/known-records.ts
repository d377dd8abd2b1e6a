// What a connector knows of the records it wrote last, so that the next event of such a record
// can be decided without reading it first: the write then checks, in the same statement, that the
// state row and the destination row are still what the connector remembers (nobody else wrote
// them), and the record takes the locked path when they are not. Knowing is only ever a guess
// that the database confirms; a wrong guess costs one statement, never a wrong write.
import type { RecordState, SourceVersion } from '../conflict';
import type { SqlParameter } from '../sql/odbc-pool';

/** A state row as stored: what writeKnown compares before it writes over it. */
export interface StateCheck {
  fingerprint: string;
  version: SourceVersion;
  tiebreak: string;
}

export interface KnownRecord {
  /** The state as the locked path would read it; null: no state row (or not read from `saved` yet). */
  state: RecordState | null;
  /** The state's parameters as saved, until read into `state` (most remembered records are never needed again). */
  saved?: SqlParameter[];
  check: StateCheck | null;
  /** The destination row as the connector read or wrote it (the law's `current`); null: no row. */
  current: Record<string, unknown> | null;
  /** Which version of that row it is, as the database names it (see ArrayBatchSql.writeKnown); null: no row. */
  rowVersion: string | null;
}

/** A record presumed new: neither a state row nor a destination row. */
export const UNSEEN: KnownRecord = Object.freeze({ state: null, check: null, current: null, rowVersion: null });

/** How far the presumption that unseen keys are new may be wrong before it is no longer made. */
const PRESUMPTION_SCORE_LIMIT = 20;

/**
 * The records a connector wrote or read last, newest kept, at most `limit` of them. A key never
 * seen is presumed new (a destination filled by EXS) while that presumption keeps being right: a
 * table with rows from before EXS stops it after a few misses, so its first events do not pay for
 * a check that fails.
 */
export class KnownRecords {
  private readonly records = new Map<string, KnownRecord>();
  private presumptionScore = 0;

  constructor(readonly limit: number) {}

  /** What is known of the key; UNSEEN when it is presumed new; undefined when the key must be read. */
  lookUp(key: string): KnownRecord | undefined {
    return this.records.get(key) ?? (this.presumptionScore >= 0 ? UNSEEN : undefined);
  }

  remember(key: string, record: KnownRecord): void {
    this.records.delete(key); // re-inserted last: the oldest are forgotten first
    this.records.set(key, record);
    if (this.records.size > this.limit) this.records.delete(this.records.keys().next().value as string);
  }

  forget(key: string): void {
    this.records.delete(key);
  }

  /** Whether a key that was not known turned out new (`true`) or not: keeps or stops the presumption. */
  learnWhetherNew(wasNew: boolean): void {
    this.presumptionScore = Math.max(-PRESUMPTION_SCORE_LIMIT, Math.min(PRESUMPTION_SCORE_LIMIT, this.presumptionScore + (wasNew ? 1 : -1)));
  }

  isKnown(key: string): boolean {
    return this.records.has(key);
  }

  get size(): number {
    return this.records.size;
  }
}
