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

/**
 * The law, and the model the SQL guard of every dialect must agree with (UpsertGuard in
 * nodes/core/sql/dialect.ts, which decides inside the upsert statement so runtimes cannot race):
 * - a new record is written;
 * - HMS_WINS, or LAST_WRITE_WINS without a timestamp column: the event is written;
 * - LAST_WRITE_WINS: a destination row without a time takes the event; an event without a time is
 *   the oldest and never replaces a row that has one; otherwise the event is written when its time
 *   is equal or newer.
 * Ties write: an equal time means the same version of the record, so a redelivered event is
 * idempotent. Two different versions with the same time are not ordered by this law (the one
 * applied last stays); the source's `updated_at` (microseconds) is what tells versions apart.
 */
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
  if (eventTime === destinationTime) return { write: true, reason: 'event is as new as the destination (same version)' };
  return eventTime > destinationTime
    ? { write: true, reason: 'event is newer' }
    : { write: false, reason: 'destination is newer' };
}
