// The dead-letter store on disk: letters listed once per event, replayed ones left out.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { DeadLetterStore, type DeadLetter } from '../../nodes/core/queue/dead-letters';
import { tempDir } from '../support/services';

const letter = (id: number, event: string): DeadLetter => ({ id, job: 'J', topic: 't', event, error: 'no key', attempts: 1, firstReceivedAt: '2026-03-01T10:00:00.000Z', deadAt: '2026-03-01T10:00:01.000Z' });

describe('DeadLetterStore', () => {
  it('lists a letter stored twice for the same event once (its change-log entry failed, and the event came again after a restart)', async () => {
    const store = new DeadLetterStore(tempDir('letters'));
    await store.add(letter(1, '{"a":1}'), letter(2, '{"a":2}'));
    await store.add(letter(1, '{"a":1}'));
    // A different event under an id already used (a journal started afresh) is a letter of its own.
    await store.add(letter(2, '{"b":2}'));
    assert.deepEqual((await store.list()).map((l) => `${l.id}:${l.event}`), ['1:{"a":1}', '2:{"a":2}', '2:{"b":2}']);
    assert.equal(await store.waiting(), 3);
    await store.markReplayed([1]);
    assert.deepEqual((await store.list()).map((l) => l.id), [2, 2]);
  });
});
