// Credentials in a real runtime: a contract with a literal password runs from one deploy
// (Node-RED starts the flows once, with UID/PWD already in place), the password sits only in
// flows_cred.json and only encrypted, `${VAR}` stays a reference in flows.json, and a second
// runtime in the same process is refused instead of silently running the first one's flows.
import { describe, it, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as mqtt from 'mqtt';
import { derivedId } from '../../flows/flow-types';
import { load, peekLog, start, type ChangeLogEntry } from '../../index';
import { startExsRun } from '../support/exs-process';
import { MQTT_URL, needService, sqlQuery, sqliteConn, tempDir } from '../support/services';
import { waitFor } from '../support/wait';

const root = path.resolve(__dirname, '..', '..', '..');
const PASSWORD = 's3cret-Pa55';

/** The Node-RED this process embeds, to look at its deployed nodes. */
function embeddedNodeRed(): any {
  return require(require.resolve(process.env.EXS_NODE_RED ?? 'node-red', { paths: [root] }));
}

/** flows_cred.json opened the way Node-RED opens it: aes-256-ctr, key sha256(secret). */
function openCredentials(file: string, secret: string): Record<string, Record<string, string>> {
  const sealed: string = JSON.parse(fs.readFileSync(file, 'utf8')).$;
  assert.equal(typeof sealed, 'string', `${file} is encrypted`);
  const key = crypto.createHash('sha256').update(secret).digest();
  const decipher = crypto.createDecipheriv('aes-256-ctr', key, Buffer.from(sealed.slice(0, 32), 'hex'));
  return JSON.parse(decipher.update(sealed.slice(32), 'base64', 'utf8') + decipher.final('utf8'));
}

function sealCredentials(credentials: object, secret: string): { $: string } {
  const key = crypto.createHash('sha256').update(secret).digest();
  const iv = crypto.randomBytes(16);
  const cipher = crypto.createCipheriv('aes-256-ctr', key, iv);
  return { $: iv.toString('hex') + cipher.update(JSON.stringify(credentials), 'utf8', 'base64') + cipher.final('base64') };
}

/** Node-RED's log messages, collected instead of printed. */
function capturedLog(): { messages: string[]; warnings: string[]; settings: Record<string, unknown> } {
  const messages: string[] = [];
  const warnings: string[] = [];
  const handler = () => (entry: { level: number; msg: unknown }) => {
    messages.push(String(entry.msg));
    if (entry.level <= 30) warnings.push(String(entry.msg)); // Node-RED's WARN and worse
  };
  return { messages, warnings, settings: { logging: { capture: { level: 'info', handler } } } };
}

interface Job {
  id: string;
  topic: string;
  file: string;
}

function writeJob(dir: string, name: string, connector: string, broker = MQTT_URL): Job {
  const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  const id = `${name}_${suffix}`;
  const topic = `exs-test/${suffix}/permits`;
  const file = path.join(dir, `${id}.sync.yaml`);
  fs.writeFileSync(file, `id: ${id}
source_topic: permits.status
mqtt_topic: ${topic}
destination: COBOL_Mainframe
connector: "${connector}"
table: PERMIT_TABLE
key: HMS:permit_id -> COBOL:PERMIT_ID
mapping:
  HMS:status -> COBOL:PERMIT_STAT | map(Approved=APPR, Pending=PEND, *=OTHR)
broker: ${broker}
changelog: exs-test/${suffix}/changelog
`);
  return { id, topic, file };
}

async function sqliteDatabase(dir: string): Promise<string> {
  const connection = sqliteConn(path.join(dir, 'mainframe.db'));
  await sqlQuery(connection, 'CREATE TABLE PERMIT_TABLE (PERMIT_ID VARCHAR(20) PRIMARY KEY, PERMIT_STAT VARCHAR(4))');
  return connection;
}

/**
 * Publishes an event for the job until its change log shows it applied. Also the way to know
 * a job's source is subscribed, before stopping the runtime.
 */
async function syncs(job: Job, userDir: string, key = 'P-1'): Promise<ChangeLogEntry> {
  const client = await mqtt.connectAsync(MQTT_URL);
  try {
    return await waitFor(
      `${job.id} to apply ${key}`,
      async () => (await peekLog(job.id, { last: 5, userDir })).find((entry) => entry.outcome === 'applied' && entry.key === key),
      { onTick: () => client.publishAsync(job.topic, JSON.stringify({ permit_id: key, status: 'Approved' }), { qos: 1 }), intervalMs: 200 },
    );
  } finally {
    await client.endAsync();
  }
}

function setEnv(t: TestContext, values: Record<string, string>): void {
  const saved = Object.fromEntries(Object.keys(values).map((name) => [name, process.env[name]]));
  Object.assign(process.env, values);
  t.after(() => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });
}

describe('credentials in a running EXS', () => {
  it('SDK start() with a literal password: one deploy, the password encrypted in flows_cred.json only, the job syncs', { timeout: 120_000 }, async (t) => {
    if (!(await needService(t, 'mosquitto'))) return;
    if (!(await needService(t, 'sqlite-odbc'))) return;
    const dir = tempDir('credentials');
    const connection = await sqliteDatabase(dir);
    const job = writeJob(dir, 'Cred', `odbc:${connection};UID=clerk;PWD=${PASSWORD}`);
    const userDir = path.join(dir, 'userdir');
    const log = capturedLog();

    const contract = load(job.file);
    const running = await start(contract, { port: 0, userDir, settings: log.settings });
    t.after(() => running.stop());

    await assert.rejects(start(contract, { port: 0, userDir }), /^Error: one EXS runtime per process: stop the running one first, or pass several contracts/);

    const flowsText = fs.readFileSync(path.join(userDir, 'flows.json'), 'utf8');
    assert.doesNotMatch(flowsText, new RegExp(PASSWORD), 'flows.json holds no password');
    assert.doesNotMatch(flowsText, /PWD=/);
    const credentialsFile = path.join(userDir, 'flows_cred.json');
    assert.doesNotMatch(fs.readFileSync(credentialsFile, 'utf8'), new RegExp(PASSWORD), 'flows_cred.json holds no plain password');
    const secretFile = path.join(userDir, '.exs-credential-secret');
    assert.equal(fs.statSync(secretFile).mode & 0o777, 0o600, 'the generated secret is readable by its owner only');
    const odbcId = derivedId(job.id, 'odbc');
    assert.deepEqual(openCredentials(credentialsFile, fs.readFileSync(secretFile, 'utf8').trim())[odbcId], { user: 'clerk', password: PASSWORD });
    assert.deepEqual(embeddedNodeRed().nodes.getNode(odbcId)?.credentials, { user: 'clerk', password: PASSWORD }, 'the deployed exs-odbc node has them');

    const applied = await syncs(job, userDir);
    assert.equal(applied.after?.PERMIT_STAT, 'APPR');
    assert.equal(log.messages.filter((message) => message === 'Starting flows').length, 1, `Node-RED started the flows once:\n${log.messages.join('\n')}`);
  });

  it('start([a, b]) runs several jobs in one runtime: ${VAR} stays a reference, redeployed credentials replace theirs, others are kept', { timeout: 120_000 }, async (t) => {
    if (!(await needService(t, 'mosquitto'))) return;
    if (!(await needService(t, 'sqlite-odbc'))) return;
    const dir = tempDir('credentials-merge');
    const connection = await sqliteDatabase(dir);
    const userDir = path.join(dir, 'userdir');
    setEnv(t, { EXS_CREDENTIAL_SECRET: 'test-secret', EXS_T_DB_PW: 'from-the-env', EXS_T_MQTT_USER: 'hms', EXS_T_MQTT_PW: 'broker-pw' });
    const kept = writeJob(dir, 'Kept', `odbc:${connection};UID=keeper;PWD=kept-pw`);
    const changed = writeJob(dir, 'Changed', `odbc:${connection};UID=clerk;PWD=old-pw`);

    const first = await start([load(kept.file), load(changed.file)], { port: 0, userDir });
    assert.deepEqual(first.ids, [kept.id, changed.id]);
    await syncs(kept, userDir, 'P-kept');
    await syncs(changed, userDir, 'P-changed');
    await first.stop();

    fs.writeFileSync(changed.file, fs.readFileSync(changed.file, 'utf8').replace('PWD=old-pw', 'PWD=new-pw'));
    const broker = MQTT_URL.replace('://', '://${EXS_T_MQTT_USER}:${EXS_T_MQTT_PW}@');
    const referenced = writeJob(dir, 'Referenced', `odbc:${connection};UID=clerk;PWD=\${EXS_T_DB_PW}`, broker);
    const log = capturedLog();
    const second = await start([load(changed.file), load(referenced.file)], { port: 0, userDir, settings: log.settings });
    t.after(() => second.stop());

    const flowsText = fs.readFileSync(path.join(userDir, 'flows.json'), 'utf8');
    assert.match(flowsText, /PWD=\$\{EXS_T_DB_PW\}/, 'the reference is written as a reference');
    assert.doesNotMatch(flowsText, /from-the-env|broker-pw|new-pw|kept-pw/);
    assert.ok(flowsText.includes(derivedId(kept.id, 'odbc')), "the job not restarted keeps its tab");

    const stored = openCredentials(path.join(userDir, 'flows_cred.json'), 'test-secret');
    assert.deepEqual(stored[derivedId(kept.id, 'odbc')], { user: 'keeper', password: 'kept-pw' }, 'credentials of other nodes are kept');
    assert.deepEqual(stored[derivedId(changed.id, 'odbc')], { user: 'clerk', password: 'new-pw' }, 'a redeployed node gets its new credentials');
    assert.deepEqual(stored[derivedId(referenced.id, 'odbc')], { user: 'clerk' }, 'a referenced password is not stored');
    assert.deepEqual(stored[derivedId(referenced.id, 'broker')], { user: '${EXS_T_MQTT_USER}', password: '${EXS_T_MQTT_PW}' });
    assert.ok(!fs.existsSync(path.join(userDir, '.exs-credential-secret')), 'EXS_CREDENTIAL_SECRET is used, no secret is generated');

    const RED = embeddedNodeRed();
    assert.deepEqual(RED.nodes.getNode(derivedId(referenced.id, 'broker'))?.credentials, { user: 'hms', password: 'broker-pw' }, 'Node-RED expands the references');
    assert.match(RED.nodes.getNode(derivedId(referenced.id, 'odbc')).odbcSettings().connectionString, /PWD=from-the-env$/);
    for (const job of [kept, changed, referenced]) await syncs(job, userDir, `P-${job.id}`);
    assert.equal(log.messages.filter((message) => message === 'Starting flows').length, 1);
  });

  it("a user directory with Node-RED's generated _credentialSecret moves to the EXS secret, its credentials kept", { timeout: 120_000 }, async (t) => {
    if (!(await needService(t, 'mosquitto'))) return;
    if (!(await needService(t, 'sqlite-odbc'))) return;
    const dir = tempDir('credentials-legacy');
    const connection = await sqliteDatabase(dir);
    const userDir = path.join(dir, 'userdir');
    fs.mkdirSync(userDir);
    fs.writeFileSync(path.join(userDir, '.config.runtime.json'), JSON.stringify({ _credentialSecret: 'generated-by-node-red' }));
    const credentialsFile = path.join(userDir, 'flows_cred.json');
    fs.writeFileSync(credentialsFile, JSON.stringify(sealCredentials({ 'users-node': { password: 'theirs' } }, 'generated-by-node-red')));
    const job = writeJob(dir, 'Legacy', `odbc:${connection};UID=clerk;PWD=${PASSWORD}`);
    const log = capturedLog();

    const running = await start(load(job.file), { port: 0, userDir, settings: log.settings });
    t.after(() => running.stop());
    await syncs(job, userDir);
    assert.deepEqual(embeddedNodeRed().nodes.getNode(derivedId(job.id, 'odbc'))?.credentials, { user: 'clerk', password: PASSWORD });
    const secret = fs.readFileSync(path.join(userDir, '.exs-credential-secret'), 'utf8').trim();
    assert.deepEqual(openCredentials(credentialsFile, secret), {
      'users-node': { password: 'theirs' },
      [derivedId(job.id, 'odbc')]: { user: 'clerk', password: PASSWORD },
    }, "the user's credentials move to the new secret with the job's");
    assert.equal(JSON.parse(fs.readFileSync(path.join(userDir, '.config.runtime.json'), 'utf8'))._credentialSecret, undefined, 'the old secret is gone');
    assert.deepEqual(log.warnings.filter((message) => /credential/i.test(message)), [], 'Node-RED has nothing to say about credentials');
  });

  it("exs run deploys once, with the credentials already encrypted in place with the settings' credentialSecret", { timeout: 120_000 }, async (t) => {
    if (!(await needService(t, 'sqlite-odbc'))) return;
    const dir = tempDir('credentials-run');
    const connection = await sqliteDatabase(dir);
    setEnv(t, { EXS_CREDENTIAL_SECRET: 'not-this-one' });
    const settingsFile = path.join(dir, 'settings.js');
    fs.writeFileSync(settingsFile, "module.exports = { credentialSecret: 'run-secret' };\n");
    const job = writeJob(dir, 'Run', `odbc:${connection};UID=clerk;PWD=${PASSWORD}`);
    const userDir = path.join(dir, 'userdir');
    const run = await startExsRun([job.file], userDir, ['--settings', settingsFile]);
    t.after(() => run.stop());

    const starts = run.output().match(/\] Starting flows$/gm) ?? [];
    assert.equal(starts.length, 1, run.output());
    assert.doesNotMatch(run.output(), new RegExp(PASSWORD));
    assert.doesNotMatch(fs.readFileSync(path.join(userDir, 'flows.json'), 'utf8'), new RegExp(PASSWORD));
    assert.deepEqual(openCredentials(path.join(userDir, 'flows_cred.json'), 'run-secret')[derivedId(job.id, 'odbc')], { user: 'clerk', password: PASSWORD });
  });
});
