// The conflict law through the real flow: `exs run` (an embedded Node-RED), HMS events published to
// Mosquitto shuffled and duplicated, rows in PostgreSQL, MariaDB and SQLite through their ODBC
// drivers. Whatever order the events arrive in, each record ends at the model's row: the event with
// the greatest (version, content hash), versionless events being the oldest. Then a clerk's edit
// with MANUAL and `exs conflicts`, and two runtimes sharing one subscription.
import { describe, it, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as mqtt from 'mqtt';
import { compareVersions, contentHash, sourceVersionOf } from '../../nodes/core/conflict';
import { toSqlTimestampText } from '../../nodes/core/sql/dialect';
import { MQTT_URL, MARIADB_CONN, PG_CONN, needService, sqlQuery, sqliteConn, tempDir, type ServiceName } from '../support/services';
import { exsSync, startExsRun, type ExsRun } from '../support/exs-process';
import { readChangeLog, seededRandom, type LoggedEntry } from '../support/fault-harness';
import { waitFor } from '../support/wait';

interface Target {
  name: string;
  service: ServiceName;
  connection: (dir: string) => string;
  timestampType: string;
  rule: string;
}

// Without a clerk's edit every rule must end at the same rows: one rule per database here.
const TARGETS: Target[] = [
  { name: 'PostgreSQL', service: 'postgres', connection: () => PG_CONN, timestampType: 'TIMESTAMP(6)', rule: 'LAST_WRITE_WINS' },
  { name: 'MariaDB', service: 'mariadb', connection: () => MARIADB_CONN, timestampType: 'DATETIME(6)', rule: 'HMS_WINS' },
  { name: 'SQLite', service: 'sqlite-odbc', connection: (dir) => sqliteConn(path.join(dir, 'legacy.db')), timestampType: 'TIMESTAMP', rule: 'DESTINATION_WINS' },
];

const PROBE = 'PROBE';
const SEED = Number(process.env.EXS_TEST_SEED ?? 20261127);

interface Job {
  dir: string;
  jobId: string;
  table: string;
  topic: string;
  connection: string;
  contractFile: string;
}

async function makeJob(t: TestContext, target: Target, extraYaml = '', topicPrefix = ''): Promise<Job> {
  const dir = tempDir('conflict-flow');
  const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  const table = `EXS_CF_${suffix}`.toUpperCase();
  const jobId = `CF_${target.service.replace(/\W/g, '')}_${suffix}`;
  const topic = `exs-test/${suffix}/permits`;
  const connection = target.connection(dir);
  await sqlQuery(connection, `CREATE TABLE ${table} (PERMIT_ID VARCHAR(20) PRIMARY KEY, PERMIT_STAT VARCHAR(12), INSPECTOR VARCHAR(20), LAST_CHG_TS ${target.timestampType})`);
  t.after(async () => {
    await sqlQuery(connection, `DROP TABLE ${table}`).catch(() => undefined);
    await sqlQuery(connection, `DELETE FROM EXS_SYNC_STATE WHERE job_id = '${jobId}'`).catch(() => undefined);
  });
  const contractFile = path.join(dir, `${jobId}.sync.yaml`);
  fs.writeFileSync(contractFile, `id: ${jobId}
source_topic: permits.status
mqtt_topic: ${topicPrefix}${topic}
destination: ${target.name}
connector: "odbc:${connection}"
table: ${table}
key: HMS:permit_id -> COBOL:PERMIT_ID
mapping:
  HMS:status        -> COBOL:PERMIT_STAT
  HMS:inspector     -> COBOL:INSPECTOR
  HMS:updated_at    -> COBOL:LAST_CHG_TS
conflict_rule: ${target.rule}
broker: ${MQTT_URL}
# A flagged far-future event goes to the dead letter at once here, not after retries.
retry_policy:
  max_attempts: 1
${extraYaml}`);
  const validated = exsSync(['validate', contractFile]);
  assert.equal(validated.status, 0, validated.stderr);
  return { dir, jobId, table, topic, connection, contractFile };
}

interface HmsEvent {
  permit_id: string;
  status: string;
  inspector: string;
  updated_at?: string;
  /** Only to find the event again in the change log. */
  event_id: number;
}

/**
 * Per key: versions from producers whose clocks disagree by up to a second (times just before
 * now), two different events with the same time, one without a time, and sometimes one stamped a
 * day ahead, which must be flagged instead of winning.
 */
function planEvents(keys: string[], random: () => number): { events: HmsEvent[]; future: HmsEvent[] } {
  const now = Date.now();
  let n = 0;
  const events: HmsEvent[] = [];
  const future: HmsEvent[] = [];
  for (const key of keys) {
    const at = (ms: number) => new Date(now - 60_000 + ms).toISOString();
    const perKey: HmsEvent[] = [];
    for (let v = 0; v < 5; v++) {
      const skew = Math.floor(random() * 2000) - 1000;
      perKey.push({ permit_id: key, status: `S${v}`, inspector: `I${Math.floor(random() * 9)}`, updated_at: at(v * 1500 + skew), event_id: ++n });
    }
    const tiedTime = perKey[4].updated_at;
    perKey.push({ permit_id: key, status: 'TIE', inspector: 'Tied', updated_at: tiedTime, event_id: ++n });
    perKey.push({ permit_id: key, status: 'NOTIME', inspector: 'Nobody', event_id: ++n });
    if (random() < 0.5) {
      const ahead = { permit_id: key, status: 'FUTURE', inspector: 'Marty', updated_at: new Date(now + 86_400_000).toISOString(), event_id: ++n };
      perKey.push(ahead);
      future.push(ahead);
    }
    events.push(...perKey);
  }
  return { events, future };
}

/** The row the law must end at for each key: the greatest (version, hash of the mapped row). */
function modelRows(events: HmsEvent[], future: HmsEvent[]): Map<string, HmsEvent> {
  const best = new Map<string, { event: HmsEvent; version: string | null; hash: string }>();
  for (const event of events) {
    if (future.includes(event)) continue;
    const version = sourceVersionOf(event.updated_at) ?? null;
    const row: Record<string, unknown> = { PERMIT_ID: event.permit_id, PERMIT_STAT: event.status, INSPECTOR: event.inspector };
    if (event.updated_at !== undefined) row.LAST_CHG_TS = toSqlTimestampText(event.updated_at);
    const hash = contentHash(row);
    const current = best.get(event.permit_id);
    const order = current ? compareVersions(version, current.version) || (hash > current.hash ? 1 : hash < current.hash ? -1 : 0) : 1;
    if (order > 0) best.set(event.permit_id, { event, version, hash });
  }
  return new Map([...best].map(([key, { event }]) => [key, event]));
}

function shuffledDeliveries(events: HmsEvent[], random: () => number): HmsEvent[] {
  const deliveries = events.flatMap((event) => Array(1 + Math.floor(random() * 3)).fill(event) as HmsEvent[]);
  for (let i = deliveries.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [deliveries[i], deliveries[j]] = [deliveries[j], deliveries[i]];
  }
  return deliveries;
}

async function connectPublisher(t: TestContext): Promise<mqtt.MqttClient> {
  const client = await mqtt.connectAsync(MQTT_URL);
  t.after(() => client.endAsync());
  return client;
}

/** Publishes probes until every runtime has logged one: then each one's subscription is in place. */
async function untilSubscribed(client: mqtt.MqttClient, job: Job, userDirs: string[]): Promise<void> {
  await waitFor('the flows to subscribe', () => {
    const ready = userDirs.every((dir) => readChangeLog('r', dir, job.jobId).entries.some((e) => e.key === PROBE));
    if (!ready) void client.publishAsync(job.topic, JSON.stringify({ permit_id: PROBE, status: 'probe', inspector: 'probe' }), { qos: 1 });
    return ready;
  }, { timeoutMs: 60_000, intervalMs: 300 });
}

function entriesOf(job: Job, userDirs: string[]): LoggedEntry[] {
  return userDirs.flatMap((dir, i) => readChangeLog(`runtime ${i}`, dir, job.jobId).entries).filter((e) => e.key !== PROBE);
}

async function rowsOf(job: Job): Promise<Map<string, { status: string; inspector: string; ts: string | null }>> {
  const rows = await sqlQuery(job.connection, `SELECT PERMIT_ID, PERMIT_STAT, INSPECTOR, LAST_CHG_TS FROM ${job.table}`);
  const upper = rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k.toUpperCase(), v])));
  return new Map(upper.filter((r) => r.PERMIT_ID !== PROBE).map((r) => [String(r.PERMIT_ID), {
    status: String(r.PERMIT_STAT),
    inspector: String(r.INSPECTOR),
    ts: r.LAST_CHG_TS === null ? null : toSqlTimestampText(r.LAST_CHG_TS),
  }]));
}

/** Publishes the deliveries, waits until each has its change-log entry, and checks the rows against the model. */
async function publishAndCheck(t: TestContext, job: Job, userDirs: string[], keys: string[], seed: number): Promise<LoggedEntry[]> {
  const random = seededRandom(seed);
  const { events, future } = planEvents(keys, random);
  const deliveries = shuffledDeliveries(events, random);
  const client = await connectPublisher(t);
  await untilSubscribed(client, job, userDirs);
  for (const event of deliveries) await client.publishAsync(job.topic, JSON.stringify(event), { qos: 1 });

  const entries = await waitFor(`${deliveries.length} change-log entries`, () => {
    const logged = entriesOf(job, userDirs);
    return logged.length >= deliveries.length ? logged : undefined;
  }, { timeoutMs: 120_000, intervalMs: 250, detail: () => `have ${entriesOf(job, userDirs).length}` });
  assert.equal(entries.length, deliveries.length, 'one entry per delivery, no more');

  const expected = modelRows(events, future);
  const rows = await rowsOf(job);
  assert.deepEqual([...rows.keys()].sort(), [...keys].sort());
  for (const [key, event] of expected) {
    assert.deepEqual(rows.get(key), {
      status: event.status,
      inspector: event.inspector,
      ts: event.updated_at === undefined ? null : toSqlTimestampText(event.updated_at),
    }, `seed ${seed}, key ${key}`);
  }
  // Every far-future event was flagged into the dead letter, whatever its copies' order.
  for (const event of future) {
    const mine = entries.filter((e) => e.eventId === event.event_id);
    assert.ok(mine.length > 0 && mine.every((e) => e.outcome === 'dead_letter' && /in the future, beyond max_clock_skew_seconds \(300\): flagged/.test(String(e.error))),
      `far-future event of ${event.permit_id}: ${JSON.stringify(mine)}`);
  }
  const outcomes = entries.reduce<Record<string, number>>((counts, e) => ({ ...counts, [e.outcome]: (counts[e.outcome] ?? 0) + 1 }), {});
  t.diagnostic(`seed ${seed}: ${deliveries.length} deliveries of ${events.length} events, outcomes ${JSON.stringify(outcomes)}`);
  assert.ok(outcomes.skipped > 0 && outcomes.unchanged > 0 && outcomes.applied > 0, JSON.stringify(outcomes));
  return entries;
}

describe('the conflict law through exs run', () => {
  for (const [i, target] of TARGETS.entries()) {
    it(`${target.name}, ${target.rule}: shuffled, duplicated events end at the model's rows`, { timeout: 180_000 }, async (t) => {
      if (!(await needService(t, 'mosquitto'))) return;
      if (!(await needService(t, target.service))) return;
      const job = await makeJob(t, target);
      const userDir = path.join(job.dir, 'userdir');
      const run = await startExsRun([job.contractFile], userDir);
      t.after(() => run.stop());
      const keys = Array.from({ length: 8 }, (_, k) => `K-${k}`);
      await publishAndCheck(t, job, [userDir], keys, SEED + i);
    });
  }

  it('MANUAL per field: a clerk\'s edit is parked, listed and resolved with exs conflicts', { timeout: 120_000 }, async (t) => {
    if (!(await needService(t, 'mosquitto'))) return;
    if (!(await needService(t, 'postgres'))) return;
    const job = await makeJob(t, { ...TARGETS[0], rule: 'HMS_WINS' }, 'field_rules:\n  COBOL:INSPECTOR: MANUAL\n');
    const userDir = path.join(job.dir, 'userdir');
    const run: ExsRun = await startExsRun([job.contractFile], userDir);
    t.after(() => run.stop());
    const client = await connectPublisher(t);
    await untilSubscribed(client, job, [userDir]);
    const publish = (status: string, inspector: string, updatedAt: string) =>
      client.publishAsync(job.topic, JSON.stringify({ permit_id: 'P-1', status, inspector, updated_at: updatedAt }), { qos: 1 });
    const settled = (count: number) => waitFor(`${count} entries`, () => {
      const entries = entriesOf(job, [userDir]);
      return entries.length >= count ? entries : undefined;
    });

    await publish('PEND', 'Ann', '2026-03-01T10:00:10Z');
    await settled(1);
    // The clerk reassigns the inspection and holds the permit, in the database itself.
    await sqlQuery(job.connection, `UPDATE ${job.table} SET INSPECTOR = 'Carl', PERMIT_STAT = 'HOLD' WHERE PERMIT_ID = 'P-1'`);
    await publish('OLD', 'Old', '2026-03-01T10:00:05Z');
    await publish('APPR', 'Bob', '2026-03-01T10:00:30Z');
    const entries = await settled(3);
    assert.deepEqual(entries.map((e) => e.outcome), ['applied', 'skipped', 'parked']);
    assert.equal((await rowsOf(job)).get('P-1')?.status, 'APPR', 'HMS still owns the status');
    assert.equal((await rowsOf(job)).get('P-1')?.inspector, 'Carl', 'the inspector waits for a person');

    const listed = exsSync(['conflicts', job.jobId, '--url', run.adminUrl, '--json']);
    assert.equal(listed.status, 0, listed.stderr);
    const [parked] = JSON.parse(listed.stdout);
    assert.equal(parked.key, 'P-1');
    assert.deepEqual(parked.fields, { INSPECTOR: { old: 'Ann', new: 'Bob', current: 'Carl' } });

    const resolved = exsSync(['conflicts', job.jobId, '--resolve', 'P-1', '--take', 'hms', '--url', run.adminUrl]);
    assert.equal(resolved.status, 0, resolved.stderr);
    assert.equal((await rowsOf(job)).get('P-1')?.inspector, 'Bob');
    const afterResolve = await settled(4);
    assert.equal(afterResolve[3].outcome, 'resolved');
    assert.match(exsSync(['conflicts', job.jobId, '--url', run.adminUrl]).stdout, /no parked conflicts/);
  });

  it('two runtimes on a shared subscription end at the model\'s rows', { timeout: 240_000 }, async (t) => {
    if (!(await needService(t, 'mosquitto'))) return;
    if (!(await needService(t, 'postgres'))) return;
    const job = await makeJob(t, TARGETS[0], '', '$share/exs/');
    const userDirs = [path.join(job.dir, 'a'), path.join(job.dir, 'b')];
    const runs = await Promise.all(userDirs.map((dir, i) => startExsRun([job.contractFile], dir, [], { env: { EXS_INSTANCE: `cf-${i}` } })));
    t.after(() => Promise.all(runs.map((run) => run.stop())));
    const keys = Array.from({ length: 6 }, (_, k) => `S-${k}`);
    const entries = await publishAndCheck(t, job, userDirs, keys, SEED + 10);
    const byRuntime = entries.reduce<Record<string, number>>((counts, e) => ({ ...counts, [e.runtime]: (counts[e.runtime] ?? 0) + 1 }), {});
    assert.equal(Object.keys(byRuntime).length, 2, `both runtimes applied events: ${JSON.stringify(byRuntime)}`);
  });
});
