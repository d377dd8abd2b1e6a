// The spine, end to end and for real: a sync.yaml run by `exs run` (an embedded Node-RED),
// HMS events published to Mosquitto, rows landing in PostgreSQL, MariaDB and SQLite through
// their ODBC drivers, change-log entries stored and published, `exs log` showing them.
import { describe, it, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as mqtt from 'mqtt';
import { MQTT_URL, MARIADB_CONN, PG_CONN, needService, sqlQuery, sqliteConn, tempDir, type ServiceName } from '../support/services';
import { exsSync, startExsRun } from '../support/exs-process';
import { waitFor } from '../support/wait';

interface Destination {
  name: string;
  service: ServiceName;
  connection: (dir: string) => string;
  timestampType: string;
}

// Both event times carry microseconds: a naive bind truncates them to whole seconds.
const FIRST_TIME = '2026-03-01T10:00:00.123456Z';
const SECOND_TIME = '2026-03-01T10:00:01.000001Z';

/** The probe's key: probes publish until the flow listens, so late ones may land anywhere. */
const PROBE = 'PROBE';

/** What the five events after the first two come to, sorted. */
const LATER_OUTCOMES = ['-:dead_letter', '-:dead_letter', 'P-1:applied', 'P-3:applied', 'P-7:dead_letter'];

const destinations: Destination[] = [
  { name: 'PostgreSQL', service: 'postgres', connection: () => PG_CONN, timestampType: 'TIMESTAMP(6)' },
  { name: 'MariaDB', service: 'mariadb', connection: () => MARIADB_CONN, timestampType: 'DATETIME(6)' },
  // SQLite has no timestamp type; a column declared TIMESTAMP gets EXS's canonical UTC text.
  { name: 'SQLite', service: 'sqlite-odbc', connection: (dir) => sqliteConn(path.join(dir, 'mainframe.db')), timestampType: 'TIMESTAMP' },
];

async function runScenario(t: TestContext, destination: Destination): Promise<void> {
  if (!(await needService(t, 'mosquitto'))) return;
  if (!(await needService(t, destination.service))) return;
  const dir = tempDir('e2e');
  const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  const table = `EXS_E2E_${suffix}`.toUpperCase();
  const jobId = `E2E_${destination.service.replace(/\W/g, '')}_${suffix}`;
  const topic = `exs-test/${suffix}/permits`;
  const changelogTopic = `exs-test/${suffix}/changelog`;
  const connection = destination.connection(dir);
  // Unquoted upper-case DDL, as a legacy schema would have it: PostgreSQL folds it to lower case.
  await sqlQuery(connection, `CREATE TABLE ${table} (PERMIT_ID VARCHAR(20) PRIMARY KEY, PERMIT_STAT VARCHAR(4), LAST_CHG_TS ${destination.timestampType})`);
  t.after(() => sqlQuery(connection, `DROP TABLE ${table}`).catch(() => undefined));

  const contractFile = path.join(dir, `${jobId}.sync.yaml`);
  fs.writeFileSync(contractFile, `id: ${jobId}
source_topic: permits.status
mqtt_topic: ${topic}
destination: ${destination.name}
connector: "odbc:${connection}"
table: ${table}
key: HMS:permit_id -> COBOL:PERMIT_ID
mapping:
  HMS:status        -> COBOL:PERMIT_STAT | map(Approved=APPR, Pending=PEND, *=OTHR)
  HMS:updated_at    -> COBOL:LAST_CHG_TS
broker: ${MQTT_URL}
changelog: ${changelogTopic}
# Mapping failures are data failures, retried with backoff by default: dead-letter at once here.
retry_policy:
  max_attempts: 1
`);
  const validated = exsSync(['validate', contractFile]);
  assert.equal(validated.status, 0, validated.stderr);

  const changelog: any[] = [];
  const deadLetters: any[] = [];
  const client = await mqtt.connectAsync(MQTT_URL);
  t.after(() => client.endAsync());
  await client.subscribeAsync([changelogTopic, `exs/${jobId}/dead_letter`], { qos: 1 });
  client.on('message', (messageTopic, payload) => {
    (messageTopic === changelogTopic ? changelog : deadLetters).push(JSON.parse(payload.toString()));
  });

  const run = await startExsRun([contractFile], path.join(dir, 'userdir'));
  t.after(() => run.stop());
  const publish = (event: unknown) => client.publishAsync(topic, typeof event === 'string' ? event : JSON.stringify(event), { qos: 1 });

  // The subscription is not persistent yet (clean session), so probe until the flow listens.
  // Probes still in flight may be logged after the events under test: every check below
  // ignores the probe's key instead of guessing how long to wait for them.
  await waitFor('the flow to subscribe', () => {
    if (changelog.some((e) => e.key === PROBE)) return true;
    void publish({ permit_id: PROBE, status: 'Approved' });
    return undefined;
  });
  const entries = () => changelog.filter((e) => e.key !== PROBE);

  await publish({ permit_id: 'P-1', status: 'Approved', updated_at: FIRST_TIME });
  await publish({ permit_id: 'P-2', status: 'Pending', updated_at: '2026-03-01T09:00:00Z' });
  await waitFor('two applied entries', () => (entries().length >= 2 ? true : undefined));
  await publish('permit P-9 approved');
  await publish({ status: 'Approved' });
  await publish({ permit_id: 'P-7', status: ['Approved'] });
  await publish({ permit_id: 'P-1', status: 'Pending', updated_at: SECOND_TIME });
  await publish({ permit_id: 'P-3', status: 'Withdrawn' });
  await waitFor('seven entries', () => (entries().length >= 7 ? true : undefined));
  await waitFor('three dead letters', () => (deadLetters.length >= 3 ? true : undefined));
  const events = entries();
  assert.equal(events.length, 7, 'exactly the seven events under test besides probes');

  const rows = await sqlQuery(connection, `SELECT PERMIT_ID, PERMIT_STAT, LAST_CHG_TS FROM ${table} ORDER BY PERMIT_ID`);
  const byId = Object.fromEntries(rows.map((r) => [String(r.PERMIT_ID ?? r.permit_id), r]));
  const status = (id: string) => byId[id]?.PERMIT_STAT ?? byId[id]?.permit_stat;
  assert.deepEqual(Object.keys(byId).sort(), ['P-1', 'P-2', 'P-3', PROBE]);
  assert.equal(status('P-1'), 'PEND');
  assert.equal(status('P-2'), 'PEND');
  assert.equal(status('P-3'), 'OTHR');

  // Events of different records are settled in parallel, so only each record's own order is
  // fixed: the first two are in before the rest is published, the rest in any order.
  const outcomes = events.map((e) => `${e.key ?? '-'}:${e.outcome}`);
  assert.deepEqual(outcomes.slice(0, 2).sort(), ['P-1:applied', 'P-2:applied']);
  assert.deepEqual(outcomes.slice(2).sort(), LATER_OUTCOMES);
  assert.equal(deadLetters.length, 3);
  const errors = deadLetters.map((d) => String(d.error));
  for (const reason of [/not JSON/, /permit_id/, /status/]) {
    assert.equal(errors.filter((e) => reason.test(e)).length, 1, `one dead letter matches ${reason}: ${errors.join(' | ')}`);
  }
  const update = events.slice(2).find((e) => e.key === 'P-1');
  assert.equal(update.before.PERMIT_STAT, 'APPR', 'the update reports the row before');
  assert.equal(update.after.PERMIT_STAT, 'PEND');

  // Sub-second timestamps survive on every dialect (psqlODBC truncates them if bound naively),
  // SQLite included: its TIMESTAMP column holds the canonical text, which sorts in time order.
  const firstWrite = events.find((e) => e.key === 'P-1' && e.outcome === 'applied');
  assert.equal(firstWrite.after.LAST_CHG_TS, '2026-03-01 10:00:00.123456', 'the change log reports the microseconds written');
  assert.equal(update.after.LAST_CHG_TS, '2026-03-01 10:00:01.000001');
  const storedTime = String(byId['P-1'].LAST_CHG_TS ?? byId['P-1'].last_chg_ts);
  assert.equal(storedTime, '2026-03-01 10:00:01.000001', 'the column holds the microseconds');

  // A late probe may sit among the newest entries: ask for more and leave the probe's lines out.
  const log = exsSync(['log', jobId, '--last', '20', '--url', run.adminUrl]);
  assert.equal(log.status, 0, log.stderr);
  const lines = log.stdout.trim().split('\n').filter((l) => !l.includes(` ${PROBE} `)).slice(-LATER_OUTCOMES.length);
  const shown = lines.map((l) => /#\d+\s+(\S+)\s+(\w+) \(/.exec(l)).map((m) => m && `${m[1]}:${m[2]}`);
  assert.deepEqual(shown.sort(), LATER_OUTCOMES, `exs log shows the newest entries:\n${log.stdout}`);
  assert.ok(lines.some((l) => /\sP-3\s+applied \(OK\)/.test(l)));

  const stored = fs.readFileSync(path.join(dir, 'userdir', 'exs', jobId, 'changelog.jsonl'), 'utf8').trim().split('\n');
  assert.ok(stored.length >= 8, 'every entry, the probe included, is stored on disk');

  assert.equal(await run.stop(), 0, 'SIGTERM stops exs run cleanly');
  assert.doesNotMatch(run.output(), /\[error\]/, 'the generated flow loads and runs without errors');
}

describe('exs run: MQTT -> Node-RED -> ODBC', () => {
  for (const destination of destinations) {
    it(`syncs HMS events into ${destination.name}`, { timeout: 120_000 }, (t) => runScenario(t, destination));
  }
});
