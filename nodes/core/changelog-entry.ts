// What the change log writes for one settled event: enough to audit it without the flow
// (key, the row before and after, outcome, attempts, latency, the reason when it failed).
import type { ChangeLogEntry, ExsEnvelope, SettledOutcome } from './types';

function destinationRow(outcome: SettledOutcome, envelope: ExsEnvelope): ChangeLogEntry['dest_row'] {
  switch (outcome) {
    case 'applied':
      return 'OK';
    case 'unchanged':
      return 'UNCHANGED';
    case 'skipped':
      return 'KEPT';
    case 'parked':
      return 'PARKED';
    case 'superseded':
      return 'SUPERSEDED';
    default:
      // A record that was mapped but not written failed at the destination; one that never
      // got a record was rejected before it (not JSON, no key, wrong type).
      return envelope.record ? 'FAILED' : 'REJECTED';
  }
}

export function buildChangeLogEntry(envelope: ExsEnvelope, event: unknown, now = Date.now()): ChangeLogEntry & { outcome: SettledOutcome } {
  // A message that reached the log without an outcome was not shown to be applied: never claim it was.
  const outcome: SettledOutcome = envelope.outcome ?? 'failed';
  const entry: ChangeLogEntry & { outcome: SettledOutcome } = {
    time: new Date(now).toISOString(),
    job: envelope.job,
    seq: envelope.seq,
    key: envelope.key ?? null,
    outcome,
    dest_row: destinationRow(outcome, envelope),
    attempts: envelope.attempt,
    latency_ms: Math.max(0, now - envelope.receivedAt),
  };
  if (envelope.result) {
    if (envelope.result.before !== undefined) entry.before = envelope.result.before;
    entry.after = envelope.result.after;
    if (envelope.result.reason) entry.reason = envelope.result.reason;
    if (envelope.result.conflicts) entry.conflicts = envelope.result.conflicts;
  } else if (envelope.record) {
    entry.after = envelope.record.row;
  }
  entry.event = envelope.raw ?? event;
  if (envelope.error) entry.error = envelope.error;
  return entry;
}
