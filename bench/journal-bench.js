#!/usr/bin/env node
// Journal append throughput: N appenders each awaiting its own append in a loop, so group
// commit shows as appends per fdatasync. Then the drain: read the backlog in pages and settle.
// Uses the compiled journal: `npx tsc -p tsconfig.json && node bench/journal-bench.js [seconds]`.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const v8 = require('v8');
const vm = require('vm');
const { SyncJournal } = require('../dist/nodes/core/journal/sync-journal.js');

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');

const SECONDS = Number(process.argv[2] ?? 3);
const PAYLOAD = Buffer.from(JSON.stringify({ key: 'PERMIT-000123', status: 'approved', updated_at: new Date().toISOString(), note: 'x'.repeat(100) }));
const TOPIC = 'hms/permits/PERMIT-000123';

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function appendRun(concurrency) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exs-journal-bench-'));
  const journal = await SyncJournal.open(dir);
  const latencies = [];
  const deadline = Date.now() + SECONDS * 1000;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < deadline) {
        const t0 = process.hrtime.bigint();
        await journal.append(TOPIC, PAYLOAD);
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }),
  );
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  const { appends, fdatasyncs } = journal.stats();
  latencies.sort((a, b) => a - b);
  const p50 = percentile(latencies, 50);
  const p99 = percentile(latencies, 99);
  latencies.length = 0; // measure the journal's heap, not the bench's
  gc();
  const heapMb = process.memoryUsage().heapUsed / 1048576;
  const row = {
    appenders: concurrency,
    'appends/s': Math.round(appends / elapsed),
    fdatasyncs,
    'appends/fdatasync': +(appends / fdatasyncs).toFixed(1),
    'p50 ms': +p50.toFixed(3),
    'p99 ms': +p99.toFixed(3),
    pending: journal.pendingCount(),
    'heap MB after': +heapMb.toFixed(1),
  };
  return { row, journal, dir };
}

async function drainRun(journal) {
  const backlog = journal.pendingCount();
  const started = process.hrtime.bigint();
  let after = 0;
  for (;;) {
    const page = await journal.readUnsettled(after, 1000);
    if (page.length === 0) break;
    for (const record of page) journal.settle(record.seq);
    after = page[page.length - 1].seq;
  }
  await journal.flushCheckpoint();
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  return { backlog, 'read+settle records/s': Math.round(backlog / elapsed), 'disk bytes after': journal.diskBytes() };
}

(async () => {
  console.log(`journal bench: ${PAYLOAD.length}-byte payloads, ${SECONDS}s per run, Node ${process.version}`);
  const rows = [];
  let last;
  for (const concurrency of [1, 16, 256]) {
    const run = await appendRun(concurrency);
    rows.push(run.row);
    if (concurrency === 256) last = run;
    else {
      await run.journal.close();
      fs.rmSync(run.dir, { recursive: true, force: true });
    }
  }
  console.table(rows);
  console.log('drain of the 256-appender backlog:');
  console.table([await drainRun(last.journal)]);
  await last.journal.close();
  fs.rmSync(last.dir, { recursive: true, force: true });
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
