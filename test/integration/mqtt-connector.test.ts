// The SMS tracker case, for real: a contract whose connector is an MQTT topic, run by
// `exs run`. HMS events go in on the job's topic; each mapped record comes out on
// sms/<key> as {"key": ..., "row": {...}}, with the change log and dead letters as for ODBC.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as mqtt from 'mqtt';
import { MQTT_URL, needService, tempDir } from '../support/services';
import { exsSync, startExsRun } from '../support/exs-process';
import { waitFor } from '../support/wait';

/** Probes publish until the flow listens, so late ones may land anywhere: checks skip this key. */
const PROBE = 'PROBE';

describe('exs run: MQTT -> Node-RED -> MQTT connector (SMS tracker)', () => {
  it('republishes each mapped record on sms/{key}, logs it, and dead-letters what cannot be mapped', { timeout: 120_000 }, async (t) => {
    if (!(await needService(t, 'mosquitto'))) return;
    const dir = tempDir('sms');
    const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
    const jobId = `SMS_${suffix}`;
    const topic = `exs-test/${suffix}/permits`;
    const smsPrefix = `exs-test/${suffix}/sms/`;
    const changelogTopic = `exs-test/${suffix}/changelog`;
    const deadLetterTopic = `exs/${jobId}/dead_letter`;

    // The shipped example's mapping (examples/sms_tracker.sync.yaml) on topics of this run's own.
    const contractFile = path.join(dir, `${jobId}.sync.yaml`);
    fs.writeFileSync(contractFile, `id: ${jobId}
source_topic: permits.status
mqtt_topic: ${topic}
destination: SMS_Tracker
connector: ${MQTT_URL}/${smsPrefix}{key}
key: HMS:permit_id -> SMS:PERMIT_ID
mapping:
  - HMS:status             -> SMS:STATUS_CODE | map(Approved=APPR, Pending=PEND, Rejected=REJD, *=OTHR)
  - HMS:applicant.name     -> SMS:APPLICANT | trim | upper
  - HMS:applicant.phone    -> SMS:PHONE | trim
  - HMS:updated_at         -> SMS:CHANGED_AT | timestamp(YYYY-MM-DD HH:mm)
broker: ${MQTT_URL}
changelog: ${changelogTopic}
# Mapping failures are data failures, retried with backoff by default: dead-letter at once here.
retry_policy:
  max_attempts: 1
`);
    const validated = exsSync(['validate', contractFile]);
    assert.equal(validated.status, 0, validated.stderr);

    const sms: Array<{ topic: string; payload: any }> = [];
    const changelog: any[] = [];
    const deadLetters: any[] = [];
    const client = await mqtt.connectAsync(MQTT_URL);
    t.after(() => client.endAsync());
    await client.subscribeAsync([`${smsPrefix}+`, changelogTopic, deadLetterTopic], { qos: 1 });
    client.on('message', (messageTopic, payload) => {
      const parsed = JSON.parse(payload.toString());
      if (messageTopic.startsWith(smsPrefix)) sms.push({ topic: messageTopic, payload: parsed });
      else if (messageTopic === changelogTopic) changelog.push(parsed);
      else deadLetters.push(parsed);
    });

    const run = await startExsRun([contractFile], path.join(dir, 'userdir'));
    t.after(() => run.stop());
    const publish = (event: unknown) => client.publishAsync(topic, typeof event === 'string' ? event : JSON.stringify(event), { qos: 1 });

    // The flow's subscription is not persistent (clean session): probe until it listens.
    await waitFor('the flow to subscribe', () => {
      if (changelog.some((e) => e.key === PROBE)) return true;
      void publish({ permit_id: PROBE, status: 'Approved' });
      return undefined;
    });
    const records = () => sms.filter((m) => m.payload.key !== PROBE);
    const entries = () => changelog.filter((e) => e.key !== PROBE);

    await publish({
      permit_id: 'P-1',
      status: 'Approved',
      applicant: { name: '  Ada Lovelace ', phone: ' +44 20 7946 0000 ' },
      updated_at: '2026-03-01T12:30:45.123+02:00',
    });
    await publish({ permit_id: 'P/2', status: 'Withdrawn', applicant: { name: 'grace hopper' } });
    await publish('permit P-9 approved');
    await publish({ permit_id: 'P-7', status: 'Approved', updated_at: 'yesterday' });
    await waitFor('four change-log entries', () => (entries().length >= 4 ? true : undefined));
    await waitFor('two SMS records', () => (records().length >= 2 ? true : undefined));
    await waitFor('two dead letters', () => (deadLetters.length >= 2 ? true : undefined));

    // Each record on its own key's topic; '/' in a key cannot split the topic.
    const byTopic = Object.fromEntries(records().map((m) => [m.topic.slice(smsPrefix.length), m.payload]));
    assert.deepEqual(Object.keys(byTopic).sort(), ['P-1', 'P_2']);
    assert.deepEqual(byTopic['P-1'], {
      key: 'P-1',
      row: { PERMIT_ID: 'P-1', STATUS_CODE: 'APPR', APPLICANT: 'ADA LOVELACE', PHONE: '+44 20 7946 0000', CHANGED_AT: '2026-03-01 10:30' },
    });
    // Fields the event leaves out are left out of the record, never sent as null.
    assert.deepEqual(byTopic.P_2, { key: 'P/2', row: { PERMIT_ID: 'P/2', STATUS_CODE: 'OTHR', APPLICANT: 'GRACE HOPPER' } });

    const outcomes = entries().map((e) => `${e.key ?? '-'}:${e.outcome}`).sort();
    assert.deepEqual(outcomes, ['-:dead_letter', 'P-1:applied', 'P-7:dead_letter', 'P/2:applied']);
    const applied = entries().find((e) => e.key === 'P-1');
    assert.equal(applied.job, jobId);
    assert.equal(applied.dest_row, 'OK');
    assert.deepEqual(applied.after, byTopic['P-1'].row, 'the change log reports the record as published');

    // The malformed events never reach the tracker, and the dead letters say why.
    assert.equal(records().length, 2, 'nothing published for the malformed events');
    const errors = deadLetters.map((d) => String(d.error));
    assert.equal(deadLetters.length, 2);
    assert.ok(errors.some((e) => /not JSON/.test(e)), `one dead letter says the payload is not JSON: ${errors.join(' | ')}`);
    assert.ok(errors.some((e) => /updated_at/.test(e) && /not a timestamp/.test(e)), `one names the bad timestamp: ${errors.join(' | ')}`);
    assert.ok(deadLetters.every((d) => d.job === jobId));

    const log = exsSync(['log', jobId, '--last', '20', '--url', run.adminUrl]);
    assert.equal(log.status, 0, log.stderr);
    assert.match(log.stdout, /\sP-1\s+applied \(OK\)/);
    assert.match(log.stdout, /\sP-7\s+dead_letter/);

    assert.equal(await run.stop(), 0, 'SIGTERM stops exs run cleanly');
    assert.doesNotMatch(run.output(), /\[error\]/, 'the generated flow loads and runs without errors');
  });
});
