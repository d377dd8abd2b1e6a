// The conflict law: given what the destination holds and what the event brings, does the
// event's row get written? Pure, so every connector and the tests share one answer.
import { epochMillis, parseInstant } from './time';
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

/**
 * Milliseconds since epoch, or undefined when the value is not a time. Destination and
 * event are read by the same rules as the `timestamp` transform: ISO-8601 (text without a
 * zone is UTC, as EXS writes it), compact legacy stamps YYYYMMDD[HHmm[ss[fraction]]] as
 * text or a number (a BIGINT column), epoch milliseconds, Dates.
 */
export function timeValue(value: unknown): number | undefined {
  const instant = parseInstant(value);
  return instant && epochMillis(instant);
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
