// The editor's live feed of a job: change-log entries reach the sidebar a few times a second,
// each update carrying the newest entries since the last, whatever the rate they are written at.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { feedEditor, LIVE_LOG_ENTRIES, type LiveLogUpdate } from '../../nodes/shared/editor-feed';
import type { SyncJob } from '../../nodes/core/sync-job';
import type { RED } from '../../nodes/shared/red';

/** The parts of a job the feed listens to, and a comms that records what it publishes. */
function fakes() {
  const job = Object.assign(new EventEmitter(), {
    id: 'Job_A',
    changeLog: new EventEmitter(),
    ready: Promise.resolve(),
    state: () => ({ depth: 0 }),
  });
  const published: Array<{ topic: string; data: unknown }> = [];
  const red = { comms: { publish: (topic: string, data: unknown) => published.push({ topic, data }) } } as unknown as RED;
  return { job, red, published, logUpdates: () => published.filter((p) => p.topic === 'exs/changelog/Job_A').map((p) => p.data as LiveLogUpdate) };
}

const entry = (seq: number) => ({ seq, job: 'Job_A', key: `P-${seq}`, outcome: 'applied' });
const settle = () => new Promise((resolve) => setTimeout(resolve, 400));

describe('the editor feed', () => {
  it('sends a flood of entries as one update with the newest ones, counting those left out', async () => {
    const { job, red, logUpdates } = fakes();
    const stop = feedEditor(red, job as unknown as SyncJob);
    for (let seq = 1; seq <= 1000; seq++) job.changeLog.emit('entry', entry(seq));
    assert.equal(logUpdates().length, 0, 'nothing is sent per entry');
    await settle();
    const updates = logUpdates();
    assert.equal(updates.length, 1);
    assert.deepEqual(updates[0].entries.map((e) => e.seq), Array.from({ length: LIVE_LOG_ENTRIES }, (_, i) => 951 + i));
    assert.equal(updates[0].skipped, 950);
    assert.equal(updates[0].attention, false);
    stop();
  });

  it('flags an update when a left-out entry changed the dead letters, so the sidebar reloads them', async () => {
    const { job, red, logUpdates } = fakes();
    const stop = feedEditor(red, job as unknown as SyncJob);
    job.changeLog.emit('entry', { ...entry(1), outcome: 'dead_letter' });
    for (let seq = 2; seq <= 200; seq++) job.changeLog.emit('entry', entry(seq));
    await settle();
    const [update] = logUpdates();
    assert.equal(update.entries.some((e) => e.outcome === 'dead_letter'), false, 'the dead letter itself was left out');
    assert.equal(update.attention, true);
    stop();
  });

  it('sends a lone entry within a fraction of a second, and nothing after it stops', async () => {
    const { job, red, logUpdates } = fakes();
    const stop = feedEditor(red, job as unknown as SyncJob);
    job.changeLog.emit('entry', entry(7));
    await settle();
    assert.deepEqual(logUpdates(), [{ job: 'Job_A', entries: [entry(7)], skipped: 0, attention: false }]);
    job.changeLog.emit('entry', entry(8));
    stop();
    await settle();
    assert.equal(logUpdates().length, 1, 'an entry pending at stop is not sent');
  });
});
