// sync.yaml <-> flow: wiring, stable ids, round trips, and no secret in a flow file.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { exportContracts } from '../../flows/export';
import { mergeFlows, type FlowNode } from '../../flows/flow-types';
import { importContractText } from '../../flows/import';

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
  it('wires mqtt in -> queue -> mapper -> resolver -> connector -> change log -> mqtt out on one tab', () => {
    const nodes = importText(RUNNABLE);
    const tab = byType(nodes, 'tab');
    assert.equal(tab.label, 'Permit_Sync');
    assert.ok(nodes.filter((n) => n.type !== 'tab').every((n) => n.z === tab.id), 'every node is on the job tab');
    const chain = ['mqtt in', 'exs-sync-queue', 'exs-mapper', 'exs-conflict-resolver', 'exs-connector', 'exs-change-log', 'mqtt out'];
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
    assert.equal(byType(nodes, 'mqtt in').topic, 'permits/status');
    assert.equal(byType(nodes, 'mqtt in').qos, '1');
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

  it('uses the MQTT connector for an mqtt:// destination', () => {
    const nodes = importText(RUNNABLE.replace('connector: odbc://mainframe-dsn', 'connector: mqtt://127.0.0.1:1883/sms/permits/{key}'));
    const connector = byType(nodes, 'exs-mqtt-connector');
    assert.equal(connector.topic, 'sms/permits/{key}');
    assert.equal(nodes.some((n) => n.type === 'exs-odbc'), false);
    const [exported] = exportContracts(nodes);
    assert.deepEqual(importText(exported.yaml), nodes);
  });
});
