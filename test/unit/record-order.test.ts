// The order a connector keeps within a record while one of its events waits to come again:
// pure bookkeeping (RecordOrder) and the batch it lets through (takeBatch).
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { RecordOrder } from '../../nodes/core/queue/record-order';
import { takeBatch } from '../../nodes/shared/connector-node';

/** A queued write of record `key`'s event `seq`, as the connector node keeps it. */
const write = (key: string, seq: number) => ({ item: { payload: {}, exs: { job: 'J', seq, attempt: 1, receivedAt: 0, record: { keyColumn: 'K', keyValue: key, row: {} } } }, arrival: {} }) as unknown as Parameters<typeof takeBatch>[0][number];
const seqs = (writes: Array<{ item: { exs: { seq: number } } }>) => writes.map((w) => w.item.exs.seq);

describe('RecordOrder', () => {
  it('waits for a record\'s earliest failed event, and forgets each once released', () => {
    const order = new RecordOrder();
    order.hold('r', 5);
    order.hold('r', 3);
    order.hold('r', 3);
    assert.equal(order.waitsFor('r'), 3);
    assert.equal(order.waitsFor('other'), undefined);
    assert.equal(order.release(3), true);
    assert.equal(order.waitsFor('r'), 5);
    assert.equal(order.release(3), false, 'released once');
    assert.equal(order.release(5), true);
    assert.equal(order.waitsFor('r'), undefined);
    assert.equal(order.size, 0);
  });
});

describe('takeBatch', () => {
  it('holds a record\'s later events behind the failed one, lets that one and earlier ones through, and others go on', () => {
    const order = new RecordOrder();
    order.hold('r', 2); // r's event 2 failed and will come again
    const queue = [write('r', 3), write('s', 4), write('r', 1)];
    // Event 1 of r is earlier than the one r waits for: it goes (it would otherwise wait for good).
    assert.deepEqual(seqs(takeBatch(queue, new Set(), order)), [4, 1]);
    assert.deepEqual(seqs(queue), [3]);
    assert.equal(order.waitsFor('r'), 2);
    // Event 2 comes again: it goes, and r waits no more; event 3 follows in a later batch (r is busy in this one).
    queue.push(write('r', 2));
    assert.deepEqual(seqs(takeBatch(queue, new Set(), order)), [2]);
    assert.equal(order.waitsFor('r'), undefined);
    assert.deepEqual(seqs(takeBatch(queue, new Set(), order)), [3]);
  });

  it('lets a record go on once the event it waited for is released another way (another copy of it settled)', () => {
    const order = new RecordOrder();
    order.hold('r', 2);
    const queue = [write('r', 3)];
    assert.deepEqual(seqs(takeBatch(queue, new Set(), order)), []);
    order.release(2);
    assert.deepEqual(seqs(takeBatch(queue, new Set(), order)), [3]);
  });
});
