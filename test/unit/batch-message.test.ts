// The two message shapes EXS nodes pass between them: one event, or a batch (payload array,
// exs.batch envelopes), and the sync queue's batch setting.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { batchMessage, batchSizeOf, isBatchMessage, itemsOf, messagesFor } from '../../nodes/shared/batch-message';
import type { ExsEnvelope } from '../../nodes/core/types';

const envelope = (seq: number, topic = 'permits/status'): ExsEnvelope => ({ job: 'J', seq, attempt: 1, receivedAt: 0, topic });

describe('batch messages', () => {
  it('reads one event or a batch as the same items', () => {
    const single = { payload: { permit_id: 'P-1' }, exs: envelope(1) };
    assert.equal(isBatchMessage(single), false);
    assert.deepEqual(itemsOf(single), [{ payload: { permit_id: 'P-1' }, exs: envelope(1) }]);
    const batch = { payload: [{ permit_id: 'P-1' }, { permit_id: 'P-2' }], exs: { job: 'J', batch: [envelope(1), envelope(2)] } };
    assert.equal(isBatchMessage(batch), true);
    assert.deepEqual(itemsOf(batch).map((item) => [item.exs.seq, (item.payload as { permit_id: string }).permit_id]), [[1, 'P-1'], [2, 'P-2']]);
  });

  it('refuses a batch whose events and envelopes do not line up', () => {
    assert.throws(() => itemsOf({ payload: [{}], exs: { job: 'J', batch: [envelope(1), envelope(2)] } }), /array of 2 events/);
    assert.throws(() => itemsOf({ payload: { permit_id: 'P-1' }, exs: { job: 'J', batch: [envelope(1)] } }), /array of 1 events/);
  });

  it('answers in the shape it was given, keeping the input message\'s other properties', () => {
    const items = [{ payload: 'a', exs: envelope(1) }, { payload: 'b', exs: envelope(2) }];
    const template = { _msgid: 'm1', custom: 42 };
    const asBatch = messagesFor(template, true, items) as Record<string, any>;
    assert.deepEqual(asBatch.payload, ['a', 'b']);
    assert.deepEqual(asBatch.exs, { job: 'J', batch: [envelope(1), envelope(2)] });
    assert.equal(asBatch.custom, 42);
    assert.equal(asBatch.topic, 'permits/status', 'the topic all events share');
    const single = messagesFor(template, false, items.slice(0, 1)) as Record<string, any>;
    assert.equal(single.payload, 'a');
    assert.equal(single.exs.seq, 1);
    assert.equal((messagesFor(template, false, items) as unknown[]).length, 2);
    assert.equal(messagesFor(template, true, []), null, 'no events, no message');
    assert.equal(batchMessage({}, [{ payload: 1, exs: envelope(1, 'a') }, { payload: 2, exs: envelope(2, 'b') }]).topic, undefined, 'events of different topics share none');
  });

  it('takes the batch setting as a whole number from 1 to 1000; missing means one event per message', () => {
    assert.equal(batchSizeOf(undefined), 1);
    assert.equal(batchSizeOf(''), 1);
    assert.equal(batchSizeOf('100'), 100);
    assert.equal(batchSizeOf(0), 1);
    assert.equal(batchSizeOf(2.7), 2);
    assert.equal(batchSizeOf(50_000), 1000);
    assert.equal(batchSizeOf('many'), 1);
  });
});
