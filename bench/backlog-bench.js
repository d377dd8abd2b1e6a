#!/usr/bin/env node
// The backlog benchmark: events keep arriving while the destination is down. `exs run` takes
// them from its own Mosquitto (persistence on, unlimited queue) into its journal and pauses; we
// record the runtime's resident memory and the journal's disk use as the backlog grows, then
// bring the database back and measure how fast the backlog drains.
//
//   npm run build && node bench/backlog-bench.js [events=200000] [keys=1000]
//
// Writes bench/results/backlog-<events>.md (backlog-<events>-newest_per_record.md with EXS_BENCH_BACKLOG). Needs PostgreSQL on 127.0.0.1:5432 (database test, user
// postgres) and the Mosquitto binary; starts its own broker and a TCP proxy, touches no service.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const mqtt = require('mqtt');
const odbc = require('odbc');
const { startMosquitto } = require('../dist/test/support/mosquitto-instance.js');
const { startTcpProxy } = require('../dist/test/support/tcp-proxy.js');
const { startExsRun } = require('../dist/test/support/exs-process.js');

const EVENTS = Number(process.argv[2] ?? 200_000);
const KEYS = Number(process.argv[3] ?? 1000);
// EXS_BENCH_BACKLOG=newest_per_record: the job writes each record's newest event of the backlog only.
const BACKLOG = process.env.EXS_BENCH_BACKLOG ?? 'every_event';
const SAMPLE_AT = [1_000, 10_000, 100_000, 300_000, 1_000_000].filter((n) => n <= EVENTS);
const PG = (port) => `DRIVER={PostgreSQL Unicode};SERVER=127.0.0.1;PORT=${port};DATABASE=test;UID=postgres;PWD=;CommLog=0;Debug=0`;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function rssMiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 1024;
}

function diskMiB(dir) {
  let bytes = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    bytes += entry.isDirectory() ? diskMiB(full) * 1024 * 1024 : fs.statSync(full).size;
  }
  return bytes / 1024 / 1024;
}

async function jobState(run, job) {
  const response = await fetch(`${run.adminUrl}/exs/jobs/${job}`);
  return response.json();
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exs-backlog-'));
  const job = `Backlog_${Date.now().toString(36)}`;
  const table = `EXS_BACKLOG_${Date.now().toString(36)}`.toUpperCase();
  const broker = await startMosquitto({ extraConfig: ['max_inflight_messages 1000'] });
  const proxy = await startTcpProxy({ targetPort: 5432 });
  const direct = await odbc.connect(PG(5432));
  // As autovacuum would (it is off on this machine): no dead rows of earlier runs, and statistics.
  // (On a new database EXS creates the table at its first open: nothing to vacuum yet.)
  const [stateTable] = await direct.query(`SELECT to_regclass('"EXS_SYNC_STATE"') IS NOT NULL AS present`);
  if (['1', 'true'].includes(String(stateTable?.present))) {
    await direct.query('VACUUM ANALYZE "EXS_SYNC_STATE"').catch((err) => console.error(`no VACUUM ANALYZE of EXS_SYNC_STATE (${err.message}): plans may be made without statistics`));
  }
  await direct.query(`CREATE TABLE ${table} (PERMIT_ID VARCHAR(20) PRIMARY KEY, PERMIT_STAT VARCHAR(20), LAST_CHG_TS TIMESTAMP(6))`);
  const contract = path.join(dir, `${job}.sync.yaml`);
  fs.writeFileSync(contract, `id: ${job}
source_topic: bench.permits
mqtt_topic: bench/${job}
destination: PostgreSQL
connector: "odbc:${PG(proxy.port)}"
table: ${table}
key: HMS:permit_id -> COBOL:PERMIT_ID
mapping:
  HMS:status -> COBOL:PERMIT_STAT
  HMS:updated_at -> COBOL:LAST_CHG_TS
broker: ${broker.url}
retry_policy:
  max_attempts: 3
  backoff_seconds: 1
backlog: ${BACKLOG}
`);
  const userDir = path.join(dir, 'userdir');
  const run = await startExsRun([contract], userDir, [], {
    env: { EXS_INSTANCE: 'bench', EXS_DATA_DIR: undefined },
    // EXS_BENCH_NODE_ARGS="--trace-gc" (say) for the runtime; EXS_BENCH_DEBUG=1 keeps its output in the temp folder.
    nodeArgs: process.env.EXS_BENCH_NODE_ARGS?.split(' ').filter(Boolean),
  });
  const pid = run.child.pid;
  const journalDir = path.join(userDir, 'exs', job, 'journal');
  const rows = [];
  const cleanup = async () => {
    await run.stop().catch(() => undefined);
    if (process.env.EXS_BENCH_DEBUG) fs.writeFileSync(path.join(os.tmpdir(), `exs-backlog-${job}.log`), run.output());
    await direct.query(`DROP TABLE IF EXISTS ${table}`).catch(() => undefined);
    await direct.query(`DELETE FROM "EXS_SYNC_STATE" WHERE job_id = '${job}'`).catch(() => undefined);
    await direct.close().catch(() => undefined);
    await proxy.close();
    await broker.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    // The destination goes down before the first event.
    proxy.cut();
    await sleep(1000);
    const publisher = await mqtt.connectAsync(broker.url, { clientId: 'exs-backlog-publisher' });
    const base = Date.parse('2026-01-01T00:00:00Z');
    let published = 0;
    const publishedAt = Date.now();
    for (const target of SAMPLE_AT.concat(SAMPLE_AT.includes(EVENTS) ? [] : [EVENTS])) {
      const batch = [];
      for (; published < target; published++) {
        const event = { permit_id: `P-${published % KEYS}`, status: `S${published}`, updated_at: new Date(base + published).toISOString() };
        batch.push(publisher.publishAsync(`bench/${job}`, JSON.stringify(event), { qos: 1 }));
        if (batch.length >= 2000) await Promise.all(batch.splice(0));
      }
      await Promise.all(batch);
      // Wait until the runtime has journaled everything published so far.
      for (;;) {
        const state = await jobState(run, job);
        if (state.depth >= target) break;
        await sleep(200);
      }
      const row = { backlog: target, rssMiB: rssMiB(pid), journalMiB: diskMiB(journalDir) };
      rows.push(row);
      console.log(`backlog ${target}: RSS ${row.rssMiB.toFixed(1)} MiB, journal ${row.journalMiB.toFixed(1)} MiB`);
      if (process.env.EXS_BENCH_DEBUG) console.log(run.output().split('\n').filter((line) => /Mark-Compact|Scavenge/.test(line)).slice(-1)[0]);
    }
    const intakeSeconds = (Date.now() - publishedAt) / 1000;
    await publisher.endAsync();

    // The destination comes back. The paused job notices at its next probe (backoff from the
    // contract's retry_policy); the drain is timed from the first event it settles.
    proxy.restore();
    const restoredAt = Date.now();
    let drainStarted;
    let peakRss = 0;
    for (;;) {
      const state = await jobState(run, job);
      peakRss = Math.max(peakRss, rssMiB(pid));
      if (drainStarted === undefined && state.depth < EVENTS) drainStarted = Date.now();
      if (state.depth === 0) break;
      await sleep(drainStarted === undefined ? 20 : 250);
    }
    const probeSeconds = (drainStarted - restoredAt) / 1000;
    const drainSeconds = (Date.now() - drainStarted) / 1000;
    const [{ n }] = await direct.query(`SELECT COUNT(*) AS n FROM ${table}`);
    const first = rows[0];
    const last = rows[rows.length - 1];
    const report = [
      `# Backlog benchmark`,
      '',
      `${new Date().toISOString()} on ${os.cpus().length} x ${os.cpus()[0].model}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}.`,
      `${EVENTS} events over ${KEYS} keys published to a private Mosquitto while PostgreSQL (through a TCP proxy) was cut;`,
      `\`exs run\` journaled them (intake ${(EVENTS / intakeSeconds).toFixed(0)} ev/s, each acknowledged only once on disk), then the database came back.`,
      `The job's \`backlog\`: \`${BACKLOG}\`${BACKLOG === 'every_event' ? ' (the default)' : ''}.`,
      '',
      '| backlog | runtime RSS MiB | journal on disk MiB |',
      '|---|---|---|',
      ...rows.map((r) => `| ${r.backlog} | ${r.rssMiB.toFixed(1)} | ${r.journalMiB.toFixed(1)} |`),
      '',
      `RSS with ${last.backlog} queued is ${(last.rssMiB / first.rssMiB).toFixed(2)}x that with ${first.backlog}.`,
      `The paused job found the database back at its next probe, ${probeSeconds.toFixed(1)} s after it returned.`,
      `Drain from then on: ${EVENTS} events in ${drainSeconds.toFixed(1)} s = ${(EVENTS / drainSeconds).toFixed(0)} ev/s (peak RSS ${peakRss.toFixed(1)} MiB); ${n} rows (one per key).`,
      `Journal after the drain: ${diskMiB(journalDir).toFixed(1)} MiB (settled segments are deleted; the current one stays).`,
      '',
    ].join('\n');
    console.log('\n' + report);
    fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
    fs.writeFileSync(path.join(__dirname, 'results', `backlog-${EVENTS}${BACKLOG === 'every_event' ? '' : `-${BACKLOG}`}.md`), report);
  } finally {
    await cleanup();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
