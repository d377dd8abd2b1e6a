// The seed's three SDK calls, for real: load() a contract, start() it in an embedded
// Node-RED inside this process, publish an HMS event to Mosquitto, and peekLog() shows
// the change-log entry while the row sits in SQLite (through its ODBC driver).
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as mqtt from 'mqtt';
import { ContractError, load, peekLog, start, type ChangeLogEntry } from '../../index';
import { MQTT_URL, needService, sqlQuery, sqliteConn, tempDir } from '../support/services';
import { waitFor } from '../support/wait';

const fixtures = path.resolve(__dirname, '..', '..', '..', 'test', 'fixtures', 'contracts');

function mentionsApproved(entry: ChangeLogEntry): boolean {
  return JSON.stringify(entry.event ?? '').includes('Approved');
}

describe('SDK: load, start, peekLog', () => {
  it('load() -> start() -> an HMS event on Mosquitto -> peekLog() shows P-123 applied and SQLite holds the row', { timeout: 120_000 }, async (t) => {
    if (!(await needService(t, 'mosquitto'))) return;
    if (!(await needService(t, 'sqlite-odbc'))) return;
    const dir = tempDir('sdk');
    const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
    const jobId = `SDK_${suffix}`;
    const topic = `exs-test/${suffix}/permits`;
    const connection = sqliteConn(path.join(dir, 'mainframe.db'));
    await sqlQuery(connection, 'CREATE TABLE PERMIT_TABLE (PERMIT_ID VARCHAR(20) PRIMARY KEY, PERMIT_STAT VARCHAR(4))');

    const file = path.join(dir, 'cobol_permit.sync.yaml');
    fs.writeFileSync(file, `id: ${jobId}
source_topic: permits.status
mqtt_topic: ${topic}
destination: COBOL_Mainframe
connector: "odbc:${connection}"
table: PERMIT_TABLE
key: HMS:permit_id -> COBOL:PERMIT_ID
mapping:
  HMS:status -> COBOL:PERMIT_STAT | map(Approved=APPR, Pending=PEND, *=OTHR)
broker: ${MQTT_URL}
changelog: exs-test/${suffix}/changelog
`);

    const job = load(file);
    assert.equal(job.id, jobId);
    const running = await start(job, { port: 0, userDir: path.join(dir, 'userdir') });
    t.after(() => running.stop());
    assert.equal(running.id, jobId);

    const client = await mqtt.connectAsync(MQTT_URL);
    t.after(() => client.endAsync());
    const publish = (event: object) => client.publishAsync(topic, JSON.stringify(event), { qos: 1 });

    // The flow's subscription is not persistent (clean session): probe until it listens. The
    // probes use the same key, and one record's events are applied in order, so every probe
    // is settled before the event under test.
    await waitFor('the flow to subscribe', async () => ((await peekLog(job, { last: 1 })).length > 0 ? true : undefined), {
      onTick: () => publish({ permit_id: 'P-123', status: 'Pending' }),
      intervalMs: 200,
    });
    await client.publishAsync(topic, '{"permit_id":"P-123","status":"Approved"}', { qos: 1 });

    const entries = await waitFor('the Approved event in the change log', async () => {
      const tail = await peekLog(job, { last: 3 });
      return tail.some(mentionsApproved) ? tail : undefined;
    }, { intervalMs: 200 });
    assert.ok(entries.length >= 1 && entries.length <= 3, 'peekLog returns at most the last 3 entries');
    const newest = entries[entries.length - 1];
    assert.ok(mentionsApproved(newest), 'the event published last is the newest entry');
    assert.equal(newest.job, jobId);
    assert.equal(newest.key, 'P-123');
    assert.equal(newest.outcome, 'applied');
    assert.equal(newest.dest_row, 'OK');
    assert.equal(newest.after?.PERMIT_STAT, 'APPR');

    const rows = await sqlQuery(connection, 'SELECT PERMIT_ID, PERMIT_STAT FROM PERMIT_TABLE');
    assert.deepEqual(rows.map((r) => ({ ...r })), [{ PERMIT_ID: 'P-123', PERMIT_STAT: 'APPR' }]);

    await running.stop();
    await assert.rejects(fetch(running.url), 'the runtime no longer serves HTTP once stopped');
  });

  it('load() of a broken contract throws ContractError with FILE:LINE:COL', () => {
    const file = path.join(fixtures, 'broken-misspelt-key.sync.yaml');
    assert.throws(() => load(file), (err: unknown) => {
      assert.ok(err instanceof ContractError);
      assert.match(err.message, /^.*broken-misspelt-key\.sync\.yaml:11:1: unknown key 'conflict_rul' \(did you mean 'conflict_rule'\?\)$/m);
      assert.ok(err.message.includes(`${file}:11:1:`), 'the message names the file as given');
      return true;
    });
  });
});
