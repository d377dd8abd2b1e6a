// An exs-job node's properties as the runtime reads them: defaults for what a flow saved before a
// setting existed lacks, `${VAR}` from the environment, and a warning for a value it cannot use.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { jobSettingsFromConfig, type ExsJobConfig } from '../../nodes/shared/job-node';

const CONFIG: ExsJobConfig = {
  id: 'n1', jobId: 'Job_A', source_topic: 'permits.status', destination: 'D', schedule: 'realtime', conflict_rule: 'HMS_WINS',
  max_attempts: 5, backoff_seconds: 30, dead_letter: '', changelog: '',
};

function settingsOf(config: Partial<ExsJobConfig>) {
  const warnings: string[] = [];
  const settings = jobSettingsFromConfig({ ...CONFIG, ...config }, (problem) => warnings.push(problem));
  return { settings, warnings };
}

describe('jobSettingsFromConfig', () => {
  it('publishes per entry when a flow saved before changelog_feed lacks it', () => {
    const { settings, warnings } = settingsOf({});
    assert.equal(settings.changelog_feed, 'entry');
    assert.deepEqual(warnings, []);
    assert.equal(settingsOf({ changelog_feed: '' }).settings.changelog_feed, 'entry');
  });

  it('takes batch, also from an environment variable', () => {
    assert.equal(settingsOf({ changelog_feed: 'batch' }).settings.changelog_feed, 'batch');
    process.env.EXS_TEST_FEED = 'batch';
    try {
      assert.deepEqual(settingsOf({ changelog_feed: '${EXS_TEST_FEED}' }).warnings, []);
      assert.equal(settingsOf({ changelog_feed: '${EXS_TEST_FEED}' }).settings.changelog_feed, 'batch');
    } finally {
      delete process.env.EXS_TEST_FEED;
    }
  });

  it('warns about a value it does not know, and publishes per entry', () => {
    const { settings, warnings } = settingsOf({ changelog_feed: 'Batch' });
    assert.equal(settings.changelog_feed, 'entry');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /changelog_feed 'Batch' is neither 'entry' nor 'batch'/);
  });

  it('writes every event when a flow saved before backlog lacks it; takes newest_per_record; warns about a value it does not know', () => {
    assert.equal(settingsOf({}).settings.backlog, 'every_event');
    assert.equal(settingsOf({ backlog: '' }).settings.backlog, 'every_event');
    assert.equal(settingsOf({ backlog: 'newest_per_record' }).settings.backlog, 'newest_per_record');
    const { settings, warnings } = settingsOf({ backlog: 'newest' });
    assert.equal(settings.backlog, 'every_event');
    assert.deepEqual(warnings, ["backlog 'newest' is neither 'every_event' nor 'newest_per_record': every event is written"]);
  });
});
