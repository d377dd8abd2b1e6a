// The admin routes behind the editor dialogs, in Node-RED's own runtime (4.1 or 5): the mapper's
// table reads and checks its lines with the runtime's parser, and the exs-odbc dialog's "Test
// connection" reaches a real database (SQLite through its ODBC driver) or says why not, with the
// node's stored password when the dialog only shows the placeholder.
import { after, afterEach, before, describe, it, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { helper, loadFlow, nodeRedVersion } from '../support/node-red';
import { needService, sqliteConn, tempDir } from '../support/services';

const KEY = 'HMS:permit_id -> COBOL:PERMIT_ID';

function odbcFlow(connector: string) {
  return [
    { id: 'tab', type: 'tab' },
    { id: 'db', type: 'exs-odbc', z: 'tab', connector, dialect: '', pool_size: 1 },
    // A node of another type holding a password of its own.
    { id: 'other', type: 'helper', z: 'tab', x: 100, y: 100 },
  ];
}

function checkMapping(body: object) {
  return helper.request().post('/exs/mapping/check').send(body);
}

function testConnection(body: object) {
  return helper.request().post('/exs/odbc/test').send(body).expect(200);
}

function setEnv(name: string, value: string): () => void {
  const saved = process.env[name];
  process.env[name] = value;
  return () => {
    if (saved === undefined) delete process.env[name];
    else process.env[name] = saved;
  };
}

/**
 * A PostgreSQL server that only asks for a cleartext password, notes what the client sent and
 * refuses it, as a server with a wrong password would. Enough to see which password the driver used.
 */
async function passwordCatcher(t: TestContext): Promise<{ port: number; logins: Array<{ user?: string; password?: string }> }> {
  const logins: Array<{ user?: string; password?: string }> = [];
  const server = net.createServer((socket) => {
    let buffered = Buffer.alloc(0);
    let login: { user?: string; password?: string } | undefined;
    socket.on('error', () => undefined);
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        if (!login) {
          // Untyped start-up packets: SSL or GSS encryption requests, then the startup message.
          if (buffered.length < 8) return;
          const length = buffered.readInt32BE(0);
          if (buffered.length < length) return;
          const code = buffered.readInt32BE(4);
          const packet = buffered.subarray(8, length);
          buffered = buffered.subarray(length);
          if (code === 80877103 || code === 80877104) {
            socket.write('N');
            continue;
          }
          const parts = packet.toString('utf8').split('\0');
          login = { user: parts[parts.indexOf('user') + 1] };
          logins.push(login);
          socket.write(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3])); // AuthenticationCleartextPassword
          continue;
        }
        if (buffered.length < 5) return;
        const length = buffered.readInt32BE(1);
        if (buffered.length < length + 1) return;
        const type = String.fromCharCode(buffered[0]);
        const body = buffered.subarray(5, length + 1);
        buffered = buffered.subarray(length + 1);
        if (type === 'p') {
          login.password = body.toString('utf8').replace(/\0$/, '');
          const fields = ['SFATAL', 'VFATAL', 'C28P01', `Mpassword authentication failed for user "${login.user}"`].map((f) => `${f}\0`).join('');
          const message = Buffer.from(`${fields}\0`, 'utf8');
          const header = Buffer.alloc(5);
          header.write('E', 0);
          header.writeInt32BE(message.length + 4, 1);
          socket.end(Buffer.concat([header, message]));
          return;
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.address() as AddressInfo).port, logins };
}

function postgresDriverInstalled(t: TestContext): boolean {
  let installed = false;
  try {
    installed = /\[PostgreSQL Unicode\]/.test(fs.readFileSync('/etc/odbcinst.ini', 'utf8'));
  } catch {
    installed = false;
  }
  if (installed) return true;
  if (process.env.CI === 'true') throw new Error('the PostgreSQL ODBC driver is not installed (CI=true: integration services are required)');
  t.skip('the PostgreSQL ODBC driver is not installed');
  return false;
}

describe(`editor endpoints on Node-RED ${nodeRedVersion()}`, () => {
  before(() => new Promise<void>((resolve) => helper.startServer(resolve)));
  after(() => new Promise<void>((resolve) => helper.stopServer(resolve)));
  afterEach(() => helper.unload());

  describe('POST /exs/mapping/check', () => {
    it('reads each good line into a row and puts each problem on its line, in the YAML validator\'s words', async () => {
      await loadFlow([{ id: 'tab', type: 'tab' }]);
      const response = await checkMapping({
        lines: [
          'HMS:status -> COBOL:PERMIT_STAT | map(Approved=APPR,Pending=PEND) | upper',
          'HMS:status_code -> COBOL:STAT_CD | uppr',
          'HMS:applicant.name -> LEGACY:APPL_NAME',
          'HMS:issued -> COBOL:ISSUED DATE',
          'HMS:updated_at -> COBOL:LAST_CHG_TS | timestamp(YYYYMMDDHHmmss) | pad(14)',
        ],
        key: KEY,
      }).expect(200);
      assert.deepEqual(response.body.rules, [
        { source: 'status', target: 'PERMIT_STAT', transforms: 'map(Approved=APPR, Pending=PEND) | upper' },
        null,
        { source: 'applicant.name', target: 'APPL_NAME', transforms: '' },
        null,
        { source: 'updated_at', target: 'LAST_CHG_TS', transforms: 'timestamp(YYYYMMDDHHmmss) | pad(14)' },
      ]);
      assert.deepEqual(response.body.errors, [
        { line: 1, message: "unknown transform 'uppr' (did you mean 'upper'?)" },
        { line: 3, message: "mapping 'DATE' has no '->' (write HMS:field -> COBOL:COLUMN)" },
      ]);
      assert.equal(response.body.keyError, null);
    });

    it('flags a column mapped twice, the key column mapped again, and a key that cannot be read', async () => {
      await loadFlow([{ id: 'tab', type: 'tab' }]);
      const twice = await checkMapping({
        lines: ['HMS:status -> COBOL:PERMIT_STAT', 'HMS:state -> COBOL:permit_stat', 'HMS:permit_no -> COBOL:PERMIT_ID'],
        key: KEY,
      }).expect(200);
      assert.deepEqual(twice.body.errors, [
        { line: 1, message: "column 'permit_stat' is mapped twice (from 'status' and 'state'); 'PERMIT_STAT' and 'permit_stat' are one column, whatever the case" },
        { line: 2, message: "key column 'PERMIT_ID' is also mapped from 'permit_no'; a column gets one value" },
      ]);
      assert.equal(twice.body.rules.length, 3);

      const badKey = await checkMapping({ lines: ['HMS:status -> COBOL:PERMIT_STAT'], key: 'HMS:permit_id -> COBOL:PERMIT_ID | upper' }).expect(200);
      assert.equal(badKey.body.keyError, 'the key takes no transforms; it is written as HMS:field -> COBOL:COLUMN');
      const noKey = await checkMapping({ lines: ['HMS:status -> COBOL:PERMIT_STAT'], key: '' }).expect(200);
      assert.equal(noKey.body.keyError, 'key is required, e.g. HMS:permit_id -> COBOL:PERMIT_ID');
      const keyNotAsked = await checkMapping({ lines: ['HMS:status -> COBOL:PERMIT_STAT'] }).expect(200);
      assert.equal(keyNotAsked.body.keyError, null);
    });

    it('says so when there is no rule at all, and refuses a body without lines', async () => {
      await loadFlow([{ id: 'tab', type: 'tab' }]);
      const empty = await checkMapping({ lines: [], key: KEY }).expect(200);
      assert.deepEqual(empty.body, {
        rules: [],
        errors: [{ line: null, message: "mapping lists no fields; add lines like 'HMS:status -> COBOL:PERMIT_STAT'" }],
        keyError: null,
      });
      const refused = await checkMapping({ lines: 'HMS:status -> COBOL:PERMIT_STAT' }).expect(400);
      assert.match(refused.body.error, /"lines"/);
    });
  });

  describe('POST /exs/odbc/test', () => {
    it('connects to SQLite through its ODBC driver and names the DBMS, reading ${VAR} as deploy does', async (t) => {
      if (!(await needService(t, 'sqlite-odbc'))) return;
      const file = path.join(tempDir('editor'), 'legacy.db');
      t.after(setEnv('EXS_T_LEGACY_DB', file));
      await loadFlow(odbcFlow(`odbc:${sqliteConn(file)}`));
      const response = await testConnection({ connector: 'odbc:DRIVER={SQLite3};Database=${EXS_T_LEGACY_DB}', user: '', password: '', id: 'db' });
      assert.equal(response.body.ok, true, response.body.error);
      assert.equal(response.body.dbms, 'SQLite');
      assert.equal(response.body.dialect, 'sqlite');
      assert.match(response.body.version, /^3\.\d+/);
    });

    it('returns the driver manager\'s error for a driver that does not exist, and the address problem for a bad address', async (t) => {
      if (!(await needService(t, 'sqlite-odbc'))) return;
      await loadFlow(odbcFlow('odbc:DRIVER={SQLite3};Database=/tmp/unused.db'));
      const noDriver = await testConnection({ connector: 'odbc:DRIVER={No Such Driver};Database=/tmp/x.db', id: 'db' });
      assert.equal(noDriver.body.ok, false);
      assert.match(noDriver.body.error, /^cannot connect: .*No Such Driver.* \(SQLSTATE \w{5}\)$/);

      const unset = await testConnection({ connector: 'odbc:DRIVER={SQLite3};Database=${EXS_T_NOT_SET_ANYWHERE}' });
      assert.deepEqual(unset.body, { ok: false, error: 'environment variable EXS_T_NOT_SET_ANYWHERE is not set (connector odbc:DRIVER={SQLite3};Database=${EXS_T_NOT_SET_ANYWHERE})' });
      const badPort = await testConnection({ connector: 'odbc://legacy-db:99999/permits?driver=SQLite3' });
      assert.deepEqual(badPort.body, { ok: false, error: "connector 'odbc://legacy-db:99999/permits?driver=SQLite3' has port '99999'; a port is a number from 1 to 65535" });
      await helper.request().post('/exs/odbc/test').send({ user: 'x' }).expect(400);
    });

    it('uses the stored password of the exs-odbc node when the dialog shows the placeholder, and only that node\'s', async (t) => {
      if (!postgresDriverInstalled(t)) return;
      const { port, logins } = await passwordCatcher(t);
      const connector = `odbc:DRIVER={PostgreSQL Unicode};SERVER=127.0.0.1;PORT=${port};DATABASE=legacy;SSLmode=disable`;
      await loadFlow(odbcFlow(connector), { db: { user: 'clerk', password: 'st0red;secret' }, other: { password: 'not-for-odbc' } });

      const stored = await testConnection({ connector, user: 'clerk', password: '__PWRD__', id: 'db' });
      assert.equal(stored.body.ok, false);
      assert.match(stored.body.error, /^cannot connect: .*password authentication failed for user "clerk" \(SQLSTATE \w{5}\)$/);
      assert.deepEqual(logins.at(-1), { user: 'clerk', password: 'st0red;secret' });

      const typed = await testConnection({ connector, user: 'typist', password: 'typed', id: 'db' });
      assert.equal(typed.body.ok, false);
      assert.deepEqual(logins.at(-1), { user: 'typist', password: 'typed' });

      const before = logins.length;
      const otherNode = await testConnection({ connector, user: 'clerk', password: '__PWRD__', id: 'other' });
      assert.equal(otherNode.body.ok, false);
      assert.ok(logins.slice(before).every((login) => login.password !== 'not-for-odbc'), 'another node\'s password is never sent');
    });
  });
});
