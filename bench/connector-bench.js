#!/usr/bin/env node
// The ODBC connector alone on PostgreSQL: the CPU this process spends per record (conflict law,
// state texts and fingerprints, timestamps, JSON, node-odbc) and the records written per second,
// for batches of a few sizes. A steadier yardstick for connector work than the full pipeline on a
// shared machine: it has no broker, no Node-RED and no publisher competing for the two cores.
//
//   node bench/connector-bench.js [RECORDS] [KEYS]      (default 20000 records over 1000 keys)
//
// Every record carries a newer LAST_CHG_TS than the last of its key, under LAST_WRITE_WINS, so each
// one is decided, written and its state saved, as in the sync benchmark. Needs PostgreSQL on
// 127.0.0.1:5432 (database test, user postgres) and `npm run build` first. Prints one line per
// batch size and writes bench/results/connector.md; EXS_BENCH_BATCHES="1,100,500" picks the sizes,
// EXS_BENCH_RUNS=3 repeats each (alternating sizes, medians shown), as this machine's speed drifts
// within minutes. Each size is measured through both write paths (see the results file);
// EXS_BENCH_PATHS=locked picks one.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const odbc = require('odbc');
const { OdbcConnector } = require('../dist/nodes/core/connectors/odbc-connector.js');
const { sourceVersionOf } = require('../dist/nodes/core/conflict.js');

const RECORDS = Number(process.argv[2] ?? 20_000);
const KEYS = Number(process.argv[3] ?? 1000);
const BATCHES = (process.env.EXS_BENCH_BATCHES ?? '1,100,500').split(',').map(Number);
const RUNS = Math.max(1, Number(process.env.EXS_BENCH_RUNS ?? 1));
const PG = 'DRIVER={PostgreSQL Unicode};SERVER=127.0.0.1;PORT=5432;DATABASE=test;UID=postgres;PWD=;CommLog=0;Debug=0';
const POLICY = { rule: 'LAST_WRITE_WINS', timestampColumn: 'LAST_CHG_TS' };
const START = Date.parse('2026-01-01T00:00:00Z');

function record(i) {
  const updatedAt = new Date(START + i * 1000).toISOString();
  const row = { PERMIT_ID: `P-${i % KEYS}`, PERMIT_STAT: `S${i % 7}`, LAST_CHG_TS: updatedAt, SEQ: i };
  return { record: { keyColumn: 'PERMIT_ID', keyValue: row.PERMIT_ID, row, version: sourceVersionOf(updatedAt) ?? null }, policy: POLICY };
}

/** Writes RECORDS records in batches of `size` (distinct keys in each); CPU and wall time per record. */
async function measure(size, round, known) {
  const table = `exs_conn_bench_${process.pid}_${size}_${round}_${known ?? 'k'}`;
  const db = await odbc.connect(PG);
  // As autovacuum would (it is off on this machine): no dead rows of earlier runs, and statistics.
  // (On a new database EXS creates the table at its first open: nothing to vacuum yet.)
  const [stateTable] = await db.query(`SELECT to_regclass('"EXS_SYNC_STATE"') IS NOT NULL AS present`);
  if (['1', 'true'].includes(String(stateTable?.present))) {
    await db.query('VACUUM ANALYZE "EXS_SYNC_STATE"').catch((err) => console.error(`no VACUUM ANALYZE of EXS_SYNC_STATE (${err.message}): plans may be made without statistics`));
  }
  await db.query(`CREATE TABLE ${table} (PERMIT_ID varchar(20) PRIMARY KEY, PERMIT_STAT varchar(20), LAST_CHG_TS timestamp(6), SEQ integer)`);
  const connector = new OdbcConnector({ connectionString: PG, jobId: table, table, keyColumn: 'PERMIT_ID', columns: ['PERMIT_STAT', 'LAST_CHG_TS', 'SEQ'], poolSize: 2, knownRecords: known });
  try {
    await connector.open();
    // Warm-up (JIT, the state rows of every key): not counted.
    for (let at = 0; at < KEYS; at += Math.min(size, KEYS)) {
      await connector.applyBatch(Array.from({ length: Math.min(size, KEYS - at) }, (_, j) => record(at + j)));
    }
    const cpu = process.cpuUsage();
    const postgresBefore = postgresCpuSeconds();
    const began = process.hrtime.bigint();
    let applied = 0;
    for (let at = KEYS; at < KEYS + RECORDS; ) {
      // A batch holds one record per key: at most KEYS records.
      const batch = Array.from({ length: Math.min(size, KEYS + RECORDS - at, KEYS) }, (_, j) => record(at + j));
      at += batch.length;
      const results = await connector.applyBatch(batch);
      applied += results.filter((r) => r.result?.outcome === 'applied').length;
    }
    const wallMs = Number(process.hrtime.bigint() - began) / 1e6;
    const used = process.cpuUsage(cpu);
    const postgresMicros = ((postgresCpuSeconds() - postgresBefore) * 1e6) / RECORDS;
    if (applied !== RECORDS) throw new Error(`${table}: ${applied} of ${RECORDS} records applied`);
    return { size, cpuMicros: (used.user + used.system) / RECORDS, postgresMicros, perSecond: RECORDS / (wallMs / 1000) };
  } finally {
    await connector.close();
    await db.query(`DROP TABLE IF EXISTS ${table}`);
    await db.query(`DELETE FROM "EXS_SYNC_STATE" WHERE job_id = '${table}'`);
    await db.close();
  }
}

/** CPU seconds of every process named postgres so far (the server's backends included). */
function postgresCpuSeconds() {
  let ticks = 0;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) !== 'postgres') continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
    } catch {
      // gone meanwhile
    }
  }
  return ticks / 100;
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function main() {
  // Each size through both paths, alternating: the checked one-statement write of records the
  // connector wrote last (the default), and the locked transaction alone (knownRecords 0).
  // EXS_BENCH_PATHS=locked (or "one statement") measures one of them.
  const modes = [['one statement', undefined], ['locked', 0]].filter(([mode]) => !process.env.EXS_BENCH_PATHS || process.env.EXS_BENCH_PATHS.split(',').includes(mode));
  const results = new Map(BATCHES.flatMap((size) => modes.map(([mode]) => [`${size} ${mode}`, []])));
  for (let round = 0; round < RUNS; round++) {
    for (const size of BATCHES) for (const [mode, known] of modes) results.get(`${size} ${mode}`).push(await measure(size, round, known));
  }
  console.log(`${RECORDS} records over ${KEYS} keys, Node ${process.version}${RUNS > 1 ? `, medians of ${RUNS} runs` : ''}`);
  const lines = [];
  for (const [name, runs] of results) {
    const [size, ...mode] = name.split(' ');
    const cpu = median(runs.map((r) => r.cpuMicros));
    const postgres = median(runs.map((r) => r.postgresMicros));
    const rate = median(runs.map((r) => r.perSecond));
    console.log(`batches of ${size.padStart(3)}, ${mode.join(' ').padEnd(13)}: ${cpu.toFixed(1).padStart(7)} µs CPU per record, PostgreSQL ${postgres.toFixed(1).padStart(6)} µs, ${rate.toFixed(0).padStart(6)} records/s`);
    lines.push(`| ${size} | ${mode.join(' ')} | ${cpu.toFixed(1)} | ${postgres.toFixed(1)} | ${rate.toFixed(0)} |`);
  }
  const cpus = os.cpus();
  const file = path.join(__dirname, 'results', 'connector.md');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, [
    '# ODBC connector alone (PostgreSQL)',
    '',
    `${new Date().toISOString()} on ${cpus.length} x ${cpus[0]?.model.replace(/\s+/g, ' ').trim()}, Node ${process.version}, psqlODBC.`,
    `${RECORDS} records over ${KEYS} keys, LAST_WRITE_WINS, every record newer than its key's last${RUNS > 1 ? `; medians of ${RUNS} runs` : ''}.`,
    'CPU is this process\'s, all threads (node-odbc and psqlODBC run on the thread pool), and the PostgreSQL server\'s.',
    '"one statement": records the connector wrote last, written in one checked statement (the default; on this plain table without a transaction);',
    '"locked": the locked transaction alone (lock, upsert, state save, commit), as with `knownRecords: 0`.',
    '',
    '| batch size | path | µs CPU per record | PostgreSQL µs per record | records/s |',
    '|---|---|---|---|---|',
    ...lines,
    '',
    `Reproduce: \`${RUNS > 1 ? `EXS_BENCH_RUNS=${RUNS} ` : ''}${process.env.EXS_BENCH_BATCHES ? `EXS_BENCH_BATCHES=${BATCHES.join(',')} ` : ''}node bench/connector-bench.js ${RECORDS} ${KEYS}\` (after \`npm run build\`).`,
    '',
  ].join('\n'));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
