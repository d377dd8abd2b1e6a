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

/**
 * Most JSON characters one feed message of entries carries (`changelog_feed: batch`). Brokers
 * refuse large packets (EMQX: 1 MB by default), and a refused QoS 1 packet is sent again on every
 * reconnect, which would stall the feed for good. Characters, not bytes: at most 3 bytes each in
 * UTF-8, so 768 KiB at worst.
 */
export const FEED_MESSAGE_MAX_CHARS = 256 * 1024;

/**
 * Runs of consecutive items, in order, whose JSON array (the items' `lengths`, a comma each and
 * the brackets) is at most `max` characters long; an item longer than that goes alone (as it
 * would with one message per entry).
 */
export function groupBySize<T>(items: readonly T[], lengths: readonly number[], max = FEED_MESSAGE_MAX_CHARS): T[][] {
  const groups: T[][] = [];
  let group: T[] = [];
  // `[` and each item with the comma or `]` after it.
  let size = 1;
  items.forEach((item, i) => {
    const length = (lengths[i] ?? 0) + 1;
    if (group.length > 0 && size + length > max) {
      groups.push(group);
      group = [];
      size = 1;
    }
    group.push(item);
    size += length;
  });
  if (group.length > 0) groups.push(group);
  return groups;
}
