// The conflict law: given what EXS last wrote for a record, what the destination holds now and
// what an event brings, which columns does the event write? Pure, so the connector, the tests and
// their models share one answer. The connector calls it inside one transaction at the
// destination, with the record's state row locked, so runtimes cannot race between the read and
// the write (see OdbcConnector.apply).
import { createHash, hash as oneShotHash } from 'node:crypto';
import { CANONICAL_TIMESTAMP, canonicalMillis, epochMillis, formatInstant, isCanonicalTimestamp, parseInstant } from './time';
import { own } from './own';
import { CONFLICT_RULES, type ConflictRule } from './types';

export interface ConflictPolicy {
  /** The record's rule: every column without a rule of its own follows it. */
  rule: ConflictRule;
  /** Destination column holding the legacy row's last-change time (LAST_WRITE_WINS compares it). */
  timestampColumn?: string;
  /** Per-column rules (contract names), so ownership can be split: HMS owns status, the clerk the inspector. */
  fieldRules?: Record<string, ConflictRule>;
}

export function isConflictRule(value: string): value is ConflictRule {
  return (CONFLICT_RULES as readonly string[]).includes(value);
}

/** The resolver node's `COLUMN: RULE` lines (a `COBOL:` prefix is allowed) -> column -> rule. */
export function parseFieldRules(text: string): Record<string, ConflictRule> {
  const rules: Record<string, ConflictRule> = {};
  for (const line of text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))) {
    const match = /^(?:[A-Za-z][A-Za-z0-9_]*:)?([A-Za-z_][A-Za-z0-9_$#]*)\s*[:=]\s*([A-Za-z_]+)$/.exec(line);
    if (!match) throw new Error(`field rule '${line}' must read COLUMN: RULE, e.g. INSPECTOR: DESTINATION_WINS`);
    if (!isConflictRule(match[2])) throw new Error(`field rule '${line}': the rule must be one of ${CONFLICT_RULES.join(', ')}`);
    rules[match[1]] = match[2];
  }
  return rules;
}

export function formatFieldRules(rules: Record<string, ConflictRule> | undefined): string {
  return Object.entries(rules ?? {}).map(([column, rule]) => `${column}: ${rule}`).join('\n');
}

/**
 * Where an event stands in its record's history: the event's `updated_at` (or the contract's
 * `version_field`) as canonical UTC text `YYYY-MM-DD HH:MM:SS.ffffff` for a time, or a number's
 * decimal text for a revision counter. Null: the event carries none, which counts as the oldest.
 */
export type SourceVersion = string | null;

/** How a version field is read: a moment in time (the default), or a revision number. */
export const VERSION_TYPES = ['time', 'number'] as const;
export type VersionType = (typeof VERSION_TYPES)[number];

const DECIMAL = /^-?\d+(\.\d+)?$/;

/**
 * Reads an event's version field. As a time, text and numbers are read the way the `timestamp`
 * transform reads them (ISO-8601, compact YYYYMMDD[HHmm[ss]], epoch milliseconds); as a number,
 * a number or its digits. Undefined when the value cannot be read: a data error.
 */
export function sourceVersionOf(value: unknown, type: VersionType = 'time'): SourceVersion | undefined {
  if (value === undefined || value === null || value === '') return null;
  if (type === 'number') {
    const text = typeof value === 'number' ? (Number.isFinite(value) ? String(value) : '') : typeof value === 'string' ? value.trim() : '';
    return DECIMAL.test(text) ? text.replace(/^(-?)0+(?=\d)/, '$1') : undefined;
  }
  if (typeof value === 'string' && isCanonicalTimestamp(value)) return value;
  const instant = parseInstant(value);
  return instant ? formatInstant(instant, CANONICAL_TIMESTAMP) : undefined;
}

const TIME_VERSION = /^\d{4}-\d{2}-\d{2} /;

/** The version as epoch milliseconds when it is a time, for the clock-skew check and LAST_WRITE_WINS. */
export function versionMillis(version: SourceVersion): number | undefined {
  if (version === null || !TIME_VERSION.test(version)) return undefined;
  const millis = canonicalMillis(version);
  if (millis !== undefined) return millis;
  const instant = parseInstant(version);
  return instant && epochMillis(instant);
}

/**
 * Orders two versions: none < revision numbers < times (a job uses one kind; mixing them must
 * still give one answer). Canonical time text has a fixed width, so it compares as text; whole
 * revision numbers compare exactly, however many digits they have.
 */
export function compareVersions(a: SourceVersion, b: SourceVersion): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  const aTime = TIME_VERSION.test(a);
  const bTime = TIME_VERSION.test(b);
  if (aTime !== bTime) return aTime ? 1 : -1;
  if (aTime) return a < b ? -1 : 1;
  if (/^-?\d+$/.test(a) && /^-?\d+$/.test(b)) {
    const difference = BigInt(a) - BigInt(b);
    return difference === 0n ? 0 : difference < 0n ? -1 : 1;
  }
  return Math.sign(Number(a) - Number(b));
}

/**
 * Breaks ties between two different events of the same version: the hash of what the event
 * would write. Any order of the same events then ends at the same row.
 */
export function contentHash(row: Record<string, unknown>, sortedColumns?: readonly string[]): string {
  // The same text either way: the row's columns in sorted order. A caller that knows every column
  // a row can have, sorted, saves sorting each row's.
  const columns = sortedColumns ? sortedColumns.filter((column) => Object.hasOwn(row, column)) : Object.keys(row).sort();
  const canonical = JSON.stringify(columns.map((column) => [column, row[column] ?? null]));
  return sha256Hex(canonical).slice(0, 32);
}

/** Fingerprint of a record's stored state text (what EXS wrote, and which events decided it). */
export function fingerprintOf(stateText: string): string {
  return sha256Hex(stateText).slice(0, 32);
}

/** Two of these per record: crypto.hash (Node 20.12+) skips the Hash object createHash builds. */
function sha256Hex(text: string): string {
  return typeof oneShotHash === 'function' ? oneShotHash('sha256', text, 'hex') : createHash('sha256').update(text).digest('hex');
}

/** A conflict a person decides (MANUAL): per column, what EXS last wrote, what HMS sends, what the row holds. */
export interface ParkedField {
  old: unknown;
  new: unknown;
  current: unknown;
}

export interface ParkedConflict {
  /** The newest event's version whose values wait. */
  version: SourceVersion;
  /** When it was first parked (ISO). */
  since: string;
  fields: Record<string, ParkedField>;
}

/** An event's place in its record's history: its version, and its content hash for ties. */
export interface Stamp {
  version: SourceVersion;
  tiebreak: string;
}

/** What EXS remembers of a record, in the destination so that every runtime of the job sees it. */
export interface RecordState {
  /** The newest event EXS has decided for this record. */
  version: SourceVersion;
  /** contentHash of that event, to break ties. */
  tiebreak: string;
  /** The mapped columns (contract names) as the destination held them after EXS last wrote them. */
  written: Record<string, unknown>;
  /**
   * The event each column was last decided by, so that an older event still fills a column the
   * newer ones did not carry: partial events end the same whatever their order. Absent for a column
   * means the record's stamp.
   */
  columns?: Record<string, Stamp>;
  parked?: ParkedConflict | null;
}

export interface IncomingRecord extends Stamp {
  /** Mapped columns, key included, values as they will be bound (canonical). */
  row: Record<string, unknown>;
  keyColumn: string;
}

export type Winner = 'hms' | 'destination' | 'parked';

/** One column both sides changed, and how its rule settled it. */
export interface FieldConflict {
  column: string;
  rule: ConflictRule;
  winner: Winner;
}

export interface ConflictDecision {
  /**
   * `write`: `columns` go to the destination (key included); `unchanged`: the destination already
   * holds the event; `skipped`: nothing is written; `parked`: MANUAL columns wait for a person.
   */
  outcome: 'write' | 'unchanged' | 'skipped' | 'parked';
  /** The columns to write, key first; empty unless outcome is `write` or `parked` with others to write. */
  columns: Record<string, unknown>;
  reason: string;
  conflicts: FieldConflict[];
  /** The state to store; undefined when it stays as it was (an older or repeated event). */
  state?: RecordState;
}

/** Compares a column's stored and written values the way the destination does (set by the connector). */
export type SameValue = (column: string, stored: unknown, written: unknown) => boolean;

const plainSame: SameValue = (_column, a, b) => (a === null || a === undefined ? b === null || b === undefined : String(a) === String(b));

/**
 * The law:
 * 1. Source order, per column. A column the event carries is decided only when the event is newer
 *    than the one that last decided that column: an older event is skipped whatever the rule (it
 *    still fills columns newer events did not carry), the same event again is a redelivery
 *    (unchanged). Equal versions with different content are ordered by contentHash, and an event
 *    without a version is the oldest, so any order of the same versioned events, however often
 *    redelivered, ends the same. Events without versions cannot be ordered by their source:
 *    among them the later arrival wins, as in any plain sync.
 * 2. Legacy edits. A column whose destination value differs from what EXS last wrote was changed
 *    on the legacy side (a deleted row counts as changed). A column nobody changed takes the event.
 *    Without a record of what EXS wrote (a row from before EXS) there is no edit to detect.
 * 3. Rules, for columns both sides changed (and, for LAST_WRITE_WINS, values EXS never wrote):
 *    HMS_WINS writes the event; DESTINATION_WINS keeps the row's value; MANUAL keeps it and parks
 *    old/new/current for a person; LAST_WRITE_WINS keeps the row's values when its time column
 *    is newer than the event's time, else writes (a tie writes). When any column follows
 *    LAST_WRITE_WINS, so does the time column itself: it must never step back.
 */
export function decideConflict(
  policy: ConflictPolicy,
  state: RecordState | null,
  current: Record<string, unknown> | null,
  incoming: IncomingRecord,
  same: SameValue = plainSame,
): ConflictDecision {
  // Called once per event under a backlog: one pass over the columns, and objects only for what
  // the decision holds (the connector keeps a batch of these alive across its round trips, so
  // every object here is copied by the garbage collector, not just allocated).
  const key = incoming.keyColumn;
  const row = incoming.row;
  const carried = Object.keys(row);
  /** Columns this event is newer for; the others it is older than, or the same event again. */
  const newer: string[] = [];
  let notNewer: string[] | undefined;
  let repeated = false;
  for (const column of carried) {
    if (column === key) continue;
    // A column no event has decided yet has no stamp: any event may fill it.
    const order = sourceOrder(state ? (state.columns ? own(state.columns, column) ?? null : state) : null, incoming);
    if (order > 0) {
      newer.push(column);
    } else {
      (notNewer ??= []).push(column);
      if (order === 0) repeated = true;
    }
  }
  if (state && newer.length === 0) {
    return repeated || notNewer === undefined
      ? { outcome: 'unchanged', columns: {}, reason: 'already applied (same version)', conflicts: [] }
      : { outcome: 'skipped', columns: {}, reason: `older than the version EXS last wrote (${describeVersion(state.version)})`, conflicts: [] };
  }

  /** Whether LAST_WRITE_WINS keeps the row: read once, and only when a column needs it. */
  let legacyNewer: boolean | undefined;
  const lastWriteWinsInUse = policy.rule === 'LAST_WRITE_WINS' || hasRule(policy.fieldRules, 'LAST_WRITE_WINS');
  const deleted = current === null && state !== null;
  // The columns to write, key first, then those the event takes in column order.
  const columns: Record<string, unknown> = { [key]: row[key] };
  let taken = 0;
  let agreed: Record<string, unknown> | undefined;
  const conflicts: FieldConflict[] = [];
  let kept = 0;
  let parkedFields: Record<string, ParkedField> | undefined;

  for (const column of newer) {
    const value = row[column];
    const rule = column === policy.timestampColumn && lastWriteWinsInUse ? 'LAST_WRITE_WINS' : own(policy.fieldRules, column) ?? policy.rule;
    const currentValue = own(current, column) ?? null;
    if (current !== null && same(column, currentValue, value)) {
      (agreed ??= {})[column] = currentValue; // both sides hold it: nothing to decide, and it is the new baseline
      continue;
    }
    const known = state !== null && Object.hasOwn(state.written, column);
    const editedByLegacy = known && (current === null || !same(column, currentValue, state!.written[column]));
    // A value EXS never wrote (a row from before EXS): LAST_WRITE_WINS still judges it by time.
    const foreignValue = !known && current !== null && currentValue !== null;
    const contested = editedByLegacy || (rule === 'LAST_WRITE_WINS' && foreignValue);
    const winner = contested ? winnerOf(rule, rule === 'LAST_WRITE_WINS' && (legacyNewer ??= lastWriteWinsKeepsRow(policy, current, incoming))) : 'hms';
    if (editedByLegacy || winner !== 'hms') conflicts.push({ column, rule, winner });
    if (winner === 'hms') {
      columns[column] = value;
      taken += 1;
    } else {
      kept += 1;
      if (winner === 'parked') (parkedFields ??= {})[column] = { old: own(state?.written, column) ?? null, new: value, current: currentValue };
    }
  }

  // A row the legacy side deleted is only written again when every column's rule lets HMS win.
  // Under MANUAL the whole event waits, so that taking HMS's side brings the whole row back.
  const keptDeleted = deleted && kept > 0;
  if (keptDeleted && parkedFields) {
    for (const column of newer) {
      if (!Object.hasOwn(parkedFields, column)) parkedFields[column] = { old: own(state?.written, column) ?? null, new: row[column], current: null };
    }
  }
  const writes = current === null ? !keptDeleted : taken > 0;
  const written = writes && !keptDeleted ? { ...state?.written, ...agreed, ...columns } : { ...state?.written, ...agreed };
  const stamp: Stamp = { version: incoming.version, tiebreak: incoming.tiebreak };
  const stamps: Record<string, Stamp> = { ...state?.columns };
  for (const column of newer) stamps[column] = stamp;
  const keepsStamp = state !== null && sourceOrder(state, incoming) <= 0;
  const nextState: RecordState = {
    version: keepsStamp ? state.version : incoming.version,
    tiebreak: keepsStamp ? state.tiebreak : incoming.tiebreak,
    written,
    columns: stamps,
    parked: parkedFields || state?.parked ? parkedOf(state?.parked, parkedFields ?? {}, incoming) : null,
  };
  const toWrite = keptDeleted ? {} : columns;

  if (parkedFields) {
    const reason = `MANUAL: ${Object.keys(parkedFields).join(', ')} parked for a person to decide`;
    return { outcome: 'parked', columns: writes ? toWrite : {}, reason, conflicts, state: nextState };
  }
  if (!writes) {
    if (kept === 0) return { outcome: 'unchanged', columns: {}, reason: 'destination already holds these values', conflicts, state: nextState };
    const keptConflicts = conflicts.filter((c) => c.winner !== 'hms');
    const reason = keptDeleted
      ? `the legacy row was deleted; kept deleted (${keptConflicts[0].rule})`
      : keptReason(keptConflicts, (legacyNewer ??= lastWriteWinsKeepsRow(policy, current, incoming)));
    return { outcome: 'skipped', columns: {}, reason, conflicts, state: nextState };
  }
  const reason = current === null
    ? (state ? 'the legacy row was deleted; written again' : 'new record')
    : conflicts.length === 0 ? 'event is newer' : conflictReason(conflicts, (legacyNewer ??= lastWriteWinsKeepsRow(policy, current, incoming)));
  return { outcome: 'write', columns: toWrite, reason: notNewer ? `${reason}; ${notNewer.join(', ')} already newer` : reason, conflicts, state: nextState };
}

function hasRule(fieldRules: Record<string, ConflictRule> | undefined, rule: ConflictRule): boolean {
  if (fieldRules) for (const column in fieldRules) if (fieldRules[column] === rule) return true;
  return false;
}

/** Where an event stands against a stamp: older (< 0), the same event (0) or newer (> 0). */
function sourceOrder(stamp: Stamp | null, incoming: Stamp): number {
  if (!stamp) return 1;
  const byVersion = compareVersions(incoming.version, stamp.version);
  if (byVersion !== 0) return byVersion;
  if (incoming.tiebreak === stamp.tiebreak) return 0;
  // Neither carries a version: there is no source order to keep, so the later arrival wins, as
  // any plain sync would. With versions, equal ones are ordered by content.
  if (incoming.version === null) return 1;
  return incoming.tiebreak < stamp.tiebreak ? -1 : 1;
}

function winnerOf(rule: ConflictRule, legacyNewer: boolean): Winner {
  switch (rule) {
    case 'HMS_WINS':
      return 'hms';
    case 'DESTINATION_WINS':
      return 'destination';
    case 'MANUAL':
      return 'parked';
    case 'LAST_WRITE_WINS':
      return legacyNewer ? 'destination' : 'hms';
  }
}

/**
 * LAST_WRITE_WINS: the legacy row is newer when its time column holds a later time than the
 * event's (the event's value for that column, else its version). An event without a time is the
 * oldest; a row without one takes the event; a tie writes.
 */
function lastWriteWinsKeepsRow(policy: ConflictPolicy, current: Record<string, unknown> | null, incoming: IncomingRecord): boolean {
  const column = policy.timestampColumn;
  if (!column || current === null) return false;
  const rowTime = timeValue(current[column]);
  if (rowTime === undefined) return false;
  const eventTime = timeValue(incoming.row[column]) ?? versionMillis(incoming.version);
  return eventTime === undefined || rowTime > eventTime;
}

function parkedOf(previous: ParkedConflict | null | undefined, fields: Record<string, ParkedField>, incoming: IncomingRecord): ParkedConflict | null {
  // A newer event replaces the waiting HMS values; `old` stays what EXS last wrote.
  const merged: Record<string, ParkedField> = {};
  for (const [column, field] of Object.entries(fields)) merged[column] = { ...field, old: previous?.fields[column]?.old ?? field.old };
  for (const [column, field] of Object.entries(previous?.fields ?? {})) {
    if (!Object.hasOwn(merged, column) && !Object.hasOwn(incoming.row, column)) merged[column] = field;
  }
  if (Object.keys(merged).length === 0) return null;
  return { version: incoming.version, since: previous?.since ?? new Date().toISOString(), fields: merged };
}

function describeVersion(version: SourceVersion): string {
  return version === null ? 'none' : version;
}

function keptReason(kept: FieldConflict[], legacyNewer: boolean): string {
  const rules = [...new Set(kept.map((c) => c.rule))];
  if (rules.length === 1 && rules[0] === 'LAST_WRITE_WINS' && legacyNewer) return 'LAST_WRITE_WINS: destination is newer';
  return `${rules.join(', ')}: destination kept ${kept.map((c) => c.column).join(', ')}`;
}

function conflictReason(conflicts: FieldConflict[], legacyNewer: boolean): string {
  const hms = conflicts.filter((c) => c.winner === 'hms').map((c) => c.column);
  const kept = conflicts.filter((c) => c.winner === 'destination').map((c) => c.column);
  const parts = [];
  if (hms.length > 0) parts.push(`HMS won ${hms.join(', ')}`);
  if (kept.length > 0) parts.push(`destination kept ${kept.join(', ')}${legacyNewer ? ' (newer)' : ''}`);
  return `both sides changed: ${parts.join('; ')}`;
}

/**
 * Milliseconds since epoch, or undefined when the value is not a time. Destination and
 * event are read by the same rules as the `timestamp` transform: ISO-8601 (text without a
 * zone is UTC, as EXS writes it), compact legacy stamps YYYYMMDD[HHmm[ss[fraction]]] as
 * text or a number (a BIGINT column), epoch milliseconds, Dates.
 */
export function timeValue(value: unknown): number | undefined {
  if (typeof value === 'string') {
    const millis = canonicalMillis(value);
    if (millis !== undefined) return millis;
  }
  const instant = parseInstant(value);
  return instant && epochMillis(instant);
}
