// The sync queue's journal: durable appends, settling, recovery from torn writes and kill -9,
// segment deletion, and memory that stays flat under a large backlog.
import { after, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import * as zlib from 'node:zlib';
import { crc32Table, SyncJournal, type JournalRecord } from '../../nodes/core/journal/sync-journal';
import { tempDir as makeTempDir } from '../support/services';
import { waitFor } from '../support/wait';

// The backlog tests write tens of MB: leave nothing behind in the temp folder.
const tempDirs: string[] = [];
function tempDir(prefix: string): string {
  const dir = makeTempDir(prefix);
  tempDirs.push(dir);
  return dir;
}
after(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

const JOURNAL_MODULE = path.resolve(__dirname, '../../nodes/core/journal/sync-journal.js');

function segmentFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => /^seg-\d{16}\.log$/.test(f)).sort();
}

function lastSegment(dir: string): string {
  return path.join(dir, segmentFiles(dir).at(-1) as string);
}

async function readAll(journal: SyncJournal, pageSize = 1000): Promise<JournalRecord[]> {
  const all: JournalRecord[] = [];
  for (let after = 0; ; ) {
    const page = await journal.readUnsettled(after, pageSize);
    if (page.length === 0) return all;
    all.push(...page);
    after = page[page.length - 1].seq;
  }
}

async function appendMany(journal: SyncJournal, count: number, concurrency = 64): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      await journal.append(`hms/permit/${i % 7}`, Buffer.from(`event-${i}`));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

describe('SyncJournal', () => {
  it('round-trips records and skips settled ones', async () => {
    const journal = await SyncJournal.open(tempDir('journal'));
    const seqs = [];
    for (let i = 1; i <= 5; i++) seqs.push(await journal.append(`t/${i}`, Buffer.from(`p${i}`), 1000 + i));
    assert.deepEqual(seqs, [1, 2, 3, 4, 5]);

    const all = await journal.readUnsettled(0, 10);
    assert.deepEqual(all[2], { seq: 3, receivedAt: 1003, topic: 't/3', payload: Buffer.from('p3') });
    assert.deepEqual((await journal.readUnsettled(3, 10)).map((r) => r.seq), [4, 5]);
    assert.deepEqual((await journal.readUnsettled(0, 2)).map((r) => r.seq), [1, 2]);

    journal.settle(2);
    assert.equal(journal.isSettled(2), true);
    assert.equal(journal.isSettled(3), false);
    assert.deepEqual((await journal.readUnsettled(0, 10)).map((r) => r.seq), [1, 3, 4, 5]);
    assert.equal(journal.pendingCount(), 4);
    assert.equal(journal.lowWater, 0);
    assert.equal(journal.lastSeq, 5);
    await journal.close();
  });

  it('reads the newest records from memory and older ones from disk, the same either way', async () => {
    const dir = tempDir('journal');
    const journal = await SyncJournal.open(dir);
    const payloadOf = (i: number) => Buffer.from(JSON.stringify({ i, pad: 'x'.repeat(i % 50) }));
    // More than memory keeps (4096): the oldest pages come from the segment file.
    for (let i = 1; i <= 6000; i += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, k) => journal.append(`t/${i + k}`, payloadOf(i + k), i + k)));
    }
    for (let seq = 2; seq <= 6000; seq += 3) journal.settle(seq);
    const fromBoth = await readAll(journal, 700);
    await journal.close();
    const reopened = await SyncJournal.open(dir);
    const fromDisk = await readAll(reopened, 700);
    await reopened.close();
    assert.equal(fromBoth.length, 4000);
    assert.deepEqual(fromBoth, fromDisk);
    for (const record of fromBoth) {
      assert.equal(record.topic, `t/${record.seq}`);
      assert.deepEqual(record.payload, payloadOf(record.seq));
    }
  });

  it('keeps in memory only what a reader near the end will read: a reader far behind reads from disk, and memory serves it again once it caught up', async () => {
    const journal = await SyncJournal.open(tempDir('journal'));
    const payloadOf = (seq: number) => Buffer.from(`{"seq":${seq}}`);
    let appended = 0;
    const appendSome = async (count: number) => {
      const seqs = await Promise.all(Array.from({ length: count }, () => journal.append('t', payloadOf(++appended))));
      assert.deepEqual(seqs, Array.from({ length: count }, (_, i) => appended - count + 1 + i));
    };
    let cursor = 0;
    const readUpToEnd = async () => {
      for (;;) {
        const page = await journal.readUnsettled(cursor, 1000);
        if (page.length === 0) return;
        for (const record of page) {
          assert.equal(record.seq, cursor + 1, 'records come in order, none skipped');
          assert.deepEqual(record.payload, payloadOf(record.seq));
          cursor = record.seq;
        }
      }
    };
    // Keeping up: every record read from memory.
    for (let round = 0; round < 5; round++) {
      await appendSome(300);
      await readUpToEnd();
    }
    assert.equal(journal.stats().readFromMemory, 1500);
    // Paused (a destination outage): 10,000 appends, in group commits of 500, with no reader.
    for (let i = 0; i < 20; i++) await appendSome(500);
    const before = journal.stats().readFromMemory;
    await readUpToEnd();
    assert.equal(journal.stats().readFromMemory - before, 0, 'a backlog is read from disk: memory did not hold its newest records all along');
    // Caught up: memory serves again.
    for (let round = 0; round < 3; round++) {
      const served = journal.stats().readFromMemory;
      await appendSome(200);
      await readUpToEnd();
      assert.equal(journal.stats().readFromMemory - served, 200);
    }
    assert.equal(cursor, appended);
    await journal.close();
  });

  it('lets go of records once read: reading them again (a retry) reads the disk, and gets the same', async () => {
    const journal = await SyncJournal.open(tempDir('journal'));
    const payloadOf = (seq: number) => Buffer.from(`{"seq":${seq}}`);
    await Promise.all(Array.from({ length: 300 }, (_, i) => journal.append('t', payloadOf(i + 1))));
    const first = await journal.readUnsettled(0, 1000);
    assert.equal(journal.stats().readFromMemory, 300, 'read as soon as appended: from memory');
    const again = await journal.readUnsettled(0, 1000);
    assert.equal(journal.stats().readFromMemory, 300, 'read again: from disk');
    assert.deepEqual(again, first);
    // Newer records are served from memory as before.
    await Promise.all(Array.from({ length: 50 }, (_, i) => journal.append('t', payloadOf(301 + i))));
    const next = await journal.readUnsettled(300, 1000);
    assert.deepEqual(next.map((r) => r.seq), Array.from({ length: 50 }, (_, i) => 301 + i));
    assert.equal(journal.stats().readFromMemory, 350);
    await journal.close();
  });

  it('keeps empty payloads, multi-byte topics and large payloads intact', async () => {
    const journal = await SyncJournal.open(tempDir('journal'), { segmentBytes: 64 * 1024 });
    const big = Buffer.alloc(700_000, 7); // larger than a segment and than the read buffer
    await journal.append('hms/ärende/€', Buffer.alloc(0));
    await journal.append('big', big);
    await journal.append('after', Buffer.from('x'));
    const records = await journal.readUnsettled(0, 10);
    assert.equal(records[0].topic, 'hms/ärende/€');
    assert.equal(records[0].payload.length, 0);
    assert.ok(records[1].payload.equals(big));
    assert.equal(records[2].topic, 'after');
    await journal.close();
  });

  it('advances the low-water mark only over a settled prefix, whatever the settle order', async () => {
    const journal = await SyncJournal.open(tempDir('journal'));
    await appendMany(journal, 10, 1);
    for (const seq of [3, 5, 4, 2]) journal.settle(seq);
    assert.equal(journal.lowWater, 0);
    journal.settle(1);
    assert.equal(journal.lowWater, 5);
    journal.settle(7);
    assert.equal(journal.lowWater, 5);
    journal.settle(6);
    assert.equal(journal.lowWater, 7);
    // Idempotent, and unknown seqs are ignored.
    for (const seq of [5, 7, 99, 0, -1, 2.5]) journal.settle(seq);
    assert.equal(journal.lowWater, 7);
    assert.equal(journal.pendingCount(), 3);
    assert.deepEqual((await journal.readUnsettled(0, 10)).map((r) => r.seq), [8, 9, 10]);
    await journal.close();
  });

  it('resolves concurrent appends in append order and shares fdatasyncs between them', async () => {
    const journal = await SyncJournal.open(tempDir('journal'));
    const resolved: number[] = [];
    const seqs = await Promise.all(
      Array.from({ length: 200 }, (_, i) => journal.append('t', Buffer.from(String(i))).then((seq) => (resolved.push(seq), seq))),
    );
    assert.deepEqual(seqs, Array.from({ length: 200 }, (_, i) => i + 1));
    assert.deepEqual(resolved, seqs);
    assert.ok(journal.stats().fdatasyncs < 200 / 4, `${journal.stats().fdatasyncs} fdatasyncs for 200 concurrent appends`);
    const records = await journal.readUnsettled(0, 1000);
    assert.deepEqual(records.map((r) => r.payload.toString()), seqs.map((s) => String(s - 1)));
    await journal.close();
  });

  it('waits for queued appends on close and refuses appends after it', async () => {
    const journal = await SyncJournal.open(tempDir('journal'));
    const appends = Array.from({ length: 50 }, (_, i) => journal.append('t', Buffer.from(String(i))));
    await journal.close();
    assert.equal((await Promise.all(appends)).length, 50);
    await assert.rejects(journal.append('t', Buffer.from('late')), /closed/);
  });

  it('continues sequence numbers across close and open, also when every record was settled', async () => {
    const dir = tempDir('journal');
    let journal = await SyncJournal.open(dir, { segmentBytes: 1024 });
    await appendMany(journal, 100, 4);
    await journal.close();
    journal = await SyncJournal.open(dir, { segmentBytes: 1024 });
    assert.equal(journal.lastSeq, 100);
    assert.equal(await journal.append('t', Buffer.from('x')), 101);
    for (let seq = 1; seq <= 101; seq++) journal.settle(seq);
    await journal.close();

    journal = await SyncJournal.open(dir, { segmentBytes: 1024 });
    assert.equal(journal.lowWater, 101);
    assert.equal(journal.pendingCount(), 0);
    assert.equal(await journal.append('t', Buffer.from('y')), 102);
    await journal.close();
  });

  it('does not return settled records again after a reopen, and still returns the unsettled ones', async () => {
    const dir = tempDir('journal');
    let journal = await SyncJournal.open(dir);
    await appendMany(journal, 10, 1);
    for (const seq of [1, 2, 3, 7]) journal.settle(seq);
    await journal.flushCheckpoint();
    const checkpoint = JSON.parse(fs.readFileSync(path.join(dir, 'checkpoint.json'), 'utf8'));
    assert.deepEqual(checkpoint, { version: 1, lowWater: 3, settled: [7] });
    journal.settle(9); // persisted by close
    await journal.close();

    journal = await SyncJournal.open(dir);
    assert.equal(journal.lowWater, 3);
    assert.equal(journal.pendingCount(), 5);
    assert.deepEqual((await journal.readUnsettled(0, 100)).map((r) => r.seq), [4, 5, 6, 8, 10]);
    await journal.close();
  });

  it('lets two readers take turns on one segment without reading it again at every turn', async () => {
    const dir = tempDir('journal');
    const journal = await SyncJournal.open(dir);
    const payload = Buffer.from(JSON.stringify({ key: 'P-0000', status: 'approved', pad: 'x'.repeat(60) }));
    const records = 60_000;
    for (let i = 0; i < records; i += 5000) await Promise.all(Array.from({ length: 5000 }, () => journal.append('hms/permits', payload)));
    assert.equal(segmentFiles(dir).length, 1);
    const segmentBytes = fs.statSync(lastSegment(dir)).size;
    // One reader from the start, one from the middle, a page each in turn (as the pump and a held
    // flush's scan, or a retry's re-read, do); the second one's first page reads up to the middle once.
    const before = journal.stats().bytesRead;
    let behind = 0;
    let ahead = records / 2;
    const turns = 40;
    for (let turn = 0; turn < turns; turn++) {
      const first = await journal.readUnsettled(behind, 100);
      assert.equal(first[0].seq, behind + 1);
      behind = first[first.length - 1].seq;
      const second = await journal.readUnsettled(ahead, 100);
      assert.equal(second[0].seq, ahead + 1);
      ahead = second[second.length - 1].seq;
    }
    const read = journal.stats().bytesRead - before;
    // Each turn reads at most a chunk (256 KiB) past the nearest note (1,024 records) before its
    // page; reading back from the segment's start each turn would be about 2 x 40 x 3.6 MB.
    const frameBytes = segmentBytes / records;
    const bound = segmentBytes + 2 * turns * (256 * 1024 + 1024 * frameBytes + 100 * frameBytes);
    assert.ok(read <= bound, `read ${(read / 1e6).toFixed(1)} MB for ${turns} turns, at most ${(bound / 1e6).toFixed(1)} MB expected`);
    await journal.close();
  });

  it('refuses to hand out a record damaged on disk after it was written, naming the file and byte', async () => {
    // Records read from disk (more than memory keeps): most come from the cursor's buffer, where a
    // frame is checked without reading the file again, the rest after a read.
    const frameOffsets = (file: string): number[] => {
      const bytes = fs.readFileSync(file);
      const offsets: number[] = [];
      // Up to the records' end: an open journal's segment goes on with zeros (written ahead).
      for (let at = 0; at + 8 <= bytes.length && bytes.readUInt32LE(at) > 0; at += 8 + bytes.readUInt32LE(at)) offsets.push(at);
      return offsets;
    };
    const damaged = async (damage: (file: string, frameAt: number) => void, expected: RegExp) => {
      const dir = tempDir('journal');
      const journal = await SyncJournal.open(dir);
      for (let i = 0; i < 5000; i += 500) {
        await Promise.all(Array.from({ length: 500 }, (_, k) => journal.append('t/x', Buffer.from(`{"i":${i + k}}`))));
      }
      const file = lastSegment(dir);
      const frameAt = frameOffsets(file)[9]; // seq 10
      damage(file, frameAt);
      await assert.rejects(journal.readUnsettled(0, 1000), (err: Error) => {
        assert.match(err.message, /^journal corrupt: .*seg-\d{16}\.log at byte \d+: /);
        assert.match(err.message, expected);
        assert.match(err.message, new RegExp(`at byte ${frameAt}:`));
        return true;
      });
      // What comes before the damage is still read (a page that stops short of it).
      assert.deepEqual((await journal.readUnsettled(0, 9)).map((r) => r.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
      await journal.close();
    };
    const patch = (file: string, at: number, bytes: Buffer) => {
      const fd = fs.openSync(file, 'r+');
      fs.writeSync(fd, bytes, 0, bytes.length, at);
      fs.closeSync(fd);
    };
    // A flipped payload byte: the checksum no longer matches.
    await damaged((file, at) => {
      const frame = fs.readFileSync(file).subarray(at, at + 8 + fs.readFileSync(file).readUInt32LE(at));
      patch(file, at + frame.length - 2, Buffer.from([frame[frame.length - 2] ^ 0x01]));
    }, /checksum mismatch/);
    // A length no record has.
    await damaged((file, at) => patch(file, at, Buffer.from([0xff, 0xff, 0xff, 0x7f])), /implausible record length/);
    // Another record's seq where seq 10 belongs.
    await damaged((file, at) => {
      const seq = Buffer.alloc(8);
      seq.writeDoubleLE(11);
      patch(file, at + 8, seq);
    }, /found seq 11 where 10 belongs/);
  });

  it('truncates garbage after the last record on open', async () => {
    const dir = tempDir('journal');
    let journal = await SyncJournal.open(dir);
    await appendMany(journal, 3, 1);
    await journal.close();
    const file = lastSegment(dir);
    const intactSize = fs.statSync(file).size;
    // A plausible frame header with a wrong checksum, then noise.
    const garbage = Buffer.concat([Buffer.from([40, 0, 0, 0, 1, 2, 3, 4]), Buffer.alloc(40, 0xab)]);
    fs.appendFileSync(file, garbage);

    journal = await SyncJournal.open(dir);
    assert.equal(fs.statSync(file).size, intactSize);
    assert.equal(journal.lastSeq, 3);
    assert.deepEqual((await journal.readUnsettled(0, 10)).map((r) => r.payload.toString()), ['event-0', 'event-1', 'event-2']);
    assert.equal(await journal.append('t', Buffer.from('new')), 4);
    await journal.close();

    // An absurd length prefix (as left by a torn header) is cut as well.
    fs.appendFileSync(file, Buffer.from([0xff, 0xff, 0xff, 0x7f, 0, 0]));
    journal = await SyncJournal.open(dir);
    assert.deepEqual((await journal.readUnsettled(0, 10)).map((r) => r.seq), [1, 2, 3, 4]);
    await journal.close();
  });

  it('truncates a last record cut in half and gives its seq to the next append', async () => {
    const dir = tempDir('journal');
    let journal = await SyncJournal.open(dir);
    await appendMany(journal, 3, 1);
    await journal.close();
    const file = lastSegment(dir);
    fs.truncateSync(file, fs.statSync(file).size - 5);

    journal = await SyncJournal.open(dir);
    assert.equal(journal.lastSeq, 2);
    assert.deepEqual((await journal.readUnsettled(0, 10)).map((r) => r.seq), [1, 2]);
    assert.equal(await journal.append('t', Buffer.from('replacement')), 3);
    await journal.close();

    journal = await SyncJournal.open(dir);
    assert.deepEqual((await journal.readUnsettled(0, 10)).map((r) => r.payload.toString()), ['event-0', 'event-1', 'replacement']);
    await journal.close();
  });

  // Where writes are synced in place (O_DSYNC: Linux, macOS), the active segment is zero-filled ahead of its records.
  const zeroFills = fs.constants.O_DSYNC !== undefined;
  const zeroFilled = (file: string) => waitFor('the segment zero-filled ahead of its records', () => fs.statSync(file).size >= 1024 * 1024, { timeoutMs: 10_000, intervalMs: 20 });

  it('reads records written into the zero-filled tail after a read that reached the end, and leaves the file ending with its last record', async () => {
    const dir = tempDir('journal');
    const journal = await SyncJournal.open(dir);
    const file = lastSegment(dir);
    const payloadOf = (seq: number) => `{"seq":${seq}}`;
    for (let seq = 1; seq <= 3; seq++) await journal.append('t', Buffer.from(payloadOf(seq)));
    if (zeroFills) await zeroFilled(file);
    // Once from memory, then from the file, to the records' end (a reader must stop there, not buffer the zeros after it)...
    await journal.readUnsettled(0, 10);
    assert.deepEqual((await journal.readUnsettled(0, 10)).map((r) => r.seq), [1, 2, 3]);
    // ...so that records written over those zeros are read from the file as written.
    for (let seq = 4; seq <= 6; seq++) await journal.append('t', Buffer.from(payloadOf(seq)));
    assert.deepEqual((await journal.readUnsettled(3, 10)).map((r) => r.payload.toString()), [4, 5, 6].map(payloadOf));
    assert.deepEqual((await journal.readUnsettled(3, 10)).map((r) => r.payload.toString()), [4, 5, 6].map(payloadOf), 'read again, from the file');
    await journal.close();
    const bytes = fs.readFileSync(file);
    assert.ok(bytes.subarray(bytes.length - payloadOf(6).length).equals(Buffer.from(payloadOf(6))), 'closed, the file ends with its last record');
  });

  it('recovers a segment still zero-filled past its last record (a crash) and appends after that record', async () => {
    const dir = tempDir('journal');
    const journal = await SyncJournal.open(dir);
    await appendMany(journal, 5, 1);
    if (zeroFills) await zeroFilled(lastSegment(dir));
    // The files as a crash would leave them: the last segment's zeros still there.
    const crashed = tempDir('journal-crashed');
    fs.cpSync(dir, crashed, { recursive: true });
    await journal.close();
    if (zeroFills) assert.ok(fs.statSync(lastSegment(crashed)).size >= 1024 * 1024);

    let reopened = await SyncJournal.open(crashed);
    assert.equal(reopened.lastSeq, 5);
    assert.equal(await reopened.append('t', Buffer.from('after the crash')), 6);
    const expected = ['event-0', 'event-1', 'event-2', 'event-3', 'event-4', 'after the crash'];
    assert.deepEqual((await readAll(reopened)).map((r) => r.payload.toString()), expected);
    await reopened.close();
    reopened = await SyncJournal.open(crashed);
    assert.deepEqual((await readAll(reopened)).map((r) => r.payload.toString()), expected);
    assert.equal(await reopened.append('t', Buffer.from('and after a reopen')), 7);
    await reopened.close();
  });

  it('fails the journal when a zero-fill write meets an I/O error, as a failed record write does', { skip: !zeroFills && 'no O_DSYNC here: segments are not zero-filled' }, async () => {
    // An O_DSYNC write reports the file's write-back errors, once: the fill's EIO may have been a record's.
    // No disk here fails on cue: the fill's write is failed in fs itself (the module object, which the journal calls through).
    const nodeFs = require('node:fs') as { write: unknown };
    const write = nodeFs.write;
    let failNextFill = true;
    nodeFs.write = function (this: unknown, fd: number, buf: Buffer, offset: number, length: number, position: unknown, cb: (err: Error | null, n?: number) => void) {
      if (failNextFill && typeof position === 'number' && length >= 64 * 1024 && buf.readUInt32LE(offset) === 0) {
        failNextFill = false;
        return setImmediate(() => cb(Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' })));
      }
      return (write as Function).call(nodeFs, fd, buf, offset, length, position, cb);
    };
    const journal = await SyncJournal.open(tempDir('journal'));
    try {
      assert.equal(await journal.append('t', Buffer.from('first')), 1); // its commit starts the fill
      await waitFor('the fill to fail', () => !failNextFill, { timeoutMs: 5_000, intervalMs: 5 });
      await new Promise((resolve) => setImmediate(resolve));
      await assert.rejects(journal.append('t', Buffer.from('second')), /a synced write failed \(EIO: i\/o error, write\); reopen the journal/);
    } finally {
      nodeFs.write = write;
      await journal.close().catch(() => undefined);
    }
  });

  it('keeps every append that resolved when the process is killed with SIGKILL, twice', async () => {
    const dir = tempDir('journal');
    const script = path.join(tempDir('journal-child'), 'appender.js');
    fs.writeFileSync(
      script,
      `const { SyncJournal } = require(${JSON.stringify(JOURNAL_MODULE)});
(async () => {
  const journal = await SyncJournal.open(process.argv[2], { segmentBytes: 32 * 1024 });
  process.stdout.write('ready\\n');
  const writer = async (w) => {
    for (let i = 0; ; i++) {
      const payload = 'w' + w + '-' + i + '-' + 'x'.repeat(i % 50);
      const seq = await journal.append('hms/t/' + w, Buffer.from(payload));
      process.stdout.write(seq + ' ' + payload + '\\n'); // synchronous on a pipe
    }
  };
  for (let w = 0; w < 16; w++) writer(w);
})();
`,
    );

    const reported = new Map<number, string>();
    for (let round = 0; round < 2; round++) {
      const child = spawn(process.execPath, [script, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          if (!text.includes('ready\n') && (text + chunk).includes('ready\n')) setTimeout(() => child.kill('SIGKILL'), 300);
          text += chunk;
        });
        child.on('error', reject);
        child.on('exit', () => resolve());
      });
      const complete = text.slice(0, text.lastIndexOf('\n'));
      for (const line of complete.split('\n')) {
        if (line === 'ready') continue;
        const space = line.indexOf(' ');
        const seq = Number(line.slice(0, space));
        assert.equal(reported.has(seq), false, `seq ${seq} given twice`);
        reported.set(seq, line.slice(space + 1));
      }
    }

    const journal = await SyncJournal.open(dir, { segmentBytes: 32 * 1024 });
    const onDisk = new Map((await readAll(journal)).map((r) => [r.seq, r.payload.toString()]));
    for (const [seq, payload] of reported) assert.equal(onDisk.get(seq), payload, `seq ${seq}`);
    assert.ok(segmentFiles(dir).length > 1, 'the child should have rolled over segments');
    assert.ok((await journal.append('t', Buffer.from('after'))) > Math.max(...reported.keys()));
    await journal.close();
  });

  it('rolls segments over and deletes the ones whose records are all settled', async () => {
    const dir = tempDir('journal');
    let journal = await SyncJournal.open(dir, { segmentBytes: 4096 });
    await appendMany(journal, 600, 1);
    const segmentsBefore = segmentFiles(dir).length;
    const bytesBefore = journal.diskBytes();
    assert.ok(segmentsBefore >= 5, `${segmentsBefore} segments`);

    // Seq 1 unsettled holds the low-water mark, so nothing can go yet.
    for (let seq = 2; seq <= 590; seq++) journal.settle(seq);
    await journal.flushCheckpoint();
    assert.equal(segmentFiles(dir).length, segmentsBefore);

    journal.settle(1);
    await journal.flushCheckpoint();
    assert.ok(segmentFiles(dir).length <= 2, `${segmentFiles(dir).length} segments left`);
    assert.ok(journal.diskBytes() < bytesBefore / 2, `${journal.diskBytes()} of ${bytesBefore} bytes left`);
    const expected = Array.from({ length: 10 }, (_, i) => 591 + i);
    assert.deepEqual((await readAll(journal)).map((r) => r.seq), expected);
    await journal.close();

    journal = await SyncJournal.open(dir, { segmentBytes: 4096 });
    assert.deepEqual((await readAll(journal)).map((r) => r.seq), expected);
    assert.equal(await journal.append('t', Buffer.from('x')), 601);
    await journal.close();
  });

  it('keeps memory flat under a 200k backlog and pages through all of it once, in order', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const journal = await SyncJournal.open(tempDir('journal'), { segmentBytes: 1024 * 1024 });
    gc();
    const before = process.memoryUsage().heapUsed;
    await appendMany(journal, 200_000, 256);
    gc();
    const growth = process.memoryUsage().heapUsed - before;
    assert.equal(journal.pendingCount(), 200_000);
    assert.ok(growth < 8 * 1024 * 1024, `heap grew ${(growth / 1048576).toFixed(1)} MB for 200k pending records`);

    let expected = 1;
    for (let after = 0; ; ) {
      const page = await journal.readUnsettled(after, 1000);
      if (page.length === 0) break;
      for (const record of page) assert.equal(record.seq, expected++);
      after = page[page.length - 1].seq;
    }
    assert.equal(expected - 1, 200_000);
    await journal.close();
  });

  it('computes the standard CRC32, the same as zlib where Node has it', () => {
    assert.equal(crc32Table(Buffer.from('123456789')), 0xcbf43926);
    const zlibCrc = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;
    const sample = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 31) & 0xff));
    if (zlibCrc) assert.equal(crc32Table(sample), zlibCrc(sample));
  });
});
