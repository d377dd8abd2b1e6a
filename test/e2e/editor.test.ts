// The analyst's editor, end to end in a real browser: Debian's Chromium driven by playwright-core
// against `exs run` serving the Node-RED editor, with Mosquitto and SQLite through its ODBC driver
// behind it. Screenshots for README land in docs/.
import { after, describe, it, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as mqtt from 'mqtt';
import type { Browser, Page } from 'playwright-core';
import { MQTT_URL, needService, sqlQuery, sqliteConn, tempDir } from '../support/services';
import { startExsRun, type ExsRun } from '../support/exs-process';
import { launchBrowser, needChromium, openEditor, screenshot } from '../support/browser';
import { waitFor } from '../support/wait';

// Node-RED checks adminAuth passwords with bcryptjs: hash with the copy it uses.
const nodeRedModule = process.env.EXS_NODE_RED ?? 'node-red';
// eslint-disable-next-line @typescript-eslint/no-var-requires
const bcrypt = require(require.resolve('bcryptjs', { paths: [path.dirname(require.resolve(nodeRedModule))] }));

interface Stage {
  browser: Browser;
  run: ExsRun;
  dir: string;
  db: string;
  jobId: string;
  topic: string;
  contractFile: string;
}

const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e5).toString(36)}`;
let staged: Promise<Stage> | undefined;
const cleanups: Array<() => Promise<unknown>> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

/** One runtime and one browser for the suite: a job syncing permits into SQLite, editor on. */
function stage(): Promise<Stage> {
  staged ??= (async () => {
    const dir = tempDir('e2e-editor');
    const db = path.join(dir, 'mainframe.db');
    await sqlQuery(sqliteConn(db), 'CREATE TABLE PERMIT_TABLE (PERMIT_ID VARCHAR(20) PRIMARY KEY, PERMIT_STAT VARCHAR(12), LAST_CHG_TS TIMESTAMP)');
    const jobId = `Editor_Job_${suffix}`;
    const topic = `exs-e2e/${suffix}/permits`;
    const contractFile = path.join(dir, `${jobId}.sync.yaml`);
    fs.writeFileSync(contractFile, contract(jobId, topic, db));
    const browser = await launchBrowser();
    cleanups.push(() => browser.close());
    const run = await startExsRun([contractFile], path.join(dir, 'userdir'), [], { editor: true });
    cleanups.push(() => run.stop());
    return { browser, run, dir, db, jobId, topic, contractFile };
  })();
  return staged;
}

function contract(jobId: string, topic: string, db: string, extra = ''): string {
  return `id: ${jobId}
source_topic: permits.status
mqtt_topic: ${topic}
destination: COBOL_Mainframe
connector: "odbc:${sqliteConn(db)}"
table: PERMIT_TABLE
key: HMS:permit_id -> COBOL:PERMIT_ID
mapping:
  HMS:status     -> COBOL:PERMIT_STAT
  HMS:updated_at -> COBOL:LAST_CHG_TS
broker: ${MQTT_URL}
retry_policy:
  max_attempts: 1
${extra}`;
}

async function ready(t: TestContext): Promise<Stage | undefined> {
  if (!(await needChromium(t))) return undefined;
  if (!(await needService(t, 'mosquitto'))) return undefined;
  if (!(await needService(t, 'sqlite-odbc'))) return undefined;
  return stage();
}

async function editor(t: TestContext, s: Stage): Promise<Page> {
  const errors: string[] = [];
  const page = await openEditor(s.browser, `${s.run.adminUrl}/`, errors);
  t.after(async () => {
    await page.close();
    assert.deepEqual(errors, [], 'no script error in the editor');
  });
  return page;
}

/** Publishes until the job has logged an entry for this key: the subscription may still be settling. */
async function publishUntilLogged(s: Stage, event: Record<string, unknown>): Promise<void> {
  const client = await mqtt.connectAsync(MQTT_URL);
  try {
    await waitFor(`the change log to show ${String(event.permit_id)}`, async () => {
      const log = await (await fetch(`${s.run.adminUrl}/exs/jobs/${s.jobId}/log?last=50`)).json() as Array<{ key: unknown }>;
      if (log.some((e) => e.key === event.permit_id)) return true;
      await client.publishAsync(s.topic, JSON.stringify(event), { qos: 1 });
      return undefined;
    }, { intervalMs: 1000, timeoutMs: 30_000 });
  } finally {
    await client.endAsync();
  }
}

describe('the EXS editor in Chromium', () => {
  it('shows the EXS nodes in their own palette category, each with help in the sidebar', async (t) => {
    const s = await ready(t);
    if (!s) return;
    const page = await editor(t, s);
    const palette = await page.$$eval('#red-ui-palette-container-EXS .red-ui-palette-node', (nodes) => nodes.map((n) => n.getAttribute('data-palette-type')));
    for (const type of ['exs-source', 'exs-sync-queue', 'exs-mapper', 'exs-conflict-resolver', 'exs-connector', 'exs-mqtt-connector', 'exs-change-log']) {
      assert.ok(palette.includes(type), `${type} is in the EXS category (${palette.join(', ')})`);
    }
    for (const [type, firstWords] of [['exs-mapper', 'Turns an HMS event into a legacy row'], ['exs-conflict-resolver', 'Decides who wins'], ['exs-change-log', '']] as const) {
      await page.evaluate((nodeType) => (globalThis as any).RED.sidebar.help.show(nodeType), type);
      const help = await page.locator('.red-ui-sidebar-help-stack').innerText();
      assert.match(help, /Inputs|Details/, `${type} has help with its sections`);
      if (firstWords) assert.ok(help.includes(firstWords), `${type}'s help starts with its summary`);
    }
    await page.evaluate(() => (globalThis as any).RED.sidebar.help.show('exs-mapper'));
    await screenshot(page, 'palette.png');
  });

  it('imports a sync.yaml through the editor as a wired tab, and shows a broken one\'s LINE:COL errors', async (t) => {
    const s = await ready(t);
    if (!s) return;
    const page = await editor(t, s);
    // From the main menu the first time, from the sidebar after.
    await page.click('#red-ui-header-button-sidemenu');
    await page.click('#exs-menu-import');
    await page.fill('#exs-import-yaml', [
      `id: Broken_${suffix}`, 'source_topic: permits.status', 'destination: COBOL_Mainframe', 'connector: odbc://MAINFRAME',
      'mapping:', '  - HMS:status -> COBOL:PERMIT_STAT | uppr', 'schedul: nightly', '',
    ].join('\n'));
    await page.click('#exs-import-button');
    await page.waitForSelector('#exs-import-problems li.exs-problem-error');
    const problems = await page.$$eval('#exs-import-problems li.exs-problem-error', (items) => items.map((i) => i.textContent));
    assert.deepEqual(problems, [
      "sync.yaml:6:39: unknown transform 'uppr' (did you mean 'upper'?)",
      "sync.yaml:7:1: unknown key 'schedul' (did you mean 'schedule'?)",
    ]);
    await screenshot(page, 'import-dialog.png');

    const jobId = `Imported_${suffix}`;
    await page.fill('#exs-import-yaml', contract(jobId, `exs-e2e/${suffix}/imported`, s.db));
    await page.click('#exs-import-button');
    await page.waitForSelector('#exs-import-dialog', { state: 'detached', timeout: 5000 }).catch(async (err) => {
      await page.screenshot({ path: '/tmp/e2e-fail.png' });
      console.log(await page.$$eval('#exs-import-problems li', (l) => l.map((x) => x.textContent)));
      throw err;
    });
    const tab = await page.evaluate((label) => {
      const red = (globalThis as any).RED;
      let found: any;
      red.nodes.eachWorkspace((w: any) => { if (w.label === label) found = w; });
      if (!found) return undefined;
      const nodes: any[] = [];
      red.nodes.eachNode((n: any) => {
        if (n.z !== found.id) return;
        const targets = red.nodes.filterLinks({ source: n }).map((link: any) => link.target.id);
        nodes.push({ id: n.id, type: n.type, targets });
      });
      return { id: found.id, active: red.workspaces.active() === found.id, nodes };
    }, jobId);
    assert.ok(tab, 'the job has a tab');
    assert.equal(tab.active, true, 'the new tab is shown');
    const byType = (type: string) => tab.nodes.find((n: any) => n.type === type);
    const chain = ['exs-source', 'exs-sync-queue', 'exs-mapper', 'exs-conflict-resolver', 'exs-connector', 'exs-change-log'];
    for (let i = 0; i < chain.length - 1; i++) {
      const from = byType(chain[i]);
      const to = byType(chain[i + 1]);
      assert.ok(from && to, `${chain[i]} and ${chain[i + 1]} are on the tab`);
      assert.ok(from.targets.includes(to.id), `${chain[i]} is wired to ${chain[i + 1]}`);
    }

    // Importing the same job again replaces its tab instead of adding a second one.
    await page.evaluate(() => (globalThis as any).RED.sidebar.show('exs'));
    await page.click('#exs-sidebar-import');
    await page.fill('#exs-import-yaml', contract(jobId, `exs-e2e/${suffix}/imported`, s.db, 'conflict_rule: LAST_WRITE_WINS\nchangelog_feed: batch\nbacklog: newest_per_record\n'));
    await page.click('#exs-import-button');
    await page.waitForSelector('#exs-import-dialog', { state: 'detached' });
    const again = await page.evaluate((label) => {
      const red = (globalThis as any).RED;
      const tabs: string[] = [];
      red.nodes.eachWorkspace((w: any) => { if (w.label === label) tabs.push(w.id); });
      let job: any;
      red.nodes.eachConfig((n: any) => { if (n.type === 'exs-job' && n.jobId === label) job = n; });
      return { tabs: tabs.length, rule: job?.conflict_rule, feed: job?.changelog_feed, backlog: job?.backlog, valid: job?.valid };
    }, jobId);
    assert.deepEqual(again, { tabs: 1, rule: 'LAST_WRITE_WINS', feed: 'batch', backlog: 'newest_per_record', valid: true });

    // A job saved before changelog_feed and backlog existed is valid as it is, and its dialog shows per entry and every event.
    const legacyValid = await page.evaluate(() => {
      const red = (globalThis as any).RED;
      red.nodes.import([{ id: 'e2e-legacy-job', type: 'exs-job', name: '', jobId: 'Legacy_Job', source_topic: 'permits.status', destination: 'D',
        schedule: 'realtime', conflict_rule: 'HMS_WINS', max_attempts: 5, backoff_seconds: 30, dead_letter: '', changelog: '' }]);
      const node = red.nodes.node('e2e-legacy-job');
      red.editor.editConfig('', 'exs-job', 'e2e-legacy-job');
      return node.valid;
    });
    assert.equal(legacyValid, true, 'the legacy job is valid');
    await page.waitForSelector('#node-config-input-changelog_feed', { state: 'visible' });
    assert.equal(await page.inputValue('#node-config-input-changelog_feed'), 'entry');
    assert.equal(await page.inputValue('#node-config-input-backlog'), 'every_event');
    await page.click('#node-config-dialog-cancel');
    await page.evaluate(() => {
      const red = (globalThis as any).RED;
      red.nodes.remove('e2e-legacy-job');
    });

    // And back to YAML from the editor.
    await page.click('#exs-sidebar-export');
    await page.waitForSelector('#exs-export-yaml');
    const yaml = await page.inputValue('#exs-export-yaml');
    assert.match(yaml, new RegExp(`^id: ${jobId}$`, 'm'));
    assert.match(yaml, /^conflict_rule: LAST_WRITE_WINS$/m);
    assert.match(yaml, /^changelog_feed: batch$/m);
    assert.match(yaml, /^backlog: newest_per_record$/m);
  });

  it('edits the mapping in the mapper\'s table, with inline errors, and the deploy changes what reaches the database', async (t) => {
    const s = await ready(t);
    if (!s) return;
    const page = await editor(t, s);
    await page.evaluate((jobId) => {
      const red = (globalThis as any).RED;
      let mapper: any;
      red.nodes.eachNode((n: any) => {
        if (n.type === 'exs-mapper' && red.nodes.node(n.job)?.jobId === jobId) mapper = n;
      });
      red.workspaces.show(mapper.z);
      red.editor.edit(mapper);
    }, s.jobId);
    const row = page.locator('#node-input-mapping-list li').filter({ has: page.locator('.exs-mapper-target') }).first();
    await row.locator('.exs-mapper-transforms').waitFor();
    assert.equal(await row.locator('.exs-mapper-target').inputValue(), 'PERMIT_STAT');
    // A typo is flagged on its row as it is typed, with the validator's own words.
    await row.locator('.exs-mapper-transforms').fill('uppr');
    await row.locator('.exs-mapper-rule-error').filter({ hasText: "unknown transform 'uppr' (did you mean 'upper'?)" }).waitFor({ timeout: 10_000 });
    await row.locator('.exs-mapper-transforms').fill('map(Approved=APPR, *=OTHR)');
    await page.waitForFunction(() => [...(globalThis as any).document.querySelectorAll('.exs-mapper-rule-error')].every((e: any) => !e.textContent || e.style.display === 'none'));
    await screenshot(page, 'mapper-dialog.png');
    await page.click('#node-dialog-ok');
    await page.click('#red-ui-header-button-deploy');
    await page.waitForFunction(() => !(globalThis as any).RED.nodes.dirty(), undefined, { timeout: 30_000 });

    const key = `M-${suffix}`;
    await publishUntilLogged(s, { permit_id: key, status: 'Approved', updated_at: new Date().toISOString() });
    const rows = await sqlQuery(sqliteConn(s.db), `SELECT PERMIT_STAT FROM PERMIT_TABLE WHERE PERMIT_ID = '${key}'`);
    assert.equal(rows[0]?.PERMIT_STAT, 'APPR', 'the deployed mapping translated the status');
  });

  it('shows a published event in the sidebar\'s change log as it happens', async (t) => {
    const s = await ready(t);
    if (!s) return;
    const page = await editor(t, s);
    await page.evaluate(() => (globalThis as any).RED.sidebar.show('exs'));
    await page.selectOption('#exs-sidebar-job', s.jobId);
    const key = `P-${suffix}`;
    await publishUntilLogged(s, { permit_id: key, status: 'Approved', updated_at: new Date().toISOString() });
    const entry = page.locator('#exs-sidebar-log .exs-log-entry', { hasText: key }).first();
    await entry.waitFor({ timeout: 15_000 });
    assert.match(await entry.innerText(), /applied/);
    const rows = await sqlQuery(sqliteConn(s.db), `SELECT PERMIT_ID FROM PERMIT_TABLE WHERE PERMIT_ID = '${key}'`);
    assert.equal(rows.length, 1, 'the event reached the database');

    // A malformed event lands among the dead letters, with its reason and a Replay button.
    const client = await mqtt.connectAsync(MQTT_URL);
    t.after(() => client.endAsync());
    await client.publishAsync(s.topic, `permit ${key} approved, not JSON`, { qos: 1 });
    const letter = page.locator('#exs-sidebar-dlq .exs-dlq-letter', { hasText: `permit ${key} approved` }).first();
    await letter.waitFor({ timeout: 15_000 });
    assert.match(await letter.innerText(), /not JSON/);
    await screenshot(page, 'sidebar.png');
    const replayed = page.waitForResponse((response) => response.url().endsWith('/dlq/replay') && response.status() === 200);
    await letter.locator('button', { hasText: 'Replay' }).click();
    const body = await (await replayed).json() as { replayed: number[] };
    assert.equal(body.replayed.length, 1, 'the letter went through the job again');
  });
});

describe('the EXS admin routes with adminAuth on', () => {
  it('refuses unauthenticated calls, and the editor asks to log in', async (t) => {
    if (!(await needChromium(t))) return;
    if (!(await needService(t, 'mosquitto'))) return;
    if (!(await needService(t, 'sqlite-odbc'))) return;
    const s = await stage();
    const dir = tempDir('e2e-auth');
    const settings = path.join(dir, 'settings.js');
    fs.writeFileSync(settings, `module.exports = { adminAuth: { type: 'credentials', users: [{ username: 'ops',
      password: ${JSON.stringify(bcrypt.hashSync('secret-password', 8))}, permissions: '*' }] } };\n`);
    // A job of its own: two runtimes must not share an MQTT client id.
    const jobId = `Auth_Job_${suffix}`;
    const contractFile = path.join(dir, `${jobId}.sync.yaml`);
    fs.writeFileSync(contractFile, contract(jobId, `exs-e2e/${suffix}/auth`, s.db));
    const run = await startExsRun([contractFile], path.join(dir, 'userdir'), ['--settings', settings], { editor: true, readyStatus: 401 });
    t.after(() => run.stop());
    for (const [method, route] of [['GET', 'exs/jobs'], ['POST', 'exs/contracts/convert'], ['POST', 'exs/contracts'], ['GET', `exs/jobs/${jobId}/conflicts`]]) {
      const response = await fetch(`${run.adminUrl}/${route}`, { method, headers: { 'content-type': 'application/json' }, body: method === 'POST' ? '{}' : undefined });
      assert.equal(response.status, 401, `${method} /${route} without a token`);
    }
    const page = await s.browser.newPage();
    t.after(() => page.close());
    await page.goto(`${run.adminUrl}/`);
    await page.waitForSelector('#node-dialog-login-fields, .red-ui-login-form, input[name=username]', { timeout: 30_000 });
  });
});
