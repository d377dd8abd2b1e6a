import type { ConflictPolicy, FieldConflict, SourceVersion, VersionType } from './conflict';
import type { ParkedRecord } from './sync-job';

// Shared vocabulary of the EXS core. Nothing in nodes/core may import Node-RED:
// the nodes, the importer, the CLI and the tests all build on these plain types.

export const CONFLICT_RULES = ['HMS_WINS', 'LAST_WRITE_WINS', 'DESTINATION_WINS', 'MANUAL'] as const;
export type ConflictRule = (typeof CONFLICT_RULES)[number];

export const SCHEDULES = ['realtime', 'hourly', 'nightly'] as const;
export type Schedule = (typeof SCHEDULES)[number];

/** How the change log's topic carries entries: one MQTT message each, or one per batch (a JSON array). */
export const CHANGELOG_FEEDS = ['entry', 'batch'] as const;
export type ChangelogFeed = (typeof CHANGELOG_FEEDS)[number];

/**
 * What coalescing knows of an event (mapping.ts compileIdentify): its record, its version, and the
 * destination columns it writes, key included (a field the event lacks leaves its column out).
 */
export interface RecordIdentity {
  key: string;
  version: SourceVersion;
  columns: readonly string[];
}

/** What a realtime job writes of a record's events waiting together in its journal: each, or the newest. */
export const BACKLOG_MODES = ['every_event', 'newest_per_record'] as const;
export type BacklogMode = (typeof BACKLOG_MODES)[number];

/** 1-based line and column, as editors and compilers print them. */
export interface Position {
  line: number;
  col: number;
}

export interface Diagnostic extends Position {
  file: string;
  severity: 'error' | 'warning';
  message: string;
}

/** `FILE:LINE:COL: message`, the form people paste into search and editors jump to. */
export function formatDiagnostic(d: Diagnostic): string {
  return `${d.file}:${d.line}:${d.col}: ${d.severity === 'warning' ? 'warning: ' : ''}${d.message}`;
}

/** One step of a mapping line's pipeline, e.g. `pad(8)` -> { name: 'pad', args: ['8'] }. */
export interface Transform {
  name: string;
  args: string[];
}

/** `HMS:status -> COBOL:PERMIT_STAT | upper`: event field -> destination column, with transforms. */
export interface MappingRule {
  /** Event field path, without the side prefix (`status`, `applicant.name`). */
  source: string;
  /** Destination column as the contract spells it (`PERMIT_STAT`). */
  target: string;
  transforms: Transform[];
}

/** `key: HMS:permit_id -> COBOL:PERMIT_ID`: the field that identifies the record and its key column. */
export interface KeyRule {
  source: string;
  target: string;
}

export interface RetryPolicy {
  max_attempts: number;
  backoff_seconds: number;
}

/** A validated sync contract, with every default filled in and `${ENV}` substituted. */
export interface Contract {
  id: string;
  source_topic: string;
  destination: string;
  connector: string;
  mapping: MappingRule[];
  /** A named schedule or a five-field cron expression. */
  schedule: Schedule | string;
  conflict_rule: ConflictRule;
  /** Destination column (as the mapping spells it) -> its own rule. */
  field_rules?: Record<string, ConflictRule>;
  /** Event field whose value orders a record's events. */
  version_field: string;
  /** How the version field is read. */
  version_type: VersionType;
  max_clock_skew_seconds: number;
  retry_policy: RetryPolicy;
  table?: string;
  state_table: string;
  key?: KeyRule;
  broker: string;
  mqtt_topic: string;
  dead_letter: string;
  changelog: string;
  changelog_feed: ChangelogFeed;
  backlog: BacklogMode;
}

/**
 * What a destination reports back for one record: written, already equal, kept as it was (an
 * older event, or the conflict rule let the destination win), or parked for a person (MANUAL).
 */
export type ApplyOutcome = 'applied' | 'unchanged' | 'skipped' | 'parked';

/** Every way an event can end; each one lands in the change log. */
export type SettledOutcome = ApplyOutcome | 'superseded' | 'dead_letter' | 'failed';

/** A change-log entry's outcome: how an event ended, or a parked conflict a person resolved. */
export type LoggedOutcome = SettledOutcome | 'resolved';

/** A mapped record ready for a connector: key value plus the destination columns. */
export interface MappedRecord {
  keyColumn: string;
  keyValue: unknown;
  /** Destination column -> value, including the key column. */
  row: Record<string, unknown>;
  /** The event's place in its record's history (its `updated_at` or version field); null: none. */
  version?: SourceVersion;
}

export interface ApplyResult {
  outcome: ApplyOutcome;
  /** Row as it was before the write, where the destination can tell. */
  before?: Record<string, unknown> | null;
  after: Record<string, unknown>;
  /** Why the conflict law wrote or kept the row. */
  reason?: string;
  /** Columns both sides changed, with the rule and the side that won each. */
  conflicts?: FieldConflict[];
}

/**
 * The seam a developer implements to add a destination. A connector validates its
 * target at `open()` (deploy time), so a missing table is an error once, not per event.
 */
export interface SyncConnector {
  readonly kind: string;
  open(): Promise<void>;
  /** Writes the record unless `policy` decides the destination's row wins. */
  apply(record: MappedRecord, policy?: ConflictPolicy): Promise<ApplyResult>;
  /**
   * Writes records of different keys together, where the destination can do that cheaper than
   * one by one; a result or an error per record, in order. Optional: without it, records are
   * applied one by one, in parallel.
   */
  applyBatch?(items: Array<{ record: MappedRecord; policy?: ConflictPolicy }>): Promise<Array<{ result?: ApplyResult; error?: Error }>>;
  /**
   * How many batches of different records may be written at once under a backlog (default 1):
   * more where the destination works on them in parallel, one where they would only queue for a
   * lock (SQLite) or take gap locks that make them deadlock each other (MariaDB).
   */
  readonly parallelBatches?: number;
  close(): Promise<void>;
  /** Records whose conflict waits for a person (MANUAL), for connectors that keep them. */
  listConflicts?(): Promise<ParkedRecord[]>;
  /** Settles a parked conflict: write the waiting HMS values, or keep the destination's. */
  resolveParked?(key: string, take: 'hms' | 'destination'): Promise<ApplyResult>;
  /** Short text for the node status and `exs run` logs, e.g. `postgresql test.permit_table`. */
  describe(): string;
}

/** The envelope every EXS message carries in `msg.exs` from queue to change log. */
export interface ExsEnvelope {
  job: string;
  seq: number;
  attempt: number;
  /** ms since epoch when the event reached EXS; latency is measured from here. */
  receivedAt: number;
  topic?: string;
  key?: unknown;
  record?: MappedRecord;
  /** The conflict law the connector applies, set by the conflict resolver. */
  conflict?: ConflictPolicy;
  result?: ApplyResult;
  outcome?: SettledOutcome;
  error?: string;
  /** Raw text of the event when it could not be parsed, so a dead letter keeps the original. */
  raw?: string;
  /** The queue attachment that handed it out, and which hand-out of the event this copy is: failures are reported with them (SyncJob.fail). */
  queue?: number;
  handout?: number;
}

/** One line of the change log: what happened to one event. */
export interface ChangeLogEntry {
  time: string;
  job: string;
  seq: number;
  key: unknown;
  outcome: LoggedOutcome;
  /** `OK` when the destination row now holds the event, the seed's field. */
  dest_row: 'OK' | 'UNCHANGED' | 'KEPT' | 'PARKED' | 'SUPERSEDED' | 'FAILED' | 'REJECTED' | 'RESOLVED';
  before?: Record<string, unknown> | null;
  after?: Record<string, unknown>;
  event?: unknown;
  attempts: number;
  latency_ms: number;
  /** Why the conflict law wrote or kept the row. */
  reason?: string;
  /** Columns both sides changed: the rule and who won (`hms`, `destination`, `parked`). */
  conflicts?: FieldConflict[];
  error?: string;
}
