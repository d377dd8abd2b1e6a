// Issue 3's promise, shown under fire: an event the broker handed to EXS is never lost. It ends
// applied (or kept by the conflict rule) with its change-log entry, or in the dead letter with
// its reason - across kill -9 of `exs run`, a database outage of 20 s and more, and a restart of
// the broker. Duplicates may come again; LAST_WRITE_WINS makes them harmless, so the table ends
// with the last event of every key.
//
// Everything that gets broken is the test's own: a Mosquitto on its own port and data directory
// (persistence on, no queue limit), a TCP proxy in front of PostgreSQL (cut = outage), and the
// `exs run` processes. The machine's services are never stopped.
//
// A third test shows what LAST_WRITE_WINS would hide: under HMS_WINS, events that meet an outage
// and a restart must still be written in each record's order (no timestamp repairs a reordering).
//
// Size: EXS_FAULT_EVENTS (default 6000 for one runtime, 2/3 of it for two), EXS_FAULT_RATE
// (events/s, default 60), EXS_FAULT_KEYS (default 200), EXS_FAULT_SEED (printed by every run).
// EXS_KEEP_TEST_DIRS=1 keeps the change logs, journals, broker log and runtime output to look at.
import { describe, it, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as mqtt from 'mqtt';
import { needService, PG_CONN, sqlQuery, tempDir } from '../support/services';
import { exsSync } from '../support/exs-process';
import { mosquittoInstalled, startMosquitto, type MosquittoInstance } from '../support/mosquitto-instance';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';
import { sleep, waitFor } from '../support/wait';
import {
  account,
  countBy,
  idRanges,
  lastEventPerKey,
  makeLogger,
  planEvents,
  POISON_KEYS,
  POISON_REASONS,
  Publisher,
  readChangeLog,
  readDeadLetters,
  Runtime,
  seededRandom,
  sourceClientId,
  type Accounting,
  type LoggedEntry,
  type PlannedEvent,
  type StoredLetter,
} from '../support/fault-harness';

const EVENTS = Number(process.env.EXS_FAULT_EVENTS) || 6000;
const RATE = Number(process.env.EXS_FAULT_RATE) || 60;
const KEYS = Number(process.env.EXS_FAULT_KEYS) || 200;
const STATUS_WIDTH = 12;
const OUTAGE_MS = 22_000;
/** After the last publish: every event settled within this (the slowest retry after an outage is ~30 s). */
const SETTLE_TIMEOUT_MS = 240_000;

const PG_PORT = Number(/PORT=(\d+)/i.exec(PG_CONN)?.[1] ?? 5432);

interface Scenario {
  log: (line: string) => void;
  dir: string;
  seed: number;
  random: () => number;
  jobId: string;
  table: string;
  topic: string;
  broker: MosquittoInstance;
  proxy: TcpProxy;
  contractFile: string;
  publisher: Publisher;
  /** Counts what the runtimes publish on the changelog and dead-letter topics (reported, not asserted). */
  watcher: mqtt.MqttClient;
  published: { changelog: number; deadLetter: number };
  events: PlannedEvent[];
  runtimes: Runtime[];
  /** Set at the end of a passing test: runtimes then get a clean SIGTERM, else kill -9. */
  passed: boolean;
}

interface ScenarioOptions {
  shared: boolean;
  events: number;
  keys?: number;
  conflictRule?: 'LAST_WRITE_WINS' | 'HMS_WINS';
  poisonPerKind?: number;
}

/** Our own broker, the proxy, a fresh table, the contract, the events; cleanup registered on `t`. */
async function setUp(t: TestContext, name: string, options: ScenarioOptions): Promise<Scenario | undefined> {
  if (!(await needService(t, 'postgres'))) return undefined;
  if (!(await needService(t, 'mosquitto'))) return undefined;
  if (!mosquittoInstalled()) {
    if (process.env.CI === 'true') throw new Error('/usr/sbin/mosquitto is not installed (CI=true: integration services are required)');
    t.skip('/usr/sbin/mosquitto is not installed');
    return undefined;
  }
  const log = makeLogger(name);
  const seed = Number(process.env.EXS_FAULT_SEED) || Math.floor(Math.random() * 2 ** 31);
  const random = seededRandom(seed);
  const dir = tempDir('fault');
  const suffix = `${Date.now().toString(36)}${Math.floor(random() * 1e6).toString(36)}`;
  const jobId = `FAULT_${suffix}`;
  const table = `exs_fault_${suffix}`;
  const topic = `exs-fault/${suffix}/permits`;
  const keys = options.keys ?? KEYS;
  const conflictRule = options.conflictRule ?? process.env.EXS_FAULT_CONFLICT_RULE ?? 'LAST_WRITE_WINS';
  log(`seed ${seed} (EXS_FAULT_SEED to repeat), ${options.events} events over ${keys} keys, ${conflictRule}, dir ${dir}`);

  const scenario: Partial<Scenario> & { runtimes: Runtime[]; passed: boolean } = { log, dir, seed, random, jobId, table, topic, runtimes: [], passed: false };
  // Registered before anything starts: whatever was started is stopped, pass or fail.
  t.after(async () => {
    for (const runtime of scenario.runtimes) {
      if (!runtime.alive) continue;
      if (scenario.passed) await runtime.stop();
      else await runtime.kill9();
    }
    await scenario.publisher?.close();
    await scenario.watcher?.endAsync(true).catch(() => undefined);
    await scenario.broker?.stop();
    await scenario.proxy?.close();
    await sqlQuery(PG_CONN, `DROP TABLE IF EXISTS ${table}`).catch(() => undefined);
    // services.ts removes the directory when the process ends, unless EXS_KEEP_TEST_DIRS=1.
    for (const runtime of scenario.runtimes) fs.writeFileSync(path.join(dir, `${runtime.name}.output.log`), runtime.output());
    if (!scenario.passed || process.env.EXS_KEEP_TEST_DIRS) {
      const kept = process.env.EXS_KEEP_TEST_DIRS ? `kept: ${dir}` : `set EXS_KEEP_TEST_DIRS=1 to keep ${dir}`;
      console.log(`[${name}] ${kept} (runtime output in *.output.log, broker log in mosquitto/, change logs in userdir-*/exs/)`);
    }
  });

  scenario.broker = await startMosquitto({ dir: path.join(dir, 'mosquitto') });
  scenario.proxy = await startTcpProxy({ targetPort: PG_PORT });
  log(`mosquitto on ${scenario.broker.port} (data in ${scenario.broker.dir}), PostgreSQL proxy on ${scenario.proxy.port}`);

  await sqlQuery(PG_CONN, `CREATE TABLE ${table} (PERMIT_ID VARCHAR(20) PRIMARY KEY, PERMIT_STAT VARCHAR(${STATUS_WIDTH}), EVENT_ID INTEGER, LAST_CHG_TS TIMESTAMP(6))`);

  const connection = `DRIVER={PostgreSQL Unicode};SERVER=127.0.0.1;PORT=${scenario.proxy.port};DATABASE=test;UID=postgres;CommLog=0;Debug=0`;
  const contractFile = path.join(dir, `${jobId}.sync.yaml`);
  fs.writeFileSync(contractFile, `id: ${jobId}
source_topic: permits.status
mqtt_topic: ${options.shared ? `$share/exs/${topic}` : topic}
destination: PostgreSQL behind a proxy
connector: "odbc:${connection}"
table: ${table}
key: HMS:permit_id -> COBOL:PERMIT_ID
mapping:
  HMS:status     -> COBOL:PERMIT_STAT
  HMS:event_id   -> COBOL:EVENT_ID
  HMS:updated_at -> COBOL:LAST_CHG_TS
conflict_rule: ${conflictRule}
retry_policy:
  max_attempts: 3
  backoff_seconds: 1
broker: ${scenario.broker.url}
changelog: exs-fault/${suffix}/changelog
`);
  const validated = exsSync(['validate', contractFile]);
  assert.equal(validated.status, 0, `the contract validates:\n${validated.stdout}${validated.stderr}`);
  scenario.contractFile = contractFile;
  scenario.events = planEvents(options.events, keys, random, { statusWidth: STATUS_WIDTH, poisonPerKind: options.poisonPerKind });
  scenario.publisher = new Publisher(scenario.broker.url, `exs-fault-publisher-${suffix}`, topic);
  const counts = { changelog: 0, deadLetter: 0 };
  scenario.published = counts;
  scenario.watcher = mqtt.connect(scenario.broker.url, { clientId: `exs-fault-watcher-${suffix}`, clean: false, reconnectPeriod: 500 });
  scenario.watcher.on('error', () => undefined);
  scenario.watcher.on('message', (messageTopic) => {
    if (messageTopic === `exs/${jobId}/dead_letter`) counts.deadLetter += 1;
    else counts.changelog += 1;
  });
  await scenario.watcher.subscribeAsync([`exs-fault/${suffix}/changelog`, `exs/${jobId}/dead_letter`], { qos: 1 });
  return scenario as Scenario;
}

/** The broker logs each subscription as `<client id> <qos> <topic>`: publishing before it would lose events. */
async function waitForSubscription(s: Scenario, runtime: Runtime): Promise<void> {
  const clientId = sourceClientId(s.jobId, runtime.instance);
  await waitFor(`${runtime.name} (${clientId}) to subscribe on the test broker`, () =>
    s.broker.log().includes(`${clientId} 1 `) ? true : undefined, {
    timeoutMs: 60_000,
    intervalMs: 250,
    detail: () => `broker log tail:\n${s.broker.log().split('\n').slice(-20).join('\n')}\nruntime output:\n${runtime.output().slice(-3000)}`,
  });
}

/** Runs `action` once the publisher has published `at` events. */
class FaultPlan {
  private readonly pending: Array<{ at: number; name: string; action: () => Promise<void> }> = [];
  private readonly running: Array<Promise<void>> = [];
  readonly errors: Error[] = [];

  add(at: number, name: string, action: () => Promise<void>): void {
    this.pending.push({ at: Math.round(at), name, action });
  }

  progress(published: number, log: (line: string) => void): void {
    for (const fault of this.pending.filter((f) => f.at <= published)) {
      this.pending.splice(this.pending.indexOf(fault), 1);
      log(`fault '${fault.name}' at event #${published}`);
      this.running.push(fault.action().catch((err: Error) => {
        this.errors.push(err);
        log(`fault '${fault.name}' failed: ${err.message}`);
      }));
    }
  }

  async done(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`faults still running after ${timeoutMs / 1000} s`)), timeoutMs);
    });
    try {
      await Promise.race([Promise.all(this.running), timeout]);
    } finally {
      clearTimeout(timer);
    }
    if (this.errors.length > 0) throw new Error(`faults failed: ${this.errors.map((e) => e.stack ?? e.message).join('\n')}`);
  }
}

/** Serializes actions on one runtime (a kill waits for the previous restart). */
function chain(): (action: () => Promise<void>) => Promise<void> {
  let tail = Promise.resolve();
  return (action) => {
    const next = tail.then(action);
    tail = next.catch(() => undefined);
    return next;
  };
}

function killAndRestart(s: Scenario, runtime: Runtime, maxDownMs: number): () => Promise<void> {
  return async () => {
    await runtime.kill9();
    const down = Math.round(s.random() * maxDownMs);
    s.log(`${runtime.name}: down for ${down} ms`);
    await sleep(down);
    await runtime.start();
  };
}

function databaseOutage(s: Scenario, ms: number): () => Promise<void> {
  return async () => {
    s.proxy.cut();
    s.log(`database cut (${s.proxy.accepted} connections accepted so far)`);
    await sleep(ms);
    s.proxy.restore();
    s.log(`database restored after ${ms} ms (${s.proxy.refused} connections refused meanwhile)`);
  };
}

function brokerRestart(s: Scenario): () => Promise<void> {
  return async () => {
    await s.broker.stop();
    s.log('mosquitto stopped (SIGTERM)');
    await sleep(1000 + Math.round(s.random() * 2000));
    await s.broker.start();
    s.log('mosquitto started again on the same port and data');
  };
}

function logsOf(s: Scenario) {
  return s.runtimes.map((r) => readChangeLog(r.name, r.userDir, s.jobId));
}

/** Waits, bounded, until every published event has a settled change-log entry somewhere. */
async function waitForEveryEvent(s: Scenario): Promise<void> {
  let lastMissing = -1;
  await waitFor(
    'every published event to be settled in a change log',
    () => {
      const { missing } = account(s.events, logsOf(s));
      if (missing.length !== lastMissing) {
        s.log(`waiting for ${missing.length} events to settle`);
        lastMissing = missing.length;
      }
      return missing.length === 0 ? true : undefined;
    },
    {
      timeoutMs: SETTLE_TIMEOUT_MS,
      intervalMs: 2000,
      detail: async () => {
        const { missing } = account(s.events, logsOf(s));
        const states = await Promise.all(s.runtimes.map(async (r) => `${r.name}: ${JSON.stringify(await r.jobState(s.jobId))}`));
        return `${missing.length} missing: ${idRanges(missing)}\njob state:\n${states.join('\n')}`;
      },
    },
  );
}

/** Every entry of a key's last events and of the event the table holds, in the order they were logged. */
function explainKey(s: Scenario, accounting: Accounting, key: string, rowEventId: number | undefined): string {
  const ofKey = s.events.filter((e) => e.key === key).slice(-3);
  const ids = new Set([...ofKey.map((e) => e.id), ...(rowEventId === undefined ? [] : [rowEventId])]);
  const entries = [...ids].flatMap((id) => accounting.byEvent.get(id) ?? []).sort((a, b) => String(a.time).localeCompare(String(b.time)));
  const lines = [`key ${key}: last events ${ofKey.map((e) => `#${e.id} (${e.updatedAt})`).join(', ')}; the table holds #${rowEventId ?? '-'}; their entries as logged:`];
  for (const entry of entries) {
    lines.push(`  ${entry.time} #${entry.eventId} ${entry.runtime} seq ${entry.seq} ${entry.outcome}: LAST_CHG_TS ${JSON.stringify(entry.before?.LAST_CHG_TS ?? null)} ` +
      `-> ${JSON.stringify(entry.after?.LAST_CHG_TS ?? null)}${entry.error ? ` error: ${entry.error}` : ''}`);
  }
  return lines.join('\n');
}

/** The checks every scenario ends with, and the counts it prints. */
async function verify(s: Scenario, timings: { started: number; published: number }): Promise<void> {
  const logs = logsOf(s);
  const accounting = account(s.events, logs);
  const letters: StoredLetter[] = s.runtimes.flatMap((r) => readDeadLetters(r.name, r.userDir, s.jobId).letters);
  const poison = s.events.filter((e) => e.poison);
  const good = s.events.filter((e) => !e.poison);
  const outcomes = countBy(accounting.entries, (e) => e.outcome);
  const deadLetteredGood = good.filter((e) => (accounting.byEvent.get(e.id) ?? []).some((entry) => entry.outcome === 'dead_letter'));
  const duplicates = [...accounting.byEvent.values()].reduce((sum, list) => sum + Math.max(0, list.length - 1), 0);
  const redelivered = [...accounting.byEvent.values()].filter((list) => list.length > 1).length;
  // Two applies of one key that read the same row: runtimes racing (one runtime orders a key's
  // writes). The guarded upsert decides them in the database; reported to show the contention.
  const appliedFrom = new Map<string, LoggedEntry[]>();
  for (const entry of accounting.entries) {
    if (entry.outcome !== 'applied') continue;
    const readState = `${String(entry.key)}|${JSON.stringify(entry.before?.LAST_CHG_TS ?? null)}`;
    appliedFrom.set(readState, [...(appliedFrom.get(readState) ?? []), entry]);
  }
  const races = [...appliedFrom.values()].filter((list) => new Set(list.map((e) => e.eventId)).size > 1 && new Set(list.map((e) => e.runtime)).size > 1);
  // Skipped the first time it was logged: a newer event of its key was written before it.
  const overtaken = good.filter((e) => accounting.byEvent.get(e.id)?.[0]?.outcome === 'skipped');

  const rows = await sqlQuery(PG_CONN, `SELECT permit_id, permit_stat, event_id, CAST(last_chg_ts AS VARCHAR(40)) AS ts FROM ${s.table}`);
  const rowOf = new Map(rows.map((r) => [String(r.permit_id), r]));
  const expected = lastEventPerKey(s.events);
  const wrongRows: string[] = [];
  const rowEventOf = new Map<string, number | undefined>();
  for (const [key, event] of expected) {
    const row = rowOf.get(key);
    const rowTime = row ? Date.parse(`${String(row.ts).replace(' ', 'T')}Z`) : NaN;
    if (!row || Number(row.event_id) !== event.id || row.permit_stat !== event.status || rowTime !== Date.parse(event.updatedAt!)) {
      rowEventOf.set(key, row ? Number(row.event_id) : undefined);
      wrongRows.push(`${key}: expected #${event.id} ${event.status} ${event.updatedAt}, table has ${row ? `#${row.event_id} ${row.permit_stat} ${row.ts}` : 'no row'}`);
    }
  }
  const extraRows = rows.map((r) => String(r.permit_id)).filter((key) => !expected.has(key));

  const perRuntime = s.runtimes.map((r, i) => `${r.name}: ${logs[i].entries.length} entries, ${r.starts} starts, ${r.kills} kill -9`).join('; ');
  const summary = [
    `published ${s.events.length} (${poison.length} poison) over ${expected.size} keys; broker acknowledged ${s.publisher.acked.size}`,
    `change-log entries ${accounting.entries.length}: applied ${outcomes.applied ?? 0}, unchanged ${outcomes.unchanged ?? 0}, ` +
      `skipped ${outcomes.skipped ?? 0}, dead_letter ${outcomes.dead_letter ?? 0}` +
      Object.entries(outcomes).filter(([o]) => !['applied', 'unchanged', 'skipped', 'dead_letter'].includes(o)).map(([o, n]) => `, ${o} ${n}`).join(''),
    `dead letters stored ${letters.length} (poison ${poison.length}, good events dead-lettered ${deadLetteredGood.length})`,
    `duplicates redelivered ${duplicates} (over ${redelivered} events), missing ${accounting.missing.length}, torn log lines ${accounting.torn.length}`,
    `events overtaken by a newer one of their key (skipped on first delivery) ${overtaken.length}; ` +
      `two runtimes writing one key from the same row state ${races.length} times`,
    `final table: ${rows.length} rows, ${wrongRows.length} not the last event of their key, ${extraRows.length} unexpected`,
    perRuntime,
    `published on MQTT: ${s.published.changelog} change-log entries, ${s.published.deadLetter} dead letters; ` +
      `broker closed a connection for a duplicate client id ${(s.broker.log().match(/already connected, closing old connection/g) ?? []).length} times`,
    `publishing ${((timings.published - timings.started) / 1000).toFixed(1)} s, all settled ${((Date.now() - timings.started) / 1000).toFixed(1)} s after the first publish`,
  ];
  for (const line of summary) s.log(line);
  if (accounting.torn.length > 0) s.log(`torn lines:\n  ${accounting.torn.join('\n  ')}`);
  for (const race of wrongRows.length > 0 ? races.slice(0, 5) : []) {
    s.log(`race on ${String(race[0].key)} from row time ${JSON.stringify(race[0].before?.LAST_CHG_TS ?? null)}: ` +
      race.map((e) => `#${e.eventId} (${e.runtime} seq ${e.seq} at ${e.time}, wrote ${JSON.stringify(e.after?.LAST_CHG_TS)})`).join(' and '));
  }

  assert.equal(s.publisher.acked.size, s.events.length, 'the broker acknowledged every event to the publisher');
  assert.deepEqual(accounting.missing, [], `every event has a settled change-log entry; missing: ${idRanges(accounting.missing)}`);
  assert.deepEqual(accounting.unidentified.map((e) => `${e.runtime} seq ${e.seq} ${e.outcome}`), [], 'every change-log entry names its event');
  assert.equal(outcomes.failed ?? 0, 0, 'no entry says failed (an event that reached the log without an outcome)');
  assert.deepEqual(
    deadLetteredGood.map((e) => `#${e.id}: ${(accounting.byEvent.get(e.id) ?? []).filter((x) => x.outcome === 'dead_letter').map((x) => x.error).join(' | ')}`),
    [],
    'no good event is dead-lettered: an outage pauses the job, it does not burn events',
  );

  // Every poison event: dead-lettered with its reason, in the log and among the stored letters, never applied.
  const poisonProblems: string[] = [];
  for (const event of poison) {
    const entries = accounting.byEvent.get(event.id) ?? [];
    const reason = POISON_REASONS[event.poison!];
    if (entries.some((e) => e.outcome !== 'dead_letter')) poisonProblems.push(`#${event.id} ${event.poison}: outcomes ${entries.map((e) => e.outcome).join(', ')}`);
    if (!entries.some((e) => e.outcome === 'dead_letter' && reason.test(e.error ?? ''))) {
      poisonProblems.push(`#${event.id} ${event.poison}: no dead_letter entry matching ${reason} (got ${entries.map((e) => e.error).join(' | ') || 'none'})`);
    }
    const stored = letters.filter((l) => l.eventId === event.id);
    if (!stored.some((l) => reason.test(l.error))) {
      poisonProblems.push(`#${event.id} ${event.poison}: no stored dead letter matching ${reason} (got ${stored.map((l) => l.error).join(' | ') || 'none'})`);
    }
    if (event.poison === 'too_long' && !stored.some((l) => l.attempts === 3)) {
      poisonProblems.push(`#${event.id} too_long: a data failure is tried max_attempts (3) times; letters say ${stored.map((l) => l.attempts).join(', ')}`);
    }
  }
  assert.deepEqual(poisonProblems, [], 'every poison event is in the dead letter with a clear reason');
  assert.deepEqual(letters.filter((l) => l.eventId === undefined || !poison.some((p) => p.id === l.eventId)).map((l) => `${l.runtime} #${l.id}: ${l.error}`), [],
    'the stored dead letters are the poison events only');

  assert.deepEqual(extraRows.filter((k) => POISON_KEYS.includes(k)), [], 'no poison event reached the table');
  assert.deepEqual(extraRows, [], 'the table holds only keys that were published');
  if (wrongRows.length > 0) {
    const keys = wrongRows.slice(0, 5).map((line) => line.split(':')[0]);
    s.log(`rows that are not the last event of their key:\n${wrongRows.slice(0, 20).join('\n')}\n${keys.map((k) => explainKey(s, accounting, k, rowEventOf.get(k))).join('\n')}`);
  }
  assert.deepEqual(wrongRows, [], 'the final table holds the last event of every key');
}

describe('fault tolerance: nothing acknowledged is lost', () => {
  it('one runtime: kill -9 twice, a database outage, a broker restart', { timeout: 10 * 60_000 }, async (t) => {
    const s = await setUp(t, 'fault-single', { shared: false, events: EVENTS });
    if (!s) return;
    const runtime = new Runtime('runtime-a', s.contractFile, path.join(s.dir, 'userdir-a'), 'fault-a', s.log);
    s.runtimes.push(runtime);
    await runtime.start();
    await waitForSubscription(s, runtime);

    const n = s.events.length;
    const between = (from: number, to: number) => n * (from + s.random() * (to - from));
    const onRuntime = chain();
    const faults = new FaultPlan();
    faults.add(between(0.1, 0.28), 'kill -9 #1', () => onRuntime(killAndRestart(s, runtime, 3000)));
    faults.add(n * 0.33, `database outage ${OUTAGE_MS / 1000} s`, databaseOutage(s, OUTAGE_MS));
    faults.add(between(0.42, 0.68), 'kill -9 #2', () => onRuntime(killAndRestart(s, runtime, 3000)));
    faults.add(between(0.75, 0.88), 'broker restart', brokerRestart(s));

    const started = Date.now();
    await s.publisher.publishAtRate(s.events, RATE, (published) => faults.progress(published, s.log));
    const published = Date.now();
    s.log(`all ${n} events handed to the publisher`);
    await faults.done(120_000);
    await waitFor('the broker to acknowledge every event to the publisher',
      () => (s.publisher.acked.size === n ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 250, detail: () => `${n - s.publisher.acked.size} unacknowledged; publisher errors: ${s.publisher.errors.slice(-5).join('; ')}` });
    await waitForEveryEvent(s);

    assert.equal(await runtime.stop(), 0, 'SIGTERM stops exs run cleanly after all that');
    await verify(s, { started, published });
    s.passed = true;
  });

  it('two runtimes on a shared subscription, one killed -9 mid-stream and started again', { timeout: 10 * 60_000 }, async (t) => {
    const s = await setUp(t, 'fault-shared', { shared: true, events: Math.round(EVENTS * (2 / 3)) });
    if (!s) return;
    const a = new Runtime('runtime-a', s.contractFile, path.join(s.dir, 'userdir-a'), 'shared-a', s.log);
    const b = new Runtime('runtime-b', s.contractFile, path.join(s.dir, 'userdir-b'), 'shared-b', s.log);
    s.runtimes.push(a, b);
    await Promise.all([a.start(), b.start()]);
    await Promise.all([waitForSubscription(s, a), waitForSubscription(s, b)]);

    const n = s.events.length;
    const faults = new FaultPlan();
    // Mosquitto keeps queueing a shared subscription's share for a member that is gone (its
    // session persists): those events, and what its journal holds, wait for it to come back.
    faults.add(n * (0.25 + s.random() * 0.2), 'kill -9 runtime-b', killAndRestart(s, b, 15_000));

    const started = Date.now();
    await s.publisher.publishAtRate(s.events, RATE, (published) => faults.progress(published, s.log));
    const published = Date.now();
    s.log(`all ${n} events handed to the publisher`);
    await faults.done(120_000);
    await waitFor('the broker to acknowledge every event to the publisher',
      () => (s.publisher.acked.size === n ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 250, detail: () => `${n - s.publisher.acked.size} unacknowledged; publisher errors: ${s.publisher.errors.slice(-5).join('; ')}` });
    await waitForEveryEvent(s);

    const [codeA, codeB] = await Promise.all([a.stop(), b.stop()]);
    assert.deepEqual([codeA, codeB], [0, 0], 'SIGTERM stops both runtimes cleanly');
    await verify(s, { started, published });
    const perRuntime = logsOf(s).map((l) => l.entries.length);
    assert.ok(perRuntime.every((count) => count > 0), `both runtimes took a share of the events (${perRuntime.join(', ')})`);
    s.passed = true;
  });

  // README: "Writes to one record happen in the order its events arrived". HMS_WINS has no
  // timestamp to repair a reordering, so it shows one directly: a burst that meets an outage -
  // many events in flight when the first write fails, and a restart that replays them from the
  // journal while the database is still down - must be written oldest first once it is back.
  it('HMS_WINS: a burst that meets an outage and a restart is written in each record\'s order', { timeout: 5 * 60_000 }, async (t) => {
    const s = await setUp(t, 'fault-order', { shared: false, events: 300, keys: 10, conflictRule: 'HMS_WINS', poisonPerKind: 0 });
    if (!s) return;
    const runtime = new Runtime('runtime-a', s.contractFile, path.join(s.dir, 'userdir-a'), 'order-a', s.log);
    s.runtimes.push(runtime);
    await runtime.start();
    await waitForSubscription(s, runtime);
    s.proxy.cut();
    s.log('database cut');
    const started = Date.now();
    for (const event of s.events) s.publisher.publish(event); // one burst
    const published = Date.now();
    await waitFor('the broker to acknowledge every event to the publisher',
      () => (s.publisher.acked.size === s.events.length ? true : undefined), { timeoutMs: 60_000, intervalMs: 250 });
    await sleep(2_000);
    await runtime.kill9();
    await runtime.start(); // the journal goes to a database that is still down
    await sleep(3_000);
    s.proxy.restore();
    s.log(`database restored (${s.proxy.refused} connections refused meanwhile)`);
    await waitForEveryEvent(s);
    assert.equal(await runtime.stop(), 0, 'SIGTERM stops exs run cleanly');
    await verify(s, { started, published });
    s.passed = true;
  });
});
