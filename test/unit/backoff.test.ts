// Retry and probe delays: pure arithmetic, with the jitter's random number given.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { MAX_OUTAGE_PROBE_SECONDS, MIN_OUTAGE_PROBE_MS, outageProbeDelayMs, retryDelayMs } from '../../nodes/core/queue/backoff';

describe('retryDelayMs', () => {
  it('doubles backoff_seconds per attempt, half fixed and half jitter, capped at 5 minutes', () => {
    assert.deepEqual([1, 2, 3].map((attempt) => retryDelayMs(attempt, 30, undefined, () => 0)), [15_000, 30_000, 60_000]);
    assert.deepEqual([1, 2, 3].map((attempt) => retryDelayMs(attempt, 30, undefined, () => 1)), [30_000, 60_000, 120_000]);
    assert.equal(retryDelayMs(20, 30, undefined, () => 1), 300_000);
    assert.equal(retryDelayMs(20, 30, undefined, () => 0), 150_000);
  });
});

describe('outageProbeDelayMs', () => {
  it('backs off like a retry but never beyond 15 s, so a returning destination is found within seconds', () => {
    assert.equal(MAX_OUTAGE_PROBE_SECONDS, 15);
    assert.deepEqual([1, 2, 3, 4, 5].map((outages) => outageProbeDelayMs(outages, 2, undefined, () => 1)), [2_000, 4_000, 8_000, 15_000, 15_000]);
    for (const outages of [1, 5, 50]) {
      assert.equal(outageProbeDelayMs(outages, 300, undefined, () => 1), 15_000);
      assert.equal(outageProbeDelayMs(outages, 300, undefined, () => 0), 7_500);
    }
  });

  it('waits at least a second, even with backoff_seconds 0', () => {
    assert.equal(outageProbeDelayMs(1, 0, undefined, () => 0), MIN_OUTAGE_PROBE_MS);
    assert.equal(outageProbeDelayMs(7, 0, undefined, () => 1), MIN_OUTAGE_PROBE_MS);
  });

  it('keeps a lower maximum backoff the runtime was given', () => {
    assert.equal(outageProbeDelayMs(10, 30, 4, () => 1), 4_000);
  });
});
