// The conflict law: given what the destination holds and what the event brings, does the
// event's row get written? Pure, so every connector and the tests share one answer.
import type { ConflictRule } from './types';


export interface ConflictPolicy {
  rule: ConflictRule;
  /** Destination column holding the record's last-change time (LAST_WRITE_WINS compares it). */
  timestampColumn?: string;
}

export interface ConflictDecision {
  write: boolean;
  reason: string;
}

/** Milliseconds since epoch, or undefined when the value is not a time. */
export function timeValue(value: unknown): number | undefined {
  if (value === null || value === undefined || value === '') return undefined;
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : value.getTime();
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  const text = String(value).trim();
  // Compact legacy stamps such as YYYYMMDD, YYYYMMDDHHmm, YYYYMMDDHHmmss[fraction], written in UTC.
  const compact = /^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(?:(\d{2})(\d{1,6})?)?)?$/.exec(text);
  if (compact) {
    const [, y, mo, d, h = '00', mi = '00', sec = '00', fraction = '0'] = compact;
    const parsed = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${sec}.${fraction.padEnd(3, '0').slice(0, 3)}Z`);
    return Number.isNaN(parsed) ? undefined : parsed;
  }
  // Destination text like `2026-03-01 10:00:00.123456` has no zone: EXS writes UTC.
  const iso = /^\d{4}-\d{2}-\d{2} \d/.test(text) && !/[zZ]|[+-]\d{2}:?\d{2}$/.test(text) ? text.replace(' ', 'T') + 'Z' : text;
  const parsed = Date.parse(iso);
  return Number.isNaN(parsed) ? undefined : parsed;
}

export function resolveConflict(
  policy: ConflictPolicy,
  before: Record<string, unknown> | null | undefined,
  incoming: Record<string, unknown>,
): ConflictDecision {
  if (!before) return { write: true, reason: 'new record' };
  if (policy.rule === 'HMS_WINS') return { write: true, reason: 'HMS_WINS' };
  const column = policy.timestampColumn;
  if (!column) return { write: true, reason: 'LAST_WRITE_WINS without a timestamp column: HMS wins' };
  const destinationTime = timeValue(before[column]);
  const eventTime = timeValue(incoming[column]);
  if (destinationTime === undefined) return { write: true, reason: 'destination has no timestamp' };
  if (eventTime === undefined) return { write: false, reason: 'event has no timestamp; destination kept' };
  return eventTime >= destinationTime
    ? { write: true, reason: 'event is newer' }
    : { write: false, reason: 'destination is newer' };
}
