// The dispatcher's read-ahead for `backlog: newest_per_record`, on a real journal: a backlog
// longer than both the window and the read-ahead is handed out in order, each event exactly once
// (written or superseded by a newer one of its record), and an event is only ever replaced by a
// newer one that is still to be written.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { SyncDispatcher, type DispatchJournal, type JournalRecord, type RecordIdentity } from '../../nodes/core/queue/dispatcher';
import { SyncJournal } from '../../nodes/core/journal/sync-journal';
import { tempDir } from '../support/services';

interface Event {
  key: string;
  version: number;
}

const identify = (record: JournalRecord): RecordIdentity => {
  const event = JSON.parse(record.payload.toString()) as Event;
  return { key: event.key, version: String(event.version).padStart(6, '0'), columns: ['K', 'V'] };
};

async function dispatcherOn(journal: DispatchJournal, options: { window: number; lookahead: number }) {
  const delivered: number[] = [];
  const superseded: Array<{ seq: number; by: number; key: string }> = [];
  let settleDeliveries = true;
  const dispatcher: SyncDispatcher = new SyncDispatcher(journal, ({ record }) => {
    delivered.push(record.seq);
    if (settleDeliveries) setImmediate(() => dispatcher.settled(record.seq, true));
  }, { retry: { max_attempts: 3, backoff_seconds: 0 }, schedule: 'realtime', identify, coalesceBacklog: true, ...options });
  // As the job does: settled once its change-log entry is written.
  dispatcher.on('superseded', (record: JournalRecord, by: number, key: string) => {
    superseded.push({ seq: record.seq, by, key });
    setImmediate(() => dispatcher.settled(record.seq, false));
  });
  return { dispatcher, delivered, superseded, holdDeliveries: () => (settleDeliveries = false) };
}

async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const append = (journal: SyncJournal, event: Event) => journal.append('t', Buffer.from(JSON.stringify(event)));

/** The journal as the dispatcher sees it, its reads going through `read` (to watch them, or to fail one). */
function readingThrough(journal: SyncJournal, read: DispatchJournal['readUnsettled']): DispatchJournal {
  return {
    get lowWater() { return journal.lowWater; },
    get lastSeq() { return journal.lastSeq; },
    settle: (seq) => journal.settle(seq),
    pendingCount: () => journal.pendingCount(),
    readUnsettled: read,
  };
}

describe('SyncDispatcher with backlog coalescing', () => {
  it('hands out a backlog longer than the window and the read-ahead in order, each event once, only the newest of a record within reach', async () => {
    const journal = await SyncJournal.open(tempDir('dispatcher'));
    const events: Event[] = Array.from({ length: 60 }, (_, i) => ({ key: `K${i % 3}`, version: i }));
    for (const event of events) await append(journal, event);
    const { dispatcher, delivered, superseded } = await dispatcherOn(journal, { window: 4, lookahead: 7 });
    dispatcher.start();
    await until(() => delivered.length + superseded.length === events.length && journal.pendingCount() === 0);
    const all = [...delivered, ...superseded.map((s) => s.seq)].sort((a, b) => a - b);
    assert.deepEqual(all, events.map((_, i) => i + 1), 'every event exactly once');
    assert.deepEqual(delivered, [...delivered].sort((a, b) => a - b), 'written in journal order');
    const replacedBy = new Map(superseded.map(({ seq, by }) => [seq, by]));
    for (const { seq, by, key } of superseded) {
      assert.ok(by > seq, `#${seq} replaced by a later, newer event (#${by})`);
      assert.equal(key, events[by - 1].key);
      assert.equal(events[seq - 1].key, key);
      // The event that replaced it may itself be replaced once more is read ahead: in the end a newer one is written.
      let final = by;
      while (replacedBy.has(final)) final = replacedBy.get(final)!;
      assert.ok(delivered.includes(final), `#${final}, which #${seq} ends in, is written`);
    }
    for (const last of [58, 59, 60]) assert.ok(delivered.includes(last), `each record's last event (#${last}) is written`);
    assert.ok(superseded.length >= 30, `most of the backlog is coalesced (${superseded.length} of 60)`);
    dispatcher.stop();
    await journal.close();
  });

  it('does not replace an event by a newer one already handed out (which may yet fail for good)', async () => {
    const journal = await SyncJournal.open(tempDir('dispatcher'));
    await append(journal, { key: 'K', version: 10 });
    await append(journal, { key: 'L', version: 1 });
    const { dispatcher, delivered, superseded, holdDeliveries } = await dispatcherOn(journal, { window: 10, lookahead: 10 });
    holdDeliveries(); // #1 stays in flight: its write might fail and be retried, or dead-lettered
    dispatcher.start();
    await until(() => delivered.length === 2);
    // An older event of K arrives, with another event so that it is read ahead.
    await append(journal, { key: 'K', version: 9 });
    await append(journal, { key: 'L', version: 2 });
    dispatcher.notify();
    await until(() => delivered.length === 4);
    assert.deepEqual(delivered, [1, 2, 3, 4]);
    assert.deepEqual(superseded, []);
    dispatcher.stop();
    await journal.close();
  });

  it('a new mapping while the read-ahead waits for the journal: what was read is read again, and every event is handed out once', async () => {
    const journal = await SyncJournal.open(tempDir('dispatcher'));
    const events: Event[] = Array.from({ length: 2500 }, (_, i) => ({ key: `K${i % 1000}`, version: i }));
    for (let at = 0; at < events.length; at += 100) await Promise.all(events.slice(at, at + 100).map((event) => append(journal, event)));
    // The journal as the dispatcher sees it, with the mapper redeployed during the second read of the first read-ahead.
    let reads = 0;
    let dispatcher: SyncDispatcher | undefined;
    const watched = readingThrough(journal, async (after, limit) => {
      const page = await journal.readUnsettled(after, limit);
      if (++reads === 2) dispatcher!.mappingChanged();
      return page;
    });
    const run = await dispatcherOn(watched, { window: 300, lookahead: 2500 });
    dispatcher = run.dispatcher;
    dispatcher.start();
    await until(() => run.delivered.length + run.superseded.length === events.length && journal.pendingCount() === 0);
    const all = [...run.delivered, ...run.superseded.map((s) => s.seq)].sort((a, b) => a - b);
    assert.deepEqual(all, events.map((_, i) => i + 1), 'every event exactly once');
    assert.deepEqual(run.delivered, [...run.delivered].sort((a, b) => a - b), 'written in journal order');
    assert.ok(run.superseded.length > 0, 'the backlog read again after the change is still coalesced');
    dispatcher.stop();
    await journal.close();
  });
});

/** An event with explicit columns, for partial events and equal versions. */
interface ColumnEvent {
  key: string;
  version: number;
  columns: string[];
}
const identifyColumns = (record: JournalRecord): RecordIdentity => {
  const event = JSON.parse(record.payload.toString()) as ColumnEvent;
  return { key: event.key, version: String(event.version).padStart(6, '0'), columns: event.columns };
};
const appendColumns = (journal: SyncJournal, event: ColumnEvent) => journal.append('t', Buffer.from(JSON.stringify(event)));

/** A held (hourly) dispatcher, flushed by hand; deliveries and supersedes recorded, nothing settled unless asked. */
function heldDispatcher(journal: DispatchJournal, identifyWith: (record: JournalRecord) => RecordIdentity | undefined, retry = { max_attempts: 1, backoff_seconds: 0 }) {
  const delivered: number[] = [];
  const superseded: Array<{ seq: number; by: number }> = [];
  const dispatcher = new SyncDispatcher(journal, ({ record }) => delivered.push(record.seq), { retry, schedule: 'hourly', identify: (record) => identifyWith(record) });
  dispatcher.on('superseded', (record: JournalRecord, by: number) => superseded.push({ seq: record.seq, by }));
  return { dispatcher, delivered, superseded };
}

describe('SyncDispatcher, review findings', () => {
  it('a probe that ends in the dead letter is followed by the next probe: a paused job does not stay paused for good', async () => {
    const journal = await SyncJournal.open(tempDir('dispatcher'));
    for (let i = 0; i < 3; i++) await append(journal, { key: `K${i}`, version: i });
    const delivered: number[] = [];
    const dispatcher = new SyncDispatcher(journal, ({ record }) => delivered.push(record.seq), { retry: { max_attempts: 1, backoff_seconds: 0 }, schedule: 'realtime' });
    dispatcher.start();
    await until(() => delivered.length === 3);
    for (const seq of [1, 2, 3]) assert.equal(dispatcher.failed(seq, 'transient'), 'retry');
    await until(() => delivered.length === 4); // the probe: the oldest, after a second
    assert.equal(delivered[3], 1);
    // The destination answers, but #1 breaks a constraint: a data failure, then the dead letter.
    assert.equal(dispatcher.failed(1, 'data'), 'dead_letter');
    dispatcher.settled(1, false);
    await until(() => delivered.length === 5);
    assert.equal(delivered[4], 2, 'the next oldest asks next');
    dispatcher.settled(2, true);
    await until(() => delivered.length === 6);
    assert.equal(delivered[5], 3, 'resumed: what waited goes again');
    assert.equal(dispatcher.state().paused, false);
    dispatcher.settled(3, true);
    await until(() => journal.lowWater === 3);
    dispatcher.stop();
    await journal.close();
  });

  it('a held flush scanning while the job closes neither throws nor reports an error', async () => {
    const journal = await SyncJournal.open(tempDir('dispatcher'));
    await Promise.all(Array.from({ length: 20_000 }, (_, i) => append(journal, { key: `K${i % 100}`, version: i })));
    const { dispatcher } = heldDispatcher(journal, identify);
    const errors: Error[] = [];
    dispatcher.on('error', (err: Error) => errors.push(err));
    dispatcher.start();
    const flushed = dispatcher.flush();
    await new Promise((resolve) => setImmediate(resolve));
    dispatcher.stop();
    await journal.close();
    await flushed; // resolves: the scan stops with the dispatcher
    assert.deepEqual(errors, []);
  });

  it('a realtime job flushed by hand writes every event (only held schedules and backlog: newest_per_record coalesce)', async () => {
    const journal = await SyncJournal.open(tempDir('dispatcher'));
    for (const version of [1, 2, 3]) await append(journal, { key: 'K', version });
    const delivered: number[] = [];
    const superseded: number[] = [];
    const dispatcher = new SyncDispatcher(journal, ({ record }) => delivered.push(record.seq), { retry: { max_attempts: 1, backoff_seconds: 0 }, schedule: 'realtime', identify });
    dispatcher.on('superseded', (record: JournalRecord) => superseded.push(record.seq));
    dispatcher.start();
    await until(() => delivered.length === 3);
    for (const seq of [1, 2, 3]) assert.equal(dispatcher.failed(seq, 'transient'), 'retry');
    for (const version of [4, 5]) await append(journal, { key: 'K', version });
    await dispatcher.flush();
    // The probe (#1), then after its write everything that waited or arrived, none superseded.
    await until(() => delivered.length === 4);
    assert.equal(delivered[3], 1);
    dispatcher.settled(1, true);
    await until(() => delivered.length === 8);
    assert.deepEqual(superseded, []);
    assert.deepEqual(delivered.slice(4), [2, 3, 4, 5]);
    dispatcher.stop();
    await journal.close();
  });

  it('a new mapping during a held flush: the events still to come are coalesced by the new one', async () => {
    const journal = await SyncJournal.open(tempDir('dispatcher'));
    for (const version of [1, 2, 3]) await append(journal, { key: 'K', version });
    // The old mapping takes every event; the new one refuses version 3 (a status its map() lacks, say).
    let refuseNewest = false;
    const identifyNow = (record: JournalRecord) => {
      const identity = identify(record);
      return refuseNewest && identity.version === '000003' ? undefined : identity;
    };
    const { dispatcher, delivered, superseded } = heldDispatcher(journal, identifyNow);
    // The window lets one event out at a time, so the mapping changes with #2 and #3 still to come.
    (dispatcher as unknown as { window: number }).window = 1;
    dispatcher.start();
    await dispatcher.flush();
    await until(() => superseded.length === 1);
    assert.deepEqual(superseded, [{ seq: 1, by: 3 }]);
    refuseNewest = true;
    dispatcher.mappingChanged();
    dispatcher.settled(1, false);
    await until(() => delivered.length === 1);
    dispatcher.settled(delivered[0], true);
    await until(() => delivered.length === 2);
    // #3 would go to the dead letter under the new mapping: it replaces nothing, #2 is written.
    assert.deepEqual(delivered, [2, 3]);
    assert.deepEqual(superseded, [{ seq: 1, by: 3 }]);
    dispatcher.stop();
    await journal.close();
  });

  it('a new mapping during a held flush never makes an event it superseded (its entry still being written) the newest of its record', async () => {
    // The mapper is redeployed with another version field while #1's superseded entry is being written.
    const events = [{ k: 'A', a: 1, b: 9 }, { k: 'A', a: 2, b: 1 }, { k: 'A', a: 0, b: 5 }];
    const journal = await SyncJournal.open(tempDir('dispatcher'));
    for (const event of events) await journal.append('t', Buffer.from(JSON.stringify(event)));
    let field: 'a' | 'b' = 'a';
    const identifyBy = (record: JournalRecord): RecordIdentity => {
      const event = JSON.parse(record.payload.toString()) as Record<string, number | string>;
      return { key: String(event.k), version: String(event[field]).padStart(3, '0'), columns: ['V'] };
    };
    const { dispatcher, delivered, superseded } = heldDispatcher(journal, identifyBy, { max_attempts: 3, backoff_seconds: 0 });
    (dispatcher as unknown as { window: number }).window = 2;
    dispatcher.start();
    await dispatcher.flush();
    await until(() => superseded.length === 1 && delivered.length === 1);
    assert.deepEqual({ superseded, delivered }, { superseded: [{ seq: 1, by: 2 }], delivered: [2] });
    field = 'b';
    dispatcher.mappingChanged();
    await new Promise((resolve) => setTimeout(resolve, 20)); // the rescan
    dispatcher.settled(2, true);
    await until(() => delivered.length + superseded.length === 3);
    assert.deepEqual(delivered, [2, 3], '#3 is written: #1, superseded already, replaces nothing');
    dispatcher.stop();
    await journal.close();
  });
});

describe('SyncDispatcher, a held flush in steps', () => {
  /** A held dispatcher whose deliveries and supersedes settle as the job settles them; notes how many records the flush holds at each hand-out. */
  function steppedFlush(journal: SyncJournal, flushRecords?: number) {
    const delivered: number[] = [];
    const superseded: Array<{ seq: number; by: number }> = [];
    let mostRecords = 0;
    const dispatcher: SyncDispatcher = new SyncDispatcher(journal, ({ record }) => {
      delivered.push(record.seq);
      const held = (dispatcher as unknown as { newestOfRecord?: Map<string, unknown> }).newestOfRecord;
      mostRecords = Math.max(mostRecords, held?.size ?? 0);
      setImmediate(() => dispatcher.settled(record.seq, true));
    }, { retry: { max_attempts: 1, backoff_seconds: 0 }, schedule: 'hourly', identify, window: 4, ...(flushRecords && { flushRecords }) });
    dispatcher.on('superseded', (record: JournalRecord, by: number) => {
      superseded.push({ seq: record.seq, by });
      setImmediate(() => dispatcher.settled(record.seq, false));
    });
    return { dispatcher, delivered, superseded, mostRecords: () => mostRecords };
  }

  // Three blocks of twelve events, three rounds over four records each; K0 comes back in the third.
  const blocks = [['K0', 'K1', 'K2', 'K3'], ['K4', 'K5', 'K6', 'K7'], ['K8', 'K9', 'K10', 'K0']];
  const events: Event[] = blocks.flatMap((keys) => [0, 1, 2].flatMap(() => keys)).map((key, i) => ({ key, version: i + 1 }));

  it('holds at most flushRecords records at a time: each step writes its records\' newest, a record in two steps is written in both', async () => {
    const journal = await SyncJournal.open(tempDir('dispatcher'));
    for (const event of events) await append(journal, event);
    const { dispatcher, delivered, superseded, mostRecords } = steppedFlush(journal, 4);
    dispatcher.start();
    await dispatcher.flush();
    await until(() => journal.pendingCount() === 0);
    assert.deepEqual(delivered, [9, 10, 11, 12, 21, 22, 23, 24, 33, 34, 35, 36], 'each step\'s records, newest only, in journal order');
    const all = [...delivered, ...superseded.map((s) => s.seq)].sort((a, b) => a - b);
    assert.deepEqual(all, events.map((_, i) => i + 1), 'every event exactly once');
    for (const { seq, by } of superseded) {
      assert.equal(events[by - 1].key, events[seq - 1].key);
      assert.ok(Math.ceil(by / 12) === Math.ceil(seq / 12), `#${seq} is replaced within its own step (by #${by})`);
    }
    // The step's records, and at most the window's events still in the flow (read from the low-water mark).
    assert.ok(mostRecords() <= 4 + 4, `the flush held ${mostRecords()} records at most`);
    dispatcher.stop();
    await journal.close();
  });

  it('with room for every record, one step: each record written once, by its newest event', async () => {
    const journal = await SyncJournal.open(tempDir('dispatcher'));
    for (const event of events) await append(journal, event);
    const { dispatcher, delivered, superseded } = steppedFlush(journal);
    dispatcher.start();
    await dispatcher.flush();
    await until(() => journal.pendingCount() === 0);
    assert.deepEqual(delivered, [10, 11, 12, 21, 22, 23, 24, 33, 34, 35, 36]);
    assert.equal(superseded.length, events.length - delivered.length);
    assert.deepEqual(superseded.find((s) => s.seq === 9), { seq: 9, by: 36 }, 'K0 of the first block is replaced by its newest, in the third');
    dispatcher.stop();
    await journal.close();
  });

  it('events that arrive during a stepped flush wait for the next flush', async () => {
    const journal = await SyncJournal.open(tempDir('dispatcher'));
    for (const event of events) await append(journal, event);
    const { dispatcher, delivered } = steppedFlush(journal, 4);
    dispatcher.start();
    await dispatcher.flush();
    await until(() => delivered.length >= 1);
    await append(journal, { key: 'K1', version: 100 });
    dispatcher.notify();
    await until(() => journal.pendingCount() === 1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(!delivered.includes(37), 'held until the next flush');
    await dispatcher.flush();
    await until(() => journal.pendingCount() === 0);
    assert.equal(delivered[delivered.length - 1], 37);
    dispatcher.stop();
    await journal.close();
  });
});

describe('SyncDispatcher, a held flush reads its journal once', () => {
  it('scans each page once: the pump does not start a second scan while the flush scans its first step', async () => {
    const journal = await SyncJournal.open(tempDir('dispatcher'));
    const events: Event[] = Array.from({ length: 3000 }, (_, i) => ({ key: `K${i}`, version: i }));
    for (let at = 0; at < events.length; at += 500) await Promise.all(events.slice(at, at + 500).map((event) => append(journal, event)));
    let scanPages = 0;
    const counted = readingThrough(journal, (after, limit) => {
      if (limit === 1000) scanPages += 1; // the flush's scan reads pages of 1,000; the pump reads at most a window
      return journal.readUnsettled(after, limit);
    });
    let delivered = 0;
    const dispatcher: SyncDispatcher = new SyncDispatcher(counted, ({ record }) => {
      delivered += 1;
      setImmediate(() => dispatcher.settled(record.seq, true));
    }, { retry: { max_attempts: 1, backoff_seconds: 0 }, schedule: 'hourly', identify, window: 8 });
    dispatcher.start();
    await dispatcher.flush();
    await until(() => journal.pendingCount() === 0);
    assert.equal(delivered, 3000);
    assert.ok(scanPages <= 4, `three pages and the empty read at the end, read ${scanPages} times`);
    dispatcher.stop();
    await journal.close();
  });
});

describe('SyncDispatcher, a held flush behind an event that waits', () => {
  it('scans each step from the cursor, not again from the low-water mark that the waiting event holds back', async () => {
    const journal = await SyncJournal.open(tempDir('dispatcher'));
    // 3,000 records, two events each in a row, about 1 KB each: 6 MB of journal, read from disk.
    const events = Array.from({ length: 6000 }, (_, i) => ({ key: `K${Math.floor(i / 2)}`, version: i, note: 'x'.repeat(1000) }));
    for (let at = 0; at < events.length; at += 500) await Promise.all(events.slice(at, at + 500).map((event) => append(journal, event)));
    const delivered: number[] = [];
    const superseded: number[] = [];
    // The first event written stays in the flow (its write waits, as a long retry backoff would
    // make it): the low-water mark stays just before it.
    let waiting: number | undefined;
    const dispatcher: SyncDispatcher = new SyncDispatcher(journal, ({ record }) => {
      delivered.push(record.seq);
      waiting ??= record.seq;
      if (record.seq !== waiting) setImmediate(() => dispatcher.settled(record.seq, true));
    }, { retry: { max_attempts: 1, backoff_seconds: 0 }, schedule: 'hourly', identify, window: 8, flushRecords: 250 });
    dispatcher.on('superseded', (record: JournalRecord) => {
      superseded.push(record.seq);
      setImmediate(() => dispatcher.settled(record.seq, false));
    });
    const journalBytes = journal.stats().bytesRead;
    dispatcher.start();
    await dispatcher.flush();
    await until(() => journal.pendingCount() === 1);
    assert.equal(journal.lowWater, waiting! - 1);
    // Twelve steps of 250 records: each writes its records' newest.
    assert.equal(delivered.length, 3000);
    assert.deepEqual([...delivered, ...superseded].sort((a, b) => a - b), events.map((_, i) => i + 1), 'every event once');
    // The pump reads the journal once (6.4 MB) and each step's scan about 1.5 MB (its 500 events,
    // and the page of 1,000 that runs past its end): 28.8 MB. From the low-water mark every step
    // reads all the steps before it again: 65 MB.
    const read = journal.stats().bytesRead - journalBytes;
    assert.ok(read < 40e6, `read ${(read / 1e6).toFixed(1)} MB of a ${(6000 * 1.07e3 / 1e6).toFixed(1)} MB journal`);
    dispatcher.settled(waiting!, true);
    dispatcher.stop();
    await journal.close();
  });
});

describe('SyncDispatcher, equal versions in a held flush', () => {
  it('writes every event of the newest version, in journal order, and supersedes the older ones their columns cover', async () => {
    const journal = await SyncJournal.open(tempDir('dispatcher'));
    await appendColumns(journal, { key: 'A', version: 1, columns: ['K', 'S'] });
    for (let i = 0; i < 50; i++) await appendColumns(journal, { key: 'A', version: 2, columns: i % 2 === 0 ? ['K', 'S'] : ['K', 'T'] });
    await appendColumns(journal, { key: 'B', version: 1, columns: ['K', 'S'] });
    const { dispatcher, delivered, superseded } = heldDispatcher(journal, identifyColumns);
    (dispatcher as unknown as { window: number }).window = 100;
    dispatcher.start();
    await dispatcher.flush();
    await until(() => delivered.length + superseded.length === 52);
    assert.deepEqual(delivered, Array.from({ length: 51 }, (_, i) => i + 2), 'the fifty events of version 2 and B\'s');
    assert.deepEqual(superseded, [{ seq: 1, by: 51 }]);
    dispatcher.stop();
    await journal.close();
  });
});

describe('SyncDispatcher, a held flush whose journal read fails', () => {
  it('reports a step\'s failed scan once and scans no further until the next flush (it failed in a loop before)', async () => {
    const journal = await SyncJournal.open(tempDir('dispatcher'));
    for (let i = 0; i < 20; i++) await append(journal, { key: `K${i}`, version: i });
    // The second step's scan meets a corrupt frame (#10), as a checksum mismatch would throw.
    let scans = 0;
    let corrupt = true;
    const failing = readingThrough(journal, async (after, limit) => {
      const page = await journal.readUnsettled(after, limit);
      if (corrupt && limit === 1000 && ++scans > 1 && page.some((record) => record.seq === 10)) throw new Error('journal corrupt: checksum mismatch');
      return page;
    });
    const delivered: number[] = [];
    const dispatcher: SyncDispatcher = new SyncDispatcher(failing, ({ record }) => {
      delivered.push(record.seq);
      setImmediate(() => dispatcher.settled(record.seq, true));
    }, { retry: { max_attempts: 1, backoff_seconds: 0 }, schedule: 'hourly', identify, window: 4, flushRecords: 5 });
    const errors: Error[] = [];
    dispatcher.on('error', (err: Error) => errors.push(err));
    dispatcher.start();
    await dispatcher.flush();
    await until(() => errors.length >= 1);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(errors.length, 1, `reported once, not in a loop (${errors.length} times)`);
    assert.deepEqual(delivered, [1, 2, 3, 4, 5], 'the first step went out; the rest waits');
    // The next flush tries again: with the frame readable, everything goes out.
    corrupt = false;
    await dispatcher.flush();
    await until(() => journal.pendingCount() === 0);
    assert.deepEqual(delivered, Array.from({ length: 20 }, (_, i) => i + 1));
    dispatcher.stop();
    await journal.close();
  });
});
