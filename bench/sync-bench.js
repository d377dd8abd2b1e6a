#!/usr/bin/env node
// The sync benchmark: the same events through six pipelines into PostgreSQL (psqlODBC), side by side.
//
//   npm run bench [-- EVENTS KEYS BACKLOG]  (default 20000 events over 1000 keys, a backlog of 100000)
//
//   raw, per event    mqtt.js + odbc, no Node-RED: one guarded upsert per event, 4 connections
//   raw, batched      mqtt.js + odbc: multi-row guarded upsert of <= 500 rows or 20 ms, collapsed by key
//   stock Node-RED    core mqtt in -> json -> function running the guarded upsert (bench/stock-node-red.js)
//   EXS               `exs run` of a sync.yaml: journal, conflict law, change log, batches
//   EXS, feed per batch  the same with `changelog_feed: batch`: the change log's MQTT feed carries
//                     one message per batch (an array of entries) instead of one per entry
//   EXS, newest per record  the same as EXS with `backlog: newest_per_record`: of a record's events
//                     waiting together in the journal only the newest is written, the others logged
//                     as superseded (the batched raw pipeline collapses by key within a batch too)
//
// Every pipeline writes the same rows (the newest event of each key wins: a newer-wins guard) and
// is measured three ways: throughput while events are published as fast as the broker takes them;
// the drain of a backlog queued at the broker while the pipeline was stopped; and publish-to-commit
// latency at 500 events/s, from a trigger that stamps each row's write (with the CPU each party
// spends per event, at full speed and at 500 events/s). Needs PostgreSQL on
// 127.0.0.1:5432 (database test, user postgres) and the Mosquitto binary; starts its own broker.
// Writes bench/RESULTS.md. Run `npm run build` first (npm run bench does).
//
// Environment: EXS_BENCH_RUNS=3 (medians of three runs), EXS_BENCH_ONLY="^EXS$" and
// EXS_BENCH_PHASES=latency (part of it, for profiling; RESULTS.md is then left alone),
// EXS_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" (node options for the EXS runtime),
// EXS_BENCH_LATENCY_WARMUP=10 (seconds at 500 ev/s before the steady latency is counted),
// EXS_BENCH_LATENCY_DUMP=/tmp/lat (each write's publish time and latency, one file per pipeline and run),
// EXS_BENCH_INFLIGHT=20 (the broker's max_inflight_messages; default 1000, Mosquitto's own default is 20),
// EXS_BENCH_DEBUG=1 (the runtime's output in the temp folder, progress on the console), UV_THREADPOOL_SIZE
// (passed on to the EXS runtime: every ODBC call and file write runs on libuv's thread pool, 4 threads by default).
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const mqtt = require('mqtt');
const odbc = require('odbc');
const { startMosquitto } = require('../dist/test/support/mosquitto-instance.js');
const { startExsRun, freePort } = require('../dist/test/support/exs-process.js');

const EVENTS = Number(process.argv[2] ?? 20_000);
// EXS_BENCH_RUNS=3: each pipeline measured three times, the table shows medians.
const RUNS = Math.max(1, Number(process.env.EXS_BENCH_RUNS ?? 1));
const KEYS = Number(process.argv[3] ?? 1000);
// The drain's backlog: 100,000 events, the size the performance target names (a backlog after the
// mainframe's nightly window). Draining is measured from the pipeline's start, so a smaller
// backlog mostly measures how long a Node-RED runtime takes to start (about 1.5 s here, a third of
// a 20,000-event drain), which the in-process raw pipelines do not pay.
const BACKLOG = Number(process.argv[4] ?? 100_000);
const LATENCY_RATE = 500;
const LATENCY_SECONDS = 10;
// The first 10 s of the latency phase (5,000 events) are published but not counted in the steady
// figures: a pipeline just started runs cold code, which V8 optimizes only once a function has run
// a few thousand times (EXS's p99 was about 20 ms in its first seconds, 7-9 ms after them), and
// pays one-time costs (the timing trigger compiled in each new database session). Seconds 1-10 are
// reported apart, as the latency right after a start. EXS_BENCH_LATENCY_WARMUP changes the 10.
const LATENCY_WARMUP_SECONDS = Number(process.env.EXS_BENCH_LATENCY_WARMUP ?? 10);
const PG = 'DRIVER={PostgreSQL Unicode};SERVER=127.0.0.1;PORT=5432;DATABASE=test;UID=postgres;PWD=;CommLog=0;Debug=0';
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const run = `${Date.now().toString(36)}`;

/** The guarded upsert every hand-written pipeline runs: the newer event wins, as EXS's law does. */
function upsertSql(table, rows = 1) {
  const row = '(?, ?, CAST(CAST(? AS VARCHAR(40)) AS TIMESTAMP), CAST(? AS INTEGER), ?)';
  return `INSERT INTO ${table} AS t (permit_id, permit_stat, last_chg_ts, seq, sent_at) VALUES ${Array(rows).fill(row).join(', ')}`
    + ' ON CONFLICT (permit_id) DO UPDATE SET permit_stat = excluded.permit_stat, last_chg_ts = excluded.last_chg_ts,'
    + ' seq = excluded.seq, sent_at = excluded.sent_at WHERE t.last_chg_ts IS NULL OR t.last_chg_ts <= excluded.last_chg_ts';
}

/**
 * The wall clock in milliseconds to the microsecond: Date.now() truncates, which put about 0.5 ms on
 * every latency measured against PostgreSQL's clock_timestamp(). The monotonic clock gives the
 * fraction; kept within Date.now()'s millisecond, should the wall clock have been slewed since start.
 */
function nowPrecise() {
  const wall = Date.now();
  const precise = performance.timeOrigin + performance.now();
  return Number(Math.min(Math.max(precise, wall), wall + 0.999).toFixed(3));
}

function event(i, keys) {
  return { permit_id: `P-${i % keys}`, status: `S${i}`, updated_at: new Date(Date.parse('2026-01-01T00:00:00Z') + i).toISOString(), seq: i, sent_at: nowPrecise() };
}

// ------------------------------------------------------------------ the pipelines

/** mqtt.js + odbc, one guarded upsert per event on 4 connections (a key always on the same one). */
async function rawPerEvent(ctx) {
  const connections = await Promise.all([0, 1, 2, 3].map(() => odbc.connect(PG)));
  const chains = connections.map(() => Promise.resolve());
  const sql = upsertSql(ctx.table);
  // The handler is in place before the session resumes: a queued backlog arrives at once.
  const client = mqtt.connect(ctx.brokerUrl, { clientId: `raw-per-event-${run}`, clean: false });
  client.on('message', (_topic, payload) => {
    const e = JSON.parse(payload.toString());
    const lane = Number(e.permit_id.slice(2)) % connections.length;
    chains[lane] = chains[lane].then(() => connections[lane].query(sql, [e.permit_id, e.status, e.updated_at, String(e.seq), String(e.sent_at)]));
  });
  await new Promise((resolve) => client.once('connect', resolve));
  await client.subscribeAsync(ctx.topic, { qos: 1 });
  return async () => {
    await client.endAsync();
    await Promise.all(chains);
    await Promise.all(connections.map((c) => c.close()));
  };
}

/** mqtt.js + odbc, micro-batched: up to 500 rows or 20 ms, newest per key, one multi-row upsert. */
async function rawBatched(ctx) {
  const connection = await odbc.connect(PG);
  let pending = new Map();
  let timer;
  let writing = Promise.resolve();
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (pending.size === 0) return;
    const rows = [...pending.values()];
    pending = new Map();
    writing = writing.then(() => connection.query(upsertSql(ctx.table, rows.length),
      rows.flatMap((e) => [e.permit_id, e.status, e.updated_at, String(e.seq), String(e.sent_at)])));
  };
  const client = mqtt.connect(ctx.brokerUrl, { clientId: `raw-batched-${run}`, clean: false });
  client.on('message', (_topic, payload) => {
    const e = JSON.parse(payload.toString());
    const seen = pending.get(e.permit_id);
    if (!seen || seen.seq < e.seq) pending.set(e.permit_id, e);
    if (pending.size >= 500) flush();
    else timer ??= setTimeout(flush, 20);
  });
  await new Promise((resolve) => client.once('connect', resolve));
  await client.subscribeAsync(ctx.topic, { qos: 1 });
  return async () => {
    await client.endAsync();
    flush();
    await writing;
    await connection.close();
  };
}

/** Core Node-RED nodes in a child process. */
async function stockNodeRed(ctx) {
  const config = {
    brokerUrl: ctx.brokerUrl, topic: ctx.topic, userDir: path.join(ctx.dir, 'stock-userdir'), port: await freePort(),
    connectionString: PG, upsertSql: upsertSql(ctx.table),
  };
  const child = spawn(process.execPath, [path.join(__dirname, 'stock-node-red.js'), JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => { if (/ready/.test(d)) resolve(); });
    child.once('exit', (code) => reject(new Error(`stock Node-RED exited with ${code}`)));
  });
  return Object.assign(async () => {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
  }, { pid: child.pid });
}

/** `exs run` of the contract, with its `changelog_feed` and `backlog`. */
async function exs(ctx, { changelogFeed = 'entry', backlog = 'every_event' } = {}) {
  const contract = path.join(ctx.dir, `Bench_${ctx.table}.sync.yaml`);
  fs.writeFileSync(contract, `id: Bench_${ctx.table}
source_topic: bench.permits
mqtt_topic: ${ctx.topic}
destination: PostgreSQL
connector: "odbc:${PG}"
table: ${ctx.table}
key: HMS:permit_id -> COBOL:PERMIT_ID
mapping:
  HMS:status     -> COBOL:PERMIT_STAT
  HMS:updated_at -> COBOL:LAST_CHG_TS
  HMS:seq        -> COBOL:SEQ
  HMS:sent_at    -> COBOL:SENT_AT
conflict_rule: LAST_WRITE_WINS
broker: ${ctx.brokerUrl}
changelog_feed: ${changelogFeed}
backlog: ${backlog}
`);
  const exsRun = await startExsRun([contract], path.join(ctx.dir, `exs-userdir-${ctx.table}`), [], {
    env: { EXS_INSTANCE: 'bench', EXS_DATA_DIR: undefined, ...(process.env.UV_THREADPOOL_SIZE && { UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE }) },
    // EXS_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the EXS runtime only.
    nodeArgs: process.env.EXS_BENCH_NODE_ARGS?.split(' ').filter(Boolean),
  });
  return Object.assign(async () => {
    await exsRun.stop();
    if (process.env.EXS_BENCH_DEBUG) fs.writeFileSync(path.join(os.tmpdir(), `exs-bench-${ctx.table}.log`), exsRun.output());
  }, {
    pid: exsRun.child.pid,
    /** The job's counters: how many events were written, superseded, ... */
    counters: async () => (await (await fetch(`${exsRun.adminUrl}/exs/jobs/Bench_${ctx.table}`)).json()).counters,
  });
}

const PIPELINES = [
  ['raw, per event', rawPerEvent],
  ['raw, batched', rawBatched],
  ['stock Node-RED', stockNodeRed],
  ['EXS', (ctx) => exs(ctx)],
  ['EXS, feed per batch', (ctx) => exs(ctx, { changelogFeed: 'batch' })],
  ['EXS, newest per record', (ctx) => exs(ctx, { backlog: 'newest_per_record' })],
];
// EXS_BENCH_ONLY="^EXS$" (a regular expression matched against the names, say "batched|^EXS$") runs some
// pipelines only, for profiling; RESULTS.md is then not written.
const ONLY = process.env.EXS_BENCH_ONLY ? new RegExp(process.env.EXS_BENCH_ONLY) : undefined;
// EXS_BENCH_PHASES="latency" (throughput, drain, latency) measures some phases only.
const PHASES = process.env.EXS_BENCH_PHASES?.split(',').map((phase) => phase.trim()) ?? ['throughput', 'drain', 'latency'];

// ------------------------------------------------------------------ measuring

const CLOCK_TICKS = 100; // Linux USER_HZ

/** CPU seconds of processes named `command`, with their reaped children (PostgreSQL's ended backends). */
function cpuOfCommand(command) {
  let ticks = 0;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (name !== command) continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
    } catch {
      // gone meanwhile
    }
  }
  return ticks / CLOCK_TICKS;
}

function cpuOfPid(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Where the CPU goes while a pipeline runs: seconds so far per party. */
function cpuSnapshot(pid) {
  const { user, system } = process.cpuUsage();
  return { pipeline: pid ? cpuOfPid(pid) : undefined, postgres: cpuOfCommand('postgres'), mosquitto: cpuOfCommand('mosquitto'), bench: (user + system) / 1e6 };
}

async function createTable(db, table) {
  // This machine's PostgreSQL runs with autovacuum off: the shared state table would keep every
  // dead row of earlier runs and never get statistics, so plans would be made for an empty table.
  // Vacuum and analyze it as autovacuum would, before each phase.
  // (On a new database EXS creates the table at its first open: nothing to vacuum yet.)
  const [stateTable] = await db.query(`SELECT to_regclass('"EXS_SYNC_STATE"') IS NOT NULL AS present`);
  if (['1', 'true'].includes(String(stateTable?.present))) {
    await db.query('VACUUM ANALYZE "EXS_SYNC_STATE"').catch((err) => console.error(`no VACUUM ANALYZE of EXS_SYNC_STATE (${err.message}): plans may be made without statistics`));
  }
  await db.query(`DROP TABLE IF EXISTS ${table}_lat`);
  await db.query(`DROP TABLE IF EXISTS ${table}`);
  await db.query(`CREATE TABLE ${table} (permit_id varchar(20) PRIMARY KEY, permit_stat varchar(20), last_chg_ts timestamp(6), seq integer, sent_at varchar(20))`);
  // Each write stamps its own time: publish-to-commit latency without touching the pipelines.
  await db.query(`CREATE TABLE ${table}_lat (sent_at varchar(20), written_at timestamptz)`);
  await db.query(`CREATE OR REPLACE FUNCTION ${table}_stamp() RETURNS trigger AS $$ BEGIN
    INSERT INTO ${table}_lat VALUES (NEW.sent_at, clock_timestamp()); RETURN NEW; END $$ LANGUAGE plpgsql`);
}

async function stampWrites(db, table, on) {
  await db.query(on
    ? `CREATE TRIGGER ${table}_stamp AFTER INSERT OR UPDATE ON ${table} FOR EACH ROW EXECUTE FUNCTION ${table}_stamp()`
    : `DROP TRIGGER IF EXISTS ${table}_stamp ON ${table}`);
}

/** Until every key holds its last event (seq >= events - keys): the newest event of each key landed. */
async function waitComplete(db, table, events, keys, timeoutMs = Math.max(120_000, events * 2)) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [row] = await db.query(`SELECT COUNT(*) AS n FROM ${table} WHERE seq >= ${events - keys}`);
    if (Number(row.n) >= keys) return;
    if (Date.now() > deadline) throw new Error(`${table}: incomplete after ${timeoutMs / 1000} s (${row.n} of ${keys} keys)`);
    if (process.env.EXS_BENCH_DEBUG) console.log(`${table}: ${row.n} of ${keys}`);
    await sleep(20);
  }
}

async function publishAll(client, topic, events, keys, offset = 0) {
  const inFlight = [];
  for (let i = 0; i < events; i++) {
    inFlight.push(client.publishAsync(topic, JSON.stringify(event(offset + i, keys)), { qos: 1 }));
    if (inFlight.length >= 1000) await Promise.all(inFlight.splice(0));
  }
  await Promise.all(inFlight);
}

async function measure(name, start, ctx, db, publisher, round) {
  // A table (and so an EXS job, with its record states) of its own per run: a job that had seen these
  // very events would rightly call them already applied.
  const base = `bench_${run}_${round}_${PIPELINES.findIndex(([n]) => n === name)}`;
  const result = { name };

  let table;
  let stop;
  let began;
  // Throughput: the pipeline runs; events are published as fast as the broker acknowledges them.
  if (PHASES.includes('throughput')) {
  table = `${base}_t`;
  await createTable(db, table);
  stop = await start({ ...ctx, table, topic: `bench/${table}` });
  await sleep(500);
  began = Date.now();
  const cpuBefore = cpuSnapshot(stop.pid);
  await publishAll(publisher, `bench/${table}`, EVENTS, KEYS);
  await waitComplete(db, table, EVENTS, KEYS);
  result.throughput = EVENTS / ((Date.now() - began) / 1000);
  const cpuAfter = cpuSnapshot(stop.pid);
  // Microseconds of CPU per event; the raw pipelines run inside the bench process.
  for (const party of ['pipeline', 'postgres', 'mosquitto', 'bench']) {
    if (cpuBefore[party] !== undefined) result[`cpu_${party}`] = ((cpuAfter[party] - cpuBefore[party]) * 1e6) / EVENTS;
  }
  await stop();
  }

  // Drain: subscribed once (its session kept), stopped, events queued at the broker, started again.
  if (PHASES.includes('drain')) {
  table = `${base}_d`;
  await createTable(db, table);
  stop = await start({ ...ctx, table, topic: `bench/${table}` });
  await sleep(500);
  await stop();
  await publishAll(publisher, `bench/${table}`, BACKLOG, KEYS);
  began = Date.now();
  const drainCpuBefore = cpuSnapshot();
  stop = await start({ ...ctx, table, topic: `bench/${table}` });
  await waitComplete(db, table, BACKLOG, KEYS);
  result.drain = BACKLOG / ((Date.now() - began) / 1000);
  // CPU per event of the drain, the pipeline's start included (a runtime's whole life: its CPU at exit).
  const drainCpuAfter = cpuSnapshot(stop.pid);
  // The raw pipelines run in the bench process, which meanwhile only polls the table.
  if (drainCpuAfter.pipeline === undefined) drainCpuAfter.pipeline = drainCpuAfter.bench - drainCpuBefore.bench;
  for (const party of ['pipeline', 'postgres', 'mosquitto']) {
    const before = party === 'pipeline' ? 0 : drainCpuBefore[party];
    result[`drainCpu_${party}`] = ((drainCpuAfter[party] - before) * 1e6) / BACKLOG;
  }
  // Events that reached the destination (the others were superseded by a newer one of their record).
  if (stop.counters) {
    const counters = await stop.counters();
    result.drainWrites = BACKLOG - (counters.superseded ?? 0);
  }
  await stop();
  }

  // Latency at 500 events/s: publish-to-write of every event, from the trigger's stamps.
  if (PHASES.includes('latency')) {
  table = `${base}_l`;
  await createTable(db, table);
  await stampWrites(db, table, true);
  stop = await start({ ...ctx, table, topic: `bench/${table}` });
  await sleep(1000);
  const total = LATENCY_RATE * (LATENCY_WARMUP_SECONDS + LATENCY_SECONDS);
  began = Date.now();
  const warmupEvents = LATENCY_RATE * LATENCY_WARMUP_SECONDS;
  let lightCpuBefore;
  for (let i = 0; i < total; i++) {
    const due = began + (i * 1000) / LATENCY_RATE;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait);
    if (i === warmupEvents) lightCpuBefore = cpuSnapshot(stop.pid);
    void publisher.publishAsync(`bench/${table}`, JSON.stringify(event(i, KEYS)), { qos: 1 });
  }
  await waitComplete(db, table, total, Math.min(KEYS, total));
  // CPU per event at light load (the steady seconds): every step then runs once per event.
  if (lightCpuBefore) {
    const lightCpuAfter = cpuSnapshot(stop.pid);
    for (const party of ['pipeline', 'postgres']) {
      if (lightCpuBefore[party] !== undefined) result[`lightCpu_${party}`] = ((lightCpuAfter[party] - lightCpuBefore[party]) * 1e6) / (total - warmupEvents);
    }
  }
  await stop();
  const stamped = await db.query(`SELECT CAST(sent_at AS double precision) AS sent, (EXTRACT(EPOCH FROM written_at) * 1000 - CAST(sent_at AS double precision)) AS ms FROM ${table}_lat`);
  // EXS_BENCH_LATENCY_DUMP=/tmp/lat: each write's publish time (ms into the phase) and latency, to see when the tail happens.
  if (process.env.EXS_BENCH_LATENCY_DUMP) {
    fs.writeFileSync(`${process.env.EXS_BENCH_LATENCY_DUMP}-${name.replace(/\W+/g, '_')}-${round}.txt`,
      stamped.map((r) => `${(Number(r.sent) - began).toFixed(1)} ${Number(r.ms).toFixed(2)} ${Number(r.sent)}`).join('\n'));
  }
  const counted = began + LATENCY_WARMUP_SECONDS * 1000;
  const sortedMs = (rows) => rows.map((r) => Number(r.ms)).sort((a, b) => a - b);
  const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
  const latencies = sortedMs(stamped.filter((r) => Number(r.sent) >= counted));
  result.p50 = pct(latencies, 0.5);
  result.p99 = pct(latencies, 0.99);
  result.latencySamples = latencies.length;
  // Right after the start: from its second second to the end of the warm-up.
  const cold = sortedMs(stamped.filter((r) => Number(r.sent) >= began + 1000 && Number(r.sent) < counted));
  if (cold.length > 0) {
    result.coldP50 = pct(cold, 0.5);
    result.coldP99 = pct(cold, 0.99);
  }
  }
  const shown = (value, digits) => (value === undefined ? '-' : value.toFixed(digits));
  console.log(`${name}: ${shown(result.throughput, 0)} ev/s, drain ${shown(result.drain, 0)} ev/s${result.drainWrites === undefined ? "" : ` (${result.drainWrites} written)`}, p50 ${shown(result.p50, 2)} ms, p99 ${shown(result.p99, 2)} ms (after start ${shown(result.coldP50, 2)} / ${shown(result.coldP99, 2)} ms), CPU µs/event: pipeline ${shown(result.cpu_pipeline, 0)}, postgres ${shown(result.cpu_postgres, 0)}, mosquitto ${shown(result.cpu_mosquitto, 0)}, bench ${shown(result.cpu_bench, 0)}; at 500 ev/s: pipeline ${shown(result.lightCpu_pipeline, 0)}, postgres ${shown(result.lightCpu_postgres, 0)}; draining: pipeline ${shown(result.drainCpu_pipeline, 0)}, postgres ${shown(result.drainCpu_postgres, 0)}, mosquitto ${shown(result.drainCpu_mosquitto, 0)}`);
  for (const suffix of ['t', 'd', 'l']) {
    await db.query(`DROP TABLE IF EXISTS ${base}_${suffix}_lat`);
    await db.query(`DROP TABLE IF EXISTS ${base}_${suffix}`);
    await db.query(`DROP FUNCTION IF EXISTS ${base}_${suffix}_stamp()`);
  }
  return result;
}

function report(results) {
  const by = (name) => results.find((r) => r.name === name);
  const stock = by('stock Node-RED');
  const batched = by('raw, batched');
  const exsResult = by('EXS');
  const grouped = by('EXS, feed per batch');
  const newest = by('EXS, newest per record');
  const lines = [
    '# Sync benchmark',
    '',
    `${new Date().toISOString()} on ${os.cpus().length} x ${os.cpus()[0].model}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, PostgreSQL via psqlODBC, a private Mosquitto.`,
    `${EVENTS} events over ${KEYS} keys per run (the drain: a backlog of ${BACKLOG}, from the pipeline's start to the last write); latency: publish to the row's write at ${LATENCY_RATE} ev/s, for ${LATENCY_SECONDS} s after ${LATENCY_WARMUP_SECONDS} s of warm-up (steady),`,
    `and from the pipeline's second second to the end of the warm-up (right after a start: cold code).`,
    `${RUNS === 1 ? 'One run' : `Medians of ${RUNS} runs`} of each pipeline.`,
    '',
    '| pipeline | throughput, publish as fast as possible | drain of a queued backlog | latency p50 / p99 at 500 ev/s | the same right after a start |',
    '|---|---|---|---|---|',
    ...results.map((r) => `| ${r.name} | ${r.throughput.toFixed(0)} ev/s | ${r.drain.toFixed(0)} ev/s | ${r.p50.toFixed(1)} / ${r.p99.toFixed(1)} ms | ${r.coldP50?.toFixed(1) ?? '-'} / ${r.coldP99?.toFixed(1) ?? '-'} ms |`),
    '',
    'CPU per event while publishing as fast as possible, at 500 events/s (the latency phase\'s steady seconds) and while draining the backlog (the pipeline\'s whole life, its start included), in microseconds; the raw pipelines run inside the bench process, which also publishes (not while draining):',
    '',
    '| pipeline | pipeline process | PostgreSQL | Mosquitto | bench process | pipeline process at 500 ev/s | PostgreSQL at 500 ev/s | draining: pipeline / PostgreSQL / Mosquitto |',
    '|---|---|---|---|---|---|---|---|',
    ...results.map((r) => `| ${r.name} | ${r.cpu_pipeline === undefined ? '-' : r.cpu_pipeline.toFixed(0)} | ${r.cpu_postgres?.toFixed(0) ?? '-'} | ${r.cpu_mosquitto?.toFixed(0) ?? '-'} | ${r.cpu_bench?.toFixed(0) ?? '-'} | ${r.lightCpu_pipeline?.toFixed(0) ?? '-'} | ${r.lightCpu_postgres?.toFixed(0) ?? '-'} | ${r.drainCpu_pipeline?.toFixed(0) ?? '-'} / ${r.drainCpu_postgres?.toFixed(0) ?? '-'} / ${r.drainCpu_mosquitto?.toFixed(0) ?? '-'} |`),
    '',
    `EXS throughput is ${(exsResult.throughput / stock.throughput).toFixed(2)}x the stock Node-RED flow and ${(100 * exsResult.throughput / batched.throughput).toFixed(0)}% of the batched raw ceiling;`,
    `its drain is ${(100 * exsResult.drain / batched.drain).toFixed(0)}% of the batched ceiling's. EXS does more per event than the others: it stores each`,
    'event durably before acknowledging it, decides the conflict law in a transaction with a record-state table, and writes a change-log entry.',
    `With the change log's feed as one message per batch (\`changelog_feed: batch\`): ${(grouped.throughput / stock.throughput).toFixed(2)}x the stock flow,`,
    `${(100 * grouped.throughput / batched.throughput).toFixed(0)}% of the batched ceiling, drain ${(100 * grouped.drain / batched.drain).toFixed(0)}% of the ceiling's.`,
    `With \`backlog: newest_per_record\`: ${(newest.throughput / stock.throughput).toFixed(2)}x the stock flow, drain ${(100 * newest.drain / batched.drain).toFixed(0)}% of the ceiling's,`,
    `writing ${newest.drainWrites?.toFixed(0) ?? '-'} of the ${BACKLOG} events of the drain to the table (the others were superseded by a newer event of their`,
    'record and only logged). That is less work, not faster work: the raw pipelines write every event (the batched one collapses',
    'a key within a batch, but its batches of 500 consecutive events never hold a key twice).',
    '',
    `Reproduce: \`${RUNS === 1 ? '' : `EXS_BENCH_RUNS=${RUNS} `}npm run bench -- ${EVENTS} ${KEYS} ${BACKLOG}\`. Figures vary about 20% between runs on shared machines: compare within one run.`,
    '',
  ];
  return lines.join('\n');
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exs-sync-bench-'));
  const broker = await startMosquitto({ extraConfig: [`max_inflight_messages ${process.env.EXS_BENCH_INFLIGHT ?? 1000}`] });
  const db = await odbc.connect(PG);
  const publisher = await mqtt.connectAsync(broker.url, { clientId: `bench-publisher-${run}` });
  const ctx = { dir, brokerUrl: broker.url };
  const results = [];
  try {
    // Pipelines take turns run after run, so a slow spell of the machine hits them alike.
    const runs = [];
    for (let round = 0; round < RUNS; round++) {
      for (const [name, start] of PIPELINES) {
        if (!ONLY || ONLY.test(name)) runs.push(await measure(name, start, ctx, db, publisher, round));
      }
    }
    for (const [name] of PIPELINES) {
      const mine = runs.filter((r) => r.name === name);
      if (mine.length === 0) continue;
      const median = (field) => {
        const values = mine.map((r) => r[field]).filter((v) => v !== undefined).sort((a, b) => a - b);
        return values.length === 0 ? undefined : values[Math.floor(values.length / 2)];
      };
      results.push({
        name, throughput: median('throughput'), drain: median('drain'), p50: median('p50'), p99: median('p99'), coldP50: median('coldP50'), coldP99: median('coldP99'),
        drainWrites: median('drainWrites'),
        cpu_pipeline: median('cpu_pipeline'), cpu_postgres: median('cpu_postgres'), cpu_mosquitto: median('cpu_mosquitto'), cpu_bench: median('cpu_bench'),
        lightCpu_pipeline: median('lightCpu_pipeline'), lightCpu_postgres: median('lightCpu_postgres'),
        drainCpu_pipeline: median('drainCpu_pipeline'), drainCpu_postgres: median('drainCpu_postgres'), drainCpu_mosquitto: median('drainCpu_mosquitto'),
      });
    }
    if (ONLY || process.env.EXS_BENCH_PHASES) return;
    const text = report(results);
    console.log(`\n${text}`);
    fs.writeFileSync(path.join(__dirname, 'RESULTS.md'), text);
  } finally {
    // EXS's record states of the benchmark's jobs.
    await db.query(`DELETE FROM "EXS_SYNC_STATE" WHERE job_id LIKE 'Bench_bench_${run}%'`).catch(() => undefined);
    await publisher.endAsync().catch(() => undefined);
    await db.close().catch(() => undefined);
    await broker.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
