// sync.yaml <-> flow: wiring, stable ids, round trips, and no secret in a flow file.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { exportContracts } from '../../flows/export';
import { mergeFlows, type FlowNode } from '../../flows/flow-types';
import { importContractText, literalCredentialWarning } from '../../flows/import';
import { parseContract } from '../../nodes/core/contract/load';

const fixtures = path.resolve(__dirname, '..', '..', '..', 'test', 'fixtures', 'contracts');
const examples = path.resolve(__dirname, '..', '..', '..', 'examples');

function importText(text: string, file = 'test.sync.yaml', withCredentials = false): FlowNode[] {
  const result = importContractText(text, file, { withCredentials });
  const errors = result.diagnostics.filter((d) => d.severity === 'error');
  assert.deepEqual(errors, [], 'the contract is valid');
  return result.nodes;
}

const RUNNABLE = `id: Permit_Sync
source_topic: permits.status
destination: COBOL_Mainframe
connector: odbc://mainframe-dsn
table: PERMIT_TABLE
key: HMS:permit_id -> COBOL:PERMIT_ID
mapping:
  - HMS:status -> COBOL:PERMIT_STAT | map(Approved=APPR, Pending=PEND)
  - HMS:updated_at -> COBOL:LAST_CHG_TS
conflict_rule: LAST_WRITE_WINS
retry_policy:
  max_attempts: 3
  backoff_seconds: 10
`;

function byType(nodes: FlowNode[], type: string): FlowNode {
  const node = nodes.find((n) => n.type === type);
  assert.ok(node, `the flow has a ${type} node`);
  return node;
}

describe('importer', () => {
  it('wires exs source -> queue -> mapper -> resolver -> connector -> change log -> mqtt out on one tab', () => {
    const nodes = importText(RUNNABLE);
    const tab = byType(nodes, 'tab');
    assert.equal(tab.label, 'Permit_Sync');
    assert.ok(nodes.filter((n) => n.type !== 'tab').every((n) => n.z === tab.id), 'every node is on the job tab');
    const chain = ['exs-source', 'exs-sync-queue', 'exs-mapper', 'exs-conflict-resolver', 'exs-connector', 'exs-change-log', 'mqtt out'];
    for (let i = 0; i < chain.length - 1; i++) {
      const from = byType(nodes, chain[i]);
      const to = byType(nodes, chain[i + 1]);
      assert.ok(from.wires?.[0]?.includes(to.id), `${chain[i]} -> ${chain[i + 1]}`);
      assert.ok((from.x as number) < (to.x as number), `${chain[i]} is left of ${chain[i + 1]}`);
    }
    const log = byType(nodes, 'exs-change-log');
    for (const type of ['exs-sync-queue', 'exs-mapper', 'exs-connector']) {
      assert.ok(byType(nodes, type).wires?.[1]?.includes(log.id), `${type}'s dead-letter output goes to the change log`);
    }
    assert.ok(log.wires?.[1]?.includes(byType(nodes, 'mqtt out').id), 'dead letters are published');
    assert.equal(byType(nodes, 'exs-source').topic, 'permits/status');
    assert.equal(byType(nodes, 'exs-source').job, byType(nodes, 'exs-job').id);
    assert.equal(nodes.some((n) => n.type === 'mqtt in'), false, "Node-RED's mqtt-in acknowledges too early; it is not used");
    const job = byType(nodes, 'exs-job');
    assert.equal(job.jobId, 'Permit_Sync');
    assert.equal(job.conflict_rule, 'LAST_WRITE_WINS');
    assert.equal(job.max_attempts, 3);
    assert.equal(job.dead_letter, 'exs/Permit_Sync/dead_letter');
    assert.equal(byType(nodes, 'exs-connector').table, 'PERMIT_TABLE');
    assert.equal(byType(nodes, 'exs-odbc').connector, 'odbc://mainframe-dsn');
  });

  it('derives ids from the contract id, so importing again replaces the tab', () => {
    const first = importText(RUNNABLE);
    const second = importText(RUNNABLE.replace('max_attempts: 3', 'max_attempts: 4'));
    assert.deepEqual(first.map((n) => n.id), second.map((n) => n.id));
    const userTab: FlowNode = { id: 'user-tab', type: 'tab', label: 'mine' };
    const userNode: FlowNode = { id: 'user-node', type: 'debug', z: 'user-tab' };
    const merged = mergeFlows(mergeFlows([userTab, userNode], first), second);
    assert.equal(merged.filter((n) => n.type === 'tab' && n.label === 'Permit_Sync').length, 1);
    assert.equal(byType(merged, 'exs-job').max_attempts, 4);
    assert.ok(merged.includes(userTab) && merged.includes(userNode), "the user's own tabs are kept");
  });

  it('gives the same flow after import -> export -> import', () => {
    for (const text of [RUNNABLE, fs.readFileSync(path.join(examples, 'cobol_permit.sync.yaml'), 'utf8'), fs.readFileSync(path.join(fixtures, 'cobol_permit.sync.yaml'), 'utf8')]) {
      const flow = importText(text);
      const [exported] = exportContracts(flow);
      const again = importText(exported.yaml, 'exported.sync.yaml');
      assert.deepEqual(again, flow);
    }
  });

  it('carries changelog_feed to the exs-job node and back to the contract', () => {
    const flow = importText(RUNNABLE + 'changelog_feed: batch\n');
    assert.equal(byType(flow, 'exs-job').changelog_feed, 'batch');
    const [exported] = exportContracts(flow);
    assert.match(exported.yaml, /^changelog_feed: batch$/m);
    assert.equal(byType(importText(RUNNABLE), 'exs-job').changelog_feed, 'entry');
    assert.doesNotMatch(exportContracts(importText(RUNNABLE))[0].yaml, /changelog_feed/, 'the default is left out');
  });

  it('imports the seed contract verbatim', () => {
    const nodes = importText(fs.readFileSync(path.join(fixtures, 'cobol_permit.sync.yaml'), 'utf8'), 'cobol_permit.sync.yaml');
    assert.equal(byType(nodes, 'exs-mapper').mapping, 'HMS:status -> COBOL:PERMIT_STAT\nHMS:updated_at -> COBOL:LAST_CHG_TS');
    assert.equal(byType(nodes, 'exs-odbc').connector, 'odbc://city-mainframe:3060');
  });

  it('keeps passwords out of flow files, and ${VAR} references in', () => {
    const literal = RUNNABLE.replace('odbc://mainframe-dsn', 'odbc:DRIVER={PostgreSQL Unicode};SERVER=db;UID=clerk;PWD=s3cret-pw');
    const flowText = JSON.stringify(importText(literal));
    assert.doesNotMatch(flowText, /s3cret-pw/);
    assert.doesNotMatch(flowText, /clerk/);
    const deployed = importText(literal, 'x.sync.yaml', true);
    assert.deepEqual(byType(deployed, 'exs-odbc').credentials, { user: 'clerk', password: 's3cret-pw' });

    const referenced = RUNNABLE.replace('odbc://mainframe-dsn', 'odbc:DRIVER={PostgreSQL Unicode};SERVER=db;UID=${DB_USER};PWD=${DB_PASSWORD}');
    const odbc = byType(importText(referenced), 'exs-odbc');
    assert.match(String(odbc.connector), /PWD=\$\{DB_PASSWORD\}/);
    assert.equal(odbc.credentials, undefined);
  });

  it('keeps ${VAR} references for table, connector, broker and retry counts, and exports them back', () => {
    const referenced = RUNNABLE
      .replace('connector: odbc://mainframe-dsn', 'connector: ${DB_URL}\nbroker: ${MQTT}')
      .replace('table: PERMIT_TABLE', 'table: ${T}')
      .replace('max_attempts: 3', 'max_attempts: ${N}');
    const nodes = importText(referenced);
    assert.equal(byType(nodes, 'exs-odbc').connector, '${DB_URL}');
    assert.equal(byType(nodes, 'exs-connector').table, '${T}');
    assert.equal(byType(nodes, 'mqtt-broker').broker, '${MQTT}');
    assert.equal(byType(nodes, 'exs-job').max_attempts, '${N}');
    const [exported] = exportContracts(nodes);
    assert.match(exported.yaml, /^table: \$\{T\}$/m);
    assert.deepEqual(importText(exported.yaml), nodes);
  });

  it('keeps a reference inside an mqtt:// connector, on the MQTT connector', () => {
    const nodes = importText(RUNNABLE.replace('connector: odbc://mainframe-dsn', 'connector: mqtt://${SMS_HOST}:${SMS_PORT}/sms/permits'));
    const connector = byType(nodes, 'exs-mqtt-connector');
    assert.equal(connector.broker, 'mqtt://${SMS_HOST}:${SMS_PORT}');
    assert.equal(connector.topic, 'sms/permits');
  });

  it('exports a job made in the editor, its empty fields taking the defaults, to a valid contract', () => {
    const flow: FlowNode[] = [
      { id: 'tab1', type: 'tab', label: 'Flow 1' },
      {
        id: 'job1', type: 'exs-job', name: '', jobId: 'Editor_Job', source_topic: 'permits.status', destination: 'COBOL',
        schedule: 'realtime', conflict_rule: 'HMS_WINS', backoff_seconds: '', dead_letter: '', changelog: '',
      },
      { id: 'broker1', type: 'mqtt-broker', name: '', broker: 'localhost', port: '1883', usetls: false },
      { id: 'in1', type: 'mqtt in', z: 'tab1', topic: 'hms/permits', broker: 'broker1', wires: [['queue1']] },
      { id: 'queue1', type: 'exs-sync-queue', z: 'tab1', job: 'job1', wires: [['mapper1'], []] },
      { id: 'mapper1', type: 'exs-mapper', z: 'tab1', job: 'job1', key: 'HMS:permit_id -> COBOL:PERMIT_ID', mapping: 'HMS:status -> COBOL:PERMIT_STAT\n', wires: [[], []] },
      { id: 'odbc1', type: 'exs-odbc', name: '', connector: 'DSN=Mainframe', dialect: '', pool_size: 4 },
      { id: 'conn1', type: 'exs-connector', z: 'tab1', job: 'job1', odbc: 'odbc1', table: 'PERMIT_TABLE', wires: [[], []] },
    ];
    const [exported] = exportContracts(flow);
    const { contract, diagnostics } = parseContract(exported.yaml, 'editor.sync.yaml', {});
    assert.deepEqual(diagnostics, []);
    assert.doesNotMatch(exported.yaml, /dead_letter|changelog|retry_policy/);
    assert.equal(contract?.dead_letter, 'exs/Editor_Job/dead_letter');
    assert.equal(contract?.changelog, 'exs/changelog');
    assert.deepEqual(contract?.retry_policy, { max_attempts: 5, backoff_seconds: 30 });
    assert.equal(contract?.broker, 'mqtt://localhost:1883');
    assert.equal(contract?.mqtt_topic, 'hms/permits');
    assert.equal(contract?.connector, 'odbc:DSN=Mainframe');
  });

  it('uses the MQTT connector for an mqtt:// destination', () => {
    const nodes = importText(RUNNABLE.replace('connector: odbc://mainframe-dsn', 'connector: mqtt://127.0.0.1:1883/sms/permits/{key}'));
    const connector = byType(nodes, 'exs-mqtt-connector');
    assert.equal(connector.topic, 'sms/permits/{key}');
    assert.equal(nodes.some((n) => n.type === 'exs-odbc'), false);
    const [exported] = exportContracts(nodes);
    assert.deepEqual(importText(exported.yaml), nodes);
  });
});

/** One way a contract can carry a user and password, and where they belong in the flow. */
interface CredentialForm {
  name: string;
  /** The contract line, replacing `connector: odbc://mainframe-dsn`. */
  line: string;
  /** The nodes that hold the address, and the property it is in. */
  nodes: string[];
  property: string;
  /** The address once the user and password are out of it. */
  address: string;
  credentials: Record<string, string>;
}

const LITERAL_FORMS: CredentialForm[] = [
  {
    name: 'odbc: connection string',
    line: 'connector: odbc:DRIVER={PostgreSQL Unicode};SERVER=db;UID=clerk;PWD={s3cret;pw}',
    nodes: ['exs-odbc'], property: 'connector', address: 'odbc:DRIVER={PostgreSQL Unicode};SERVER=db',
    credentials: { user: 'clerk', password: 's3cret;pw' },
  },
  {
    name: 'odbc:// URL with user info',
    line: 'connector: odbc://clerk:s3cret%40pw@db.example:5432/permits?driver=PostgreSQL%20Unicode',
    nodes: ['exs-odbc'], property: 'connector', address: 'odbc://db.example:5432/permits?driver=PostgreSQL%20Unicode',
    credentials: { user: 'clerk', password: 's3cret@pw' },
  },
  {
    name: 'odbc:// URL with ?uid=&pwd=',
    line: 'connector: odbc://db.example:5432/permits?driver=PostgreSQL%20Unicode&uid=clerk&pwd=s3cret-pw',
    nodes: ['exs-odbc'], property: 'connector', address: 'odbc://db.example:5432/permits?driver=PostgreSQL%20Unicode',
    credentials: { user: 'clerk', password: 's3cret-pw' },
  },
  {
    name: 'mqtt:// connector',
    line: 'connector: mqtt://clerk:s3cret-pw@tracker:1883/sms/{key}',
    nodes: ['exs-mqtt-connector'], property: 'broker', address: 'mqtt://tracker:1883',
    credentials: { user: 'clerk', password: 's3cret-pw' },
  },
  {
    name: 'broker',
    line: 'connector: odbc://mainframe-dsn\nbroker: mqtt://clerk:s3cret-pw@broker.example:1883',
    nodes: ['mqtt-broker', 'exs-source'], property: 'broker', address: 'mqtt://broker.example:1883',
    credentials: { user: 'clerk', password: 's3cret-pw' },
  },
];

function contractWith(line: string): string {
  return RUNNABLE.replace('connector: odbc://mainframe-dsn', line);
}

describe('importer: user and password never in a flow file', () => {
  for (const form of LITERAL_FORMS) {
    it(`${form.name}: left out of the flow file with a warning, on the ${form.nodes.join(' and ')} credentials for a deploy`, () => {
      const text = contractWith(form.line);
      const result = importContractText(text, 'secret.sync.yaml');
      assert.deepEqual(result.diagnostics.filter((d) => d.severity === 'error'), []);
      const flowText = JSON.stringify(result.nodes);
      assert.doesNotMatch(flowText, /s3cret/, 'no password in the flow');
      assert.doesNotMatch(flowText, /clerk/, 'no user name in the flow');
      for (const type of form.nodes) assert.equal(byType(result.nodes, type)[form.property], form.address);
      assert.ok(result.nodes.every((n) => n.credentials === undefined), 'no credentials in a flow file');
      const where = form.nodes.includes('mqtt-broker') ? 'broker' : 'connector';
      assert.equal(
        literalCredentialWarning(result.contracts[0], 'secret.sync.yaml'),
        `secret.sync.yaml: the ${where} holds a literal password; it is not written to flow files. Use \${VAR} instead.`,
      );

      const deployed = importText(text, 'secret.sync.yaml', true);
      for (const type of form.nodes) {
        assert.deepEqual(byType(deployed, type).credentials, form.credentials, type);
        assert.equal(byType(deployed, type)[form.property], form.address, type);
      }
      assert.deepEqual(deployed.filter((n) => n.credentials).map((n) => n.type).sort(), [...form.nodes].sort(), 'only those nodes hold credentials');
      const withoutCredentials = deployed.map(({ credentials: _omit, ...node }) => node);
      assert.doesNotMatch(JSON.stringify(withoutCredentials), /s3cret|clerk/, 'the rest of the deployed flow holds no secret');
    });
  }

  it('a literal user name alone is left out too, and the warning says so', () => {
    const result = importContractText(contractWith('connector: odbc://clerk@db.example:5432/permits?driver=X'), 'user.sync.yaml');
    assert.equal(byType(result.nodes, 'exs-odbc').connector, 'odbc://db.example:5432/permits?driver=X');
    assert.match(literalCredentialWarning(result.contracts[0], 'user.sync.yaml') ?? '', /the connector holds a literal user name/);
  });

  it('warns once per place when both the connector and the broker hold passwords', () => {
    const result = importContractText(contractWith(`${LITERAL_FORMS[1].line}\nbroker: mqtt://hms:s3cret@broker.example:1883`), 'both.sync.yaml');
    const lines = (literalCredentialWarning(result.contracts[0], 'both.sync.yaml') ?? '').split('\n');
    assert.deepEqual(lines.map((line) => line.replace(/ holds .*/, '')), ['both.sync.yaml: the connector', 'both.sync.yaml: the broker']);
  });

  it('keeps ${VAR} references in every address form, with no warning, and exports them back', () => {
    const forms = [
      { line: 'connector: odbc:DRIVER={X};SERVER=db;UID=${DB_USER};PWD={${DB_PW}}', node: 'exs-odbc', property: 'connector' },
      { line: 'connector: odbc://${DB_USER}:${DB_PW}@db.example:5432/permits?driver=X', node: 'exs-odbc', property: 'connector' },
      { line: 'connector: odbc://db.example:5432/permits?driver=X&uid=${DB_USER}&pwd=${DB_PW}', node: 'exs-odbc', property: 'connector' },
      { line: 'connector: mqtt://${DB_USER}:${DB_PW}@tracker:1883/sms/{key}', node: 'exs-mqtt-connector', property: 'broker' },
    ];
    for (const form of forms) {
      const text = contractWith(form.line);
      for (const withCredentials of [false, true]) {
        const nodes = importText(text, 'ref.sync.yaml', withCredentials);
        const address = String(byType(nodes, form.node)[form.property]);
        assert.ok(address.includes('${DB_USER}') && address.includes('${DB_PW}'), `${form.line}: ${address}`);
        assert.ok(nodes.every((n) => n.credentials === undefined), `${form.line}: no credentials, the node reads the environment`);
      }
      const result = importContractText(text, 'ref.sync.yaml');
      assert.equal(literalCredentialWarning(result.contracts[0], 'ref.sync.yaml'), undefined);
      const [exported] = exportContracts(result.nodes);
      assert.deepEqual(importText(exported.yaml), result.nodes, `${form.line} round-trips`);
    }
  });

  it('moves only the literal half when the user is literal and the password a reference', () => {
    const text = contractWith('connector: odbc://clerk:${DB_PW}@db.example:5432/permits?driver=X');
    assert.equal(byType(importText(text), 'exs-odbc').connector, 'odbc://:${DB_PW}@db.example:5432/permits?driver=X');
    const odbc = byType(importText(text, 'mixed.sync.yaml', true), 'exs-odbc');
    assert.equal(odbc.connector, 'odbc://:${DB_PW}@db.example:5432/permits?driver=X');
    assert.deepEqual(odbc.credentials, { user: 'clerk' });
  });

  it("gives broker references to the mqtt-broker's credentials for a deploy, since it does not expand them in its URL", () => {
    const text = contractWith('connector: odbc://mainframe-dsn\nbroker: mqtt://${MQTT_USER}:${MQTT_PW}@broker.example:1883');
    const file = importText(text);
    assert.equal(byType(file, 'mqtt-broker').broker, 'mqtt://${MQTT_USER}:${MQTT_PW}@broker.example:1883', 'a flow file keeps them in the URL');
    assert.equal(byType(file, 'mqtt-broker').credentials, undefined);
    const deployed = importText(text, 'x.sync.yaml', true);
    for (const type of ['mqtt-broker', 'exs-source']) {
      assert.equal(byType(deployed, type).broker, 'mqtt://broker.example:1883', type);
      assert.deepEqual(byType(deployed, type).credentials, { user: '${MQTT_USER}', password: '${MQTT_PW}' }, type);
    }
  });
});
