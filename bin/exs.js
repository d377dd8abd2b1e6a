#!/usr/bin/env node
'use strict';
// The `exs` command; the implementation is compiled from bin/cli.ts (npm run build).

// Before anything is loaded: no allocation-site pretenuring. Under a flood of events (a broker
// handing over a backlog at ~30,000 events/s) V8 decided the short-lived objects of an event's
// intake were long-lived and allocated them in the old generation, where they stayed as garbage
// until a full collection: resident memory grew with the backlog, 142 -> 248 MiB from 1,000 to
// 100,000 queued. Without it the same run held 156 MiB, and throughput did not drop
// (bench/backlog-bench.js, bench/sync-bench.js). EXS_V8_PRETENURING=1 leaves V8's default.
if (process.env.EXS_V8_PRETENURING !== '1') require('v8').setFlagsFromString('--no-allocation-site-pretenuring');
// Node 22's on-disk cache of compiled code (in the temp folder, or NODE_COMPILE_CACHE): a restart
// compiles Node-RED's and EXS's modules again only when they changed. `exs run` came up in about
// 1 s before, a backlog waiting meanwhile. Node 20 has no such cache.
const { enableCompileCache } = require('node:module');
if (typeof enableCompileCache === 'function' && process.env.EXS_COMPILE_CACHE !== '0') enableCompileCache();
// Before mqtt.js loads: its logging calls allocate even when switched off (see quiet-debug.ts).
require('../dist/bin/quiet-debug.js').quietDebugUnlessAsked();
const { main } = require('../dist/bin/cli.js');

const io = { out: (text) => process.stdout.write(text + '\n'), err: (text) => process.stderr.write(text + '\n') };
main(process.argv.slice(2), io).then((code) => process.exit(code));
