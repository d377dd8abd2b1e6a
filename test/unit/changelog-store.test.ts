// The change log's file: durable appends, tail reads from the end, rotation, torn lines.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FEED_MESSAGE_MAX_CHARS, groupBySize } from '../../nodes/core/changelog-entry';
import { ChangeLogStore, changeLogPath, readChangeLogTail } from '../../nodes/core/changelog-store';
import type { ChangeLogEntry } from '../../nodes/core/types';
import { tempDir } from '../support/services';

function entry(seq: number, key = `K-${seq}`): ChangeLogEntry {
  return { time: new Date(0).toISOString(), job: 'J', seq, key, outcome: 'applied', dest_row: 'OK', attempts: 1, latency_ms: 1 };
}

describe('ChangeLogStore', () => {
  it('appends entries that a new reader sees, newest last', async () => {
    const dir = tempDir('log');
    const store = new ChangeLogStore(dir, 'J');
    await Promise.all(Array.from({ length: 250 }, (_, i) => store.append(entry(i + 1))));
    await store.close();
    const tail = await readChangeLogTail(changeLogPath(dir, 'J'), 3);
    assert.deepEqual(tail.map((e) => e.seq), [248, 249, 250]);
    assert.equal((await readChangeLogTail(changeLogPath(dir, 'J'), 1000)).length, 250);
  });

  it('answers an append with each entry\'s JSON length, as written to the file', async () => {
    const dir = tempDir('log');
    const store = new ChangeLogStore(dir, 'J');
    const entries = [entry(1), entry(2, 'K-ü'.repeat(100))];
    const lengths = await store.appendAll(entries);
    await store.close();
    assert.deepEqual(lengths, entries.map((e) => JSON.stringify(e).length));
    const lines = fs.readFileSync(changeLogPath(dir, 'J'), 'utf8').split('\n').filter(Boolean);
    assert.deepEqual(lines.map((line) => line.length), lengths);
  });

  it('reads entries larger than its read chunk', async () => {
    const dir = tempDir('log');
    const store = new ChangeLogStore(dir, 'J');
    const big = 'x'.repeat(150_000);
    await store.append(entry(1, big));
    await store.append(entry(2, big));
    await store.close();
    const tail = await readChangeLogTail(changeLogPath(dir, 'J'), 5);
    assert.deepEqual(tail.map((e) => e.seq), [1, 2]);
    assert.equal(tail[1].key, big);
  });

  it('skips a torn last line left by a crash mid-write', async () => {
    const dir = tempDir('log');
    const store = new ChangeLogStore(dir, 'J');
    await store.append(entry(1));
    await store.close();
    fs.appendFileSync(changeLogPath(dir, 'J'), '{"seq": 2, "tru');
    assert.deepEqual((await readChangeLogTail(changeLogPath(dir, 'J'), 5)).map((e) => e.seq), [1]);
  });

  it('starts the next entry on a line of its own after a torn one, so no later entry is lost', async () => {
    const dir = tempDir('log');
    const first = new ChangeLogStore(dir, 'J');
    await first.append(entry(1));
    await first.close();
    fs.appendFileSync(changeLogPath(dir, 'J'), '{"seq": 2, "tru');
    const second = new ChangeLogStore(dir, 'J');
    await second.append(entry(3));
    await second.append(entry(4));
    await second.close();
    assert.deepEqual((await readChangeLogTail(changeLogPath(dir, 'J'), 10)).map((e) => e.seq), [1, 3, 4]);
  });

  it('rotates to keep disk use bounded and still reads across the two files', async () => {
    const dir = tempDir('log');
    const store = new ChangeLogStore(dir, 'J', { maxBytes: 2000 });
    for (let i = 1; i <= 100; i++) await store.append(entry(i));
    await store.close();
    const files = fs.readdirSync(path.join(dir, 'J')).sort();
    assert.deepEqual(files, ['changelog.1.jsonl', 'changelog.jsonl']);
    const total = files.reduce((sum, f) => sum + fs.statSync(path.join(dir, 'J', f)).size, 0);
    assert.ok(total <= 2 * 2000 + 200, `disk use stays bounded (${total} bytes)`);
    const tail = await readChangeLogTail(changeLogPath(dir, 'J'), 20);
    assert.deepEqual(tail.map((e) => e.seq), Array.from({ length: 20 }, (_, i) => 81 + i));
  });

  it('does not fail entries it wrote when the rotation after them fails (they would be appended again)', async () => {
    const dir = tempDir('log');
    const store = new ChangeLogStore(dir, 'J', { maxBytes: 10 });
    // The rotation's target is a non-empty directory: every rename fails.
    fs.mkdirSync(path.join(dir, 'J', 'changelog.1.jsonl', 'x'), { recursive: true });
    const failures: Error[] = [];
    store.on('rotateFailed', (err: Error) => failures.push(err));
    await store.append(entry(7));
    await store.append(entry(8));
    await store.close();
    assert.equal(failures.length, 2, 'reported');
    const lines = fs.readFileSync(changeLogPath(dir, 'J'), 'utf8').trim().split('\n');
    assert.deepEqual(lines.map((line) => (JSON.parse(line) as ChangeLogEntry).seq), [7, 8], 'each entry once, in the file it could not rotate');
  });

  it('keeps a hostile job id inside its folder', () => {
    const file = changeLogPath('/base', '../../etc');
    assert.ok(file.startsWith('/base/'), file);
    assert.ok(!file.includes('/../'), file);
  });

  it('returns nothing for a job without a log', async () => {
    assert.deepEqual(await readChangeLogTail(path.join(tempDir('log'), 'none.jsonl'), 3), []);
  });
});

describe('groupBySize (the feed\'s messages in batch mode)', () => {
  it('keeps items in order, in runs whose JSON array (items, commas, brackets) fits the limit', () => {
    // '[' + 4 + ',' + 4 + ',' + 2 + ']' = 14 characters.
    assert.deepEqual(groupBySize(['a', 'b', 'c', 'd', 'e'], [4, 4, 2, 9, 1], 14), [['a', 'b', 'c'], ['d', 'e']]);
    assert.deepEqual(groupBySize(['a', 'b', 'c'], [4, 4, 2], 13), [['a', 'b'], ['c']]);
    assert.deepEqual(groupBySize([], [], 10), []);
  });

  it('fills each message as far as its JSON text allows, and no further', () => {
    const items = Array.from({ length: 200 }, (_, i) => 'x'.repeat((i * 37) % 23));
    const lengths = items.map((item) => JSON.stringify(item).length);
    const groups = groupBySize(items, lengths, 100);
    assert.deepEqual(groups.flat(), items);
    groups.forEach((group, i) => {
      assert.ok(JSON.stringify(group).length <= 100, `message ${i}: ${JSON.stringify(group).length} characters`);
      if (i + 1 < groups.length) assert.ok(JSON.stringify([...group, groups[i + 1][0]]).length > 100, `message ${i} could have taken one more`);
    });
  });

  it('sends an item longer than the limit alone, between its neighbours', () => {
    assert.deepEqual(groupBySize(['a', 'big', 'b'], [2, 50, 2], 10), [['a'], ['big'], ['b']]);
    assert.deepEqual(groupBySize(['big'], [50], 10), [['big']]);
  });

  it('splits a hundred entries of 100 KiB events into messages under the broker-safe limit', () => {
    const lengths = Array(100).fill(100 * 1024);
    const groups = groupBySize(Array.from({ length: 100 }, (_, i) => i), lengths);
    assert.deepEqual(groups.flat(), Array.from({ length: 100 }, (_, i) => i));
    for (const group of groups) assert.ok(group.length * 100 * 1024 <= FEED_MESSAGE_MAX_CHARS, `${group.length} entries in one message`);
    assert.equal(groups.length, 50);
  });
});

