// The change-log admin route behind Node-RED's adminAuth, for real: `exs run --settings FILE`
// with a credentials user, the route refusing anonymous callers, a token from /auth/token
// opening it, and `exs log --token` reading it. Also under a moved httpAdminRoot.
import { describe, it, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as mqtt from 'mqtt';
import { MQTT_URL, needService, tempDir } from '../support/services';
import { exsSync, startExsRun, type ExsRun } from '../support/exs-process';
import { waitFor } from '../support/wait';

const nodeRedModule = process.env.EXS_NODE_RED ?? 'node-red';
// Node-RED checks adminAuth passwords with bcryptjs: hash the test passwords with the same copy.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const bcrypt = require(require.resolve('bcryptjs', { paths: [path.dirname(require.resolve(nodeRedModule))] }));

interface User {
  username: string;
  password: string;
  /** The user's permissions, which is also the widest scope a token may ask for. */
  scope: string;
}

const ADMIN: User = { username: 'ops', password: 'correct horse battery staple', scope: '*' };
const VIEWER: User = { username: 'viewer', password: 'read only please', scope: 'read' };

interface Started {
  run: ExsRun;
  jobId: string;
}

/**
 * `exs run` of a one-contract job (MQTT in, MQTT connector out, so only Mosquitto is needed)
 * with adminAuth on, and one event already in its change log.
 */
async function startWithAdminAuth(t: TestContext, extraSettings: Record<string, unknown> = {}): Promise<Started> {
  const dir = tempDir('auth');
  const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  const jobId = `AUTH_${suffix}`;
  const topic = `exs-test/${suffix}/permits`;
  const changelogTopic = `exs-test/${suffix}/changelog`;
  const contractFile = path.join(dir, `${jobId}.sync.yaml`);
  fs.writeFileSync(contractFile, `id: ${jobId}
source_topic: permits.status
mqtt_topic: ${topic}
destination: SMS_Tracker
connector: ${MQTT_URL}/exs-test/${suffix}/sms/{key}
key: HMS:permit_id -> SMS:PERMIT_ID
mapping:
  HMS:status -> SMS:STATUS_CODE | map(Approved=APPR, *=OTHR)
broker: ${MQTT_URL}
changelog: ${changelogTopic}
`);
  const settings = {
    ...extraSettings,
    adminAuth: {
      type: 'credentials',
      users: [
        ...[ADMIN, VIEWER].map((user) => ({ username: user.username, password: bcrypt.hashSync(user.password, 8), permissions: user.scope })),
      ],
    },
  };
  const settingsFile = path.join(dir, 'settings.js');
  fs.writeFileSync(settingsFile, `module.exports = ${JSON.stringify(settings, null, 2)};\n`);

  const client = await mqtt.connectAsync(MQTT_URL);
  t.after(() => client.endAsync());
  const logged: any[] = [];
  await client.subscribeAsync(changelogTopic, { qos: 1 });
  client.on('message', (_topic, payload) => logged.push(JSON.parse(payload.toString())));

  const adminRoot = typeof extraSettings.httpAdminRoot === 'string' ? extraSettings.httpAdminRoot : undefined;
  // GET /settings needs a login too once adminAuth is on: 401 means the admin API is up.
  const run = await startExsRun([contractFile], path.join(dir, 'userdir'), ['--settings', settingsFile], { adminRoot, readyStatus: 401 });
  t.after(() => run.stop());

  // The flow's subscription is not persistent (clean session): publish until one event is logged.
  await waitFor('an entry in the change log', () => {
    if (logged.length > 0) return true;
    void client.publishAsync(topic, JSON.stringify({ permit_id: 'P-1', status: 'Approved' }), { qos: 1 });
    return undefined;
  });
  return { run, jobId };
}

/** POST /auth/token, as the editor and node-red-admin log in. */
async function getToken(adminUrl: string, user: User): Promise<Response> {
  return fetch(`${adminUrl}/auth/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: 'node-red-admin', grant_type: 'password', scope: user.scope, username: user.username, password: user.password }),
  });
}

async function tokenFor(adminUrl: string, user: User): Promise<string> {
  const response = await getToken(adminUrl, user);
  assert.equal(response.status, 200, `POST ${adminUrl}/auth/token as ${user.username}`);
  const body = (await response.json()) as { access_token?: string; token_type?: string };
  assert.equal(body.token_type, 'Bearer');
  assert.ok(body.access_token, 'the answer carries an access token');
  return body.access_token;
}

function logUrl(adminUrl: string, jobId: string): string {
  return `${adminUrl}/exs/jobs/${jobId}/log?last=5`;
}

describe('exs run with Node-RED adminAuth', () => {
  it('the change-log route needs a token; exs log --token reads it, without one it fails readably', { timeout: 120_000 }, async (t) => {
    if (!(await needService(t, 'mosquitto'))) return;
    const { run, jobId } = await startWithAdminAuth(t);

    const anonymous = await fetch(logUrl(run.adminUrl, jobId));
    assert.equal(anonymous.status, 401, 'no token: refused');
    const forged = await fetch(logUrl(run.adminUrl, jobId), { headers: { Authorization: 'Bearer not-a-token' } });
    assert.equal(forged.status, 401, 'a made-up token: refused');
    const wrongPassword = await getToken(run.adminUrl, { ...ADMIN, password: 'guess' });
    assert.ok(wrongPassword.status >= 400 && wrongPassword.status < 500, `a wrong password gets no token (HTTP ${wrongPassword.status})`);

    const token = await tokenFor(run.adminUrl, ADMIN);
    const authorized = await fetch(logUrl(run.adminUrl, jobId), { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(authorized.status, 200);
    const entries = (await authorized.json()) as any[];
    assert.ok(entries.length >= 1);
    assert.equal(entries[entries.length - 1].key, 'P-1');
    assert.equal(entries[entries.length - 1].outcome, 'applied');

    // exs.read is a read permission: a user limited to 'read' sees the log too.
    const viewerToken = await tokenFor(run.adminUrl, VIEWER);
    const asViewer = await fetch(logUrl(run.adminUrl, jobId), { headers: { Authorization: `Bearer ${viewerToken}` } });
    assert.equal(asViewer.status, 200, 'a read-only user reads the change log');

    // EXS_TOKEN is emptied so a token in the caller's environment cannot make this pass.
    const withToken = exsSync(['log', jobId, '--url', run.adminUrl, '--token', token], { EXS_TOKEN: '' });
    assert.equal(withToken.status, 0, withToken.stderr);
    assert.match(withToken.stdout, /\sP-1\s+applied \(OK\)/);

    const fromEnv = exsSync(['log', jobId, '--url', run.adminUrl], { EXS_TOKEN: token });
    assert.equal(fromEnv.status, 0, fromEnv.stderr);
    assert.match(fromEnv.stdout, /\sP-1\s+applied \(OK\)/, 'EXS_TOKEN stands in for --token');

    const withoutToken = exsSync(['log', jobId, '--url', run.adminUrl], { EXS_TOKEN: '' });
    assert.equal(withoutToken.status, 1, 'a refused request is a usage error (exit 1)');
    assert.equal(withoutToken.stdout, '');
    assert.match(withoutToken.stderr, /HTTP 401/, 'the message names the refusal');
    assert.match(withoutToken.stderr, /--token/, 'and says how to get past it');
    assert.ok(withoutToken.stderr.includes(`/exs/jobs/${jobId}/log`), 'the message names the URL asked');
    assert.doesNotMatch(withoutToken.stderr, /^\s+at /m, 'a message for people, not a stack trace');

    assert.equal(await run.stop(), 0);
  });

  it("serves the change log under a moved httpAdminRoot ('/admin')", { timeout: 120_000 }, async (t) => {
    if (!(await needService(t, 'mosquitto'))) return;
    const { run, jobId } = await startWithAdminAuth(t, { httpAdminRoot: '/admin' });
    assert.match(run.adminUrl, /\/admin$/);
    const root = run.adminUrl.replace(/\/admin$/, '');

    const token = await tokenFor(run.adminUrl, ADMIN);
    const headers = { Authorization: `Bearer ${token}` };
    const moved = await fetch(logUrl(run.adminUrl, jobId), { headers });
    assert.equal(moved.status, 200, 'GET /admin/exs/jobs/JOB/log answers');
    const entries = (await moved.json()) as any[];
    assert.equal(entries[entries.length - 1].key, 'P-1');
    assert.equal((await fetch(logUrl(run.adminUrl, jobId))).status, 401, 'still behind adminAuth');
    assert.equal((await fetch(logUrl(root, jobId), { headers })).status, 404, 'nothing left at the old root');

    const log = exsSync(['log', jobId, '--url', run.adminUrl, '--token', token], { EXS_TOKEN: '' });
    assert.equal(log.status, 0, log.stderr);
    assert.match(log.stdout, /\sP-1\s+applied \(OK\)/);

    assert.equal(await run.stop(), 0);
  });

  it('imports a sync.yaml for ops through POST /exs/contracts under a moved root: the tab is deployed next to the others', { timeout: 120_000 }, async (t) => {
    if (!(await needService(t, 'mosquitto'))) return;
    const { run, jobId } = await startWithAdminAuth(t, { httpAdminRoot: '/admin' });
    const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
    const newJob = `OPS_${suffix}`;
    const yaml = `id: ${newJob}
source_topic: permits.status
mqtt_topic: exs-test/${suffix}/permits
destination: SMS_Tracker
connector: ${MQTT_URL}/exs-test/${suffix}/sms/{key}
key: HMS:permit_id -> SMS:PERMIT_ID
mapping:
  HMS:status -> SMS:STATUS_CODE
broker: ${MQTT_URL}
`;
    const post = (headers: Record<string, string>, body: string) => fetch(`${run.adminUrl}/exs/contracts`, { method: 'POST', headers, body });
    assert.equal((await post({ 'content-type': 'text/yaml' }, yaml)).status, 401, 'no token: refused');
    const viewer = await tokenFor(run.adminUrl, VIEWER);
    const asViewer = await post({ 'content-type': 'text/yaml', Authorization: `Bearer ${viewer}` }, yaml);
    assert.ok(asViewer.status === 401 || asViewer.status === 403, `a read-only user may not deploy (HTTP ${asViewer.status})`);

    const token = await tokenFor(run.adminUrl, ADMIN);
    const headers = { Authorization: `Bearer ${token}` };
    const broken = await post({ ...headers, 'content-type': 'text/yaml' }, yaml.replace('mapping:', 'mapping:\n  HMS:x -> SMS:Y | uppr'));
    assert.equal(broken.status, 400);
    const brokenBody = (await broken.json()) as { diagnostics: Array<{ text: string }> };
    assert.deepEqual(brokenBody.diagnostics.map((d) => d.text), ["sync.yaml:8:20: unknown transform 'uppr' (did you mean 'upper'?)"]);

    const deployed = await post({ ...headers, 'content-type': 'text/yaml' }, yaml);
    assert.equal(deployed.status, 200, await deployed.clone().text());
    assert.deepEqual(((await deployed.json()) as { deployed: string[] }).deployed, [newJob]);
    const jobs = await waitFor('the imported job to run', async () => {
      const list = (await (await fetch(`${run.adminUrl}/exs/jobs`, { headers })).json()) as Array<{ id: string }>;
      return list.some((j) => j.id === newJob) ? list : undefined;
    });
    assert.ok(jobs.some((j) => j.id === jobId), 'the job that was there runs on');
    const flows = (await (await fetch(`${run.adminUrl}/flows`, { headers })).json()) as Array<{ type: string; label?: string }>;
    assert.deepEqual(flows.filter((n) => n.type === 'tab').map((n) => n.label).sort(), [jobId, newJob].sort());

    // Importing it again replaces its tab rather than adding one.
    assert.equal((await post({ ...headers, 'content-type': 'application/json' }, JSON.stringify({ yaml: yaml.replace('SMS_Tracker', 'SMS_Tracker_2') }))).status, 200);
    const again = (await (await fetch(`${run.adminUrl}/flows`, { headers })).json()) as Array<{ type: string; label?: string; destination?: string }>;
    assert.equal(again.filter((n) => n.type === 'tab').length, 2);
    assert.ok(again.some((n) => n.type === 'exs-job' && n.destination === 'SMS_Tracker_2'));
    assert.equal(await run.stop(), 0);
  });
});
