// What the destination nodes connect with once deployed: `${VAR}` in an address is read from
// the environment (a value holding `@`, `:`, `;` or braces stays one value), and the node's
// credentials win over user info in the address. In Node-RED's own runtime (4.1 or 5).
import { after, afterEach, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { helper, loadFlow, nodeRedVersion } from '../support/node-red';

const USER = 'cl@rk:x';
const PASSWORD = 'p@ss:w/rd;{x}%';
/** PASSWORD as an ODBC attribute value: braced, its `}` doubled. */
const PASSWORD_ATTRIBUTE = '{p@ss:w/rd;{x}}%}';

function setEnv(values: Record<string, string>): () => void {
  const saved = Object.fromEntries(Object.keys(values).map((name) => [name, process.env[name]]));
  Object.assign(process.env, values);
  return () => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
}

function odbcNode(connector: string) {
  return [{ id: 'tab', type: 'tab' }, { id: 'db', type: 'exs-odbc', z: 'tab', connector, dialect: '', pool_size: 1 }];
}

describe(`destination credentials on Node-RED ${nodeRedVersion()}`, () => {
  before(() => new Promise<void>((resolve) => helper.startServer(resolve)));
  after(() => new Promise<void>((resolve) => helper.stopServer(resolve)));
  afterEach(() => helper.unload());

  it('exs-odbc reads user and password from ${VAR} in an odbc:// URL, whatever they hold', async (t) => {
    t.after(setEnv({ EXS_T_DB_USER: USER, EXS_T_DB_PW: PASSWORD }));
    await loadFlow(odbcNode('odbc://${EXS_T_DB_USER}:${EXS_T_DB_PW}@db.example:5432/permits?driver=PostgreSQL%20Unicode'));
    const settings = helper.getNode('db').odbcSettings();
    assert.equal(settings.connectionString, `DRIVER={PostgreSQL Unicode};SERVER=db.example;PORT=5432;DATABASE=permits;UID=${USER};PWD=${PASSWORD_ATTRIBUTE}`);
    assert.equal(settings.user, undefined);
  });

  it('exs-odbc keeps a ${VAR} attribute of a raw connection string one value', async (t) => {
    t.after(setEnv({ EXS_T_DB_USER: USER, EXS_T_DB_PW: PASSWORD }));
    await loadFlow(odbcNode('odbc:DRIVER={SQLite3};Database=/tmp/x.db;UID=${EXS_T_DB_USER};PWD=${EXS_T_DB_PW}'));
    assert.equal(helper.getNode('db').odbcSettings().connectionString, `DRIVER={SQLite3};Database=/tmp/x.db;UID=${USER};PWD=${PASSWORD_ATTRIBUTE}`);
  });

  it('exs-odbc hands its credentials to the pool, which puts them in place of UID/PWD', async () => {
    await loadFlow(odbcNode('odbc://db.example:5432/permits?driver=X'), { db: { user: 'clerk', password: 's3cret' } });
    const settings = helper.getNode('db').odbcSettings();
    assert.equal(settings.user, 'clerk');
    assert.equal(settings.password, 's3cret');
    assert.doesNotMatch(settings.connectionString, /UID|PWD/);
  });

  it('exs-mqtt-connector logs in with the user info of its address, or with its credentials', async (t) => {
    const { Aedes } = await import('aedes');
    const logins: Array<{ username?: string; password?: string }> = [];
    let loggedIn = () => undefined as void;
    const broker = await Aedes.createBroker({
      authenticate: (_client, username, password, done) => {
        logins.push({ username, password: password?.toString() });
        loggedIn();
        done(null, true);
      },
    });
    const server = net.createServer(broker.handle);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    t.after(() => new Promise<void>((resolve) => broker.close(() => server.close(() => resolve()))));
    const port = (server.address() as AddressInfo).port;
    t.after(setEnv({ EXS_T_MQTT_USER: USER, EXS_T_MQTT_PW: PASSWORD }));

    const flow = (credentials: object) => {
      const nodes = [
        { id: 'tab', type: 'tab' },
        { id: 'job', type: 'exs-job', z: 'tab', jobId: 'Mqtt_Credentials', source_topic: 'permits.status', destination: 'SMS', schedule: 'realtime', conflict_rule: 'HMS_WINS', max_attempts: 1, backoff_seconds: 0, dead_letter: '', changelog: '' },
        { id: 'mapper', type: 'exs-mapper', z: 'tab', job: 'job', key: 'HMS:permit_id -> SMS:PERMIT_ID', mapping: 'HMS:status -> SMS:STATUS', wires: [[], []] },
        { id: 'sms', type: 'exs-mqtt-connector', z: 'tab', job: 'job', broker: `mqtt://\${EXS_T_MQTT_USER}:\${EXS_T_MQTT_PW}@127.0.0.1:${port}`, topic: 'sms/{key}', wires: [[], []] },
      ];
      return loadFlow(nodes, credentials);
    };
    const nextLogin = () => new Promise<void>((resolve) => (loggedIn = resolve));

    let login = nextLogin();
    await flow({});
    await login;
    assert.deepEqual(logins.at(-1), { username: USER, password: PASSWORD });

    await helper.unload();
    login = nextLogin();
    await flow({ sms: { user: 'from-credentials' } });
    await login;
    assert.deepEqual(logins.at(-1), { username: 'from-credentials', password: PASSWORD }, 'credentials win; the rest still comes from the address');
  });
});
