#!/usr/bin/env node
// The held-flush memory benchmark: a held (hourly) job's journal holds one event for each of N
// records; a flush finds each record's newest and hands them out. Measures the heap the flush holds
// (in a run that forces a collection every 250 ms: live objects only), and the peak resident size
// and the time in a run left alone, in steps of the default size (100,000 records) and in one step
// for all records (how flushes worked before steps).
// The queue's dispatcher runs alone, on a real journal, each event settled as soon as it is out:
// no Node-RED, no database.
//
//   npm run build && node bench/held-flush-bench.js [records=800000]
//
// Writes bench/results/held-flush-<records>.md.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const v8 = require('v8');
const vm = require('vm');
const { SyncJournal } = require('../dist/nodes/core/journal/sync-journal.js');
const { SyncDispatcher } = require('../dist/nodes/core/queue/dispatcher.js');
const { execFileSync } = require('child_process');

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');
const RECORDS = Number(process.argv[2] ?? 800_000);
const MiB = 2 ** 20;

/** The job's identify(): key, version and columns, from the event's JSON. */
const identify = (record) => {
  const event = JSON.parse(record.payload.toString());
  return { key: event.permit_id, version: String(event.seq).padStart(10, '0'), columns: ['PERMIT_ID', 'PERMIT_STAT'] };
};

/** One flush; with `live`, the heap is sampled after a forced collection every 250 ms (which slows the flush down). */
async function flushOnce(flushRecords, live) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exs-held-flush-'));
  const journal = await SyncJournal.open(dir);
  for (let at = 0; at < RECORDS; at += 1000) {
    const count = Math.min(1000, RECORDS - at);
    await Promise.all(Array.from({ length: count }, (_, i) => journal.append('hms/permits', Buffer.from(JSON.stringify({ permit_id: `P-${at + i}`, status: 'Approved', seq: at + i })))));
  }
  gc();
  const before = process.memoryUsage();
  let heap = before.heapUsed;
  let rss = before.rss;
  const sample = setInterval(() => {
    if (live) gc();
    const now = process.memoryUsage();
    heap = Math.max(heap, now.heapUsed);
    rss = Math.max(rss, now.rss);
  }, live ? 250 : 50);
  let settled = 0;
  const dispatcher = new SyncDispatcher(journal, ({ record }) => setImmediate(() => { dispatcher.settled(record.seq, true); settled++; }), {
    retry: { max_attempts: 1, backoff_seconds: 0 }, schedule: 'hourly', identify, ...(flushRecords && { flushRecords }),
  });
  dispatcher.on('superseded', (record) => setImmediate(() => { dispatcher.settled(record.seq, false); settled++; }));
  const started = Date.now();
  dispatcher.start();
  await dispatcher.flush();
  while (settled < RECORDS) await new Promise((resolve) => setTimeout(resolve, 20));
  const seconds = (Date.now() - started) / 1000;
  clearInterval(sample);
  dispatcher.stop();
  await journal.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return { heapBefore: before.heapUsed / MiB, heap: heap / MiB, rssBefore: before.rss / MiB, rss: rss / MiB, seconds };
}

/** Each flush in a process of its own, so that none starts with what another left in memory. */
function flushInChild(flushRecords, live) {
  const out = execFileSync(process.execPath, [__filename, String(RECORDS), JSON.stringify({ flushRecords, live })], { encoding: 'utf8', maxBuffer: 1 << 20 });
  return JSON.parse(out.trim().split('\n').pop());
}

(async () => {
  if (process.argv[3]) {
    const { flushRecords, live } = JSON.parse(process.argv[3]);
    console.log(JSON.stringify(await flushOnce(flushRecords ?? undefined, live)));
    return;
  }
  const rows = [];
  for (const [name, flushRecords] of [['in steps of 100,000 records (the default)', null], ['in one step for all records', RECORDS]]) {
    const l = flushInChild(flushRecords, true);
    const r = flushInChild(flushRecords, false);
    console.log(`${name}: live heap ${l.heapBefore.toFixed(0)} -> ${l.heap.toFixed(0)} MiB; RSS ${r.rssBefore.toFixed(0)} -> ${r.rss.toFixed(0)} MiB, ${r.seconds.toFixed(1)} s`);
    rows.push(`| ${name} | ${l.heapBefore.toFixed(0)} -> ${l.heap.toFixed(0)} MiB | ${r.rssBefore.toFixed(0)} -> ${r.rss.toFixed(0)} MiB | ${r.seconds.toFixed(1)} s |`);
  }
  const cpu = os.cpus();
  const report = `# Held flush memory

${new Date().toISOString()} on ${cpu.length} x ${cpu[0].model.trim()}, Node ${process.version}.
A held job's journal holds one event for each of ${RECORDS.toLocaleString('en')} records; the flush finds each record's newest and hands
them out (the dispatcher alone, on a real journal; each event settled once out). Live heap: sampled after a forced collection
every 250 ms, in a run of its own; RSS (sampled every 50 ms) and time: in a run left alone. Each run in a process of its own.

| flush | live heap before -> peak | RSS before -> peak | time |
|---|---|---|---|
${rows.join('\n')}

Reproduce: \`node bench/held-flush-bench.js ${RECORDS}\` (after \`npm run build\`).
`;
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
  fs.writeFileSync(path.join(__dirname, 'results', `held-flush-${RECORDS}.md`), report);
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
