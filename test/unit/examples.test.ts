// examples/: the flows Node-RED offers under Import > Examples. They are generated from the
// example contracts, so they must match what the importer makes of them today, every
// contract must validate, and together they must show every EXS node a user can place.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FlowNode } from '../../flows/flow-types';
import { KEEP_REFERENCES_ENV } from '../../flows/import';
import { parseContract } from '../../nodes/core/contract/load';
import { formatDiagnostic } from '../../nodes/core/types';

const root = path.resolve(__dirname, '..', '..', '..');
const examplesDir = path.join(root, 'examples');
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { exampleFlows } = require(path.join(root, 'scripts', 'build-examples.js')) as {
  exampleFlows(): Array<{ contract: string; flowFile: string; text: string }>;
};

/** The nodes a user places on a tab; exs-job and exs-odbc are config nodes. */
const PLACEABLE_EXS_NODES = ['exs-sync-queue', 'exs-mapper', 'exs-conflict-resolver', 'exs-connector', 'exs-mqtt-connector', 'exs-change-log'];

function filesEnding(suffix: string): string[] {
  return fs.readdirSync(examplesDir).filter((f) => f.endsWith(suffix)).sort();
}

describe('examples', () => {
  it('has a flow for every example contract and no flow without one', () => {
    const contracts = filesEnding('.sync.yaml').map((f) => f.replace(/\.sync\.yaml$/, ''));
    const flows = filesEnding('.json').map((f) => f.replace(/\.json$/, ''));
    assert.ok(contracts.includes('cobol_permit') && contracts.includes('sms_tracker') && contracts.includes('inspection_lww'));
    assert.deepEqual(flows, contracts);
  });

  it('each examples/*.json is exactly what scripts/build-examples.js generates now', () => {
    for (const example of exampleFlows()) {
      const relative = path.relative(root, example.flowFile);
      assert.ok(fs.existsSync(example.flowFile), `${relative} exists (run node scripts/build-examples.js)`);
      assert.equal(fs.readFileSync(example.flowFile, 'utf8'), example.text, `${relative} is stale: run node scripts/build-examples.js`);
    }
  });

  it('every example contract validates, ${VAR} references kept for where it is deployed', () => {
    for (const name of filesEnding('.sync.yaml')) {
      const file = path.join('examples', name);
      const { contract, diagnostics } = parseContract(fs.readFileSync(path.join(root, file), 'utf8'), file, KEEP_REFERENCES_ENV);
      const errors = diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);
      assert.deepEqual(errors, [], `${file} is valid`);
      assert.ok(contract?.table || contract?.connector.startsWith('mqtt://'), `${file} can run: it names a table or an MQTT destination`);
      assert.ok(contract?.key, `${file} names its key`);
    }
  });

  it('every example flow is a Node-RED flow array on tabs of its own, with no password', () => {
    for (const name of filesEnding('.json')) {
      const text = fs.readFileSync(path.join(examplesDir, name), 'utf8');
      const flow = JSON.parse(text) as FlowNode[];
      assert.ok(Array.isArray(flow) && flow.length > 0, `${name} is a non-empty array of nodes`);
      const tabs = new Set(flow.filter((n) => n.type === 'tab').map((n) => n.id));
      assert.equal(tabs.size, 1, `${name} has one tab`);
      assert.ok(flow.filter((n) => n.type !== 'tab').every((n) => n.z && tabs.has(n.z)), `${name}: every node sits on its tab`);
      assert.ok(flow.every((n) => n.credentials === undefined), `${name} carries no credentials`);
      assert.doesNotMatch(text, /PWD=(?!\$\{)/i, `${name} has no literal password`);
    }
  });

  it('shows every placeable EXS node in at least one example flow', () => {
    const used = new Set(filesEnding('.json').flatMap((name) => (JSON.parse(fs.readFileSync(path.join(examplesDir, name), 'utf8')) as FlowNode[]).map((n) => n.type)));
    const missing = PLACEABLE_EXS_NODES.filter((type) => !used.has(type));
    assert.deepEqual(missing, [], `node types in no example flow: ${missing.join(', ')}`);
  });

  it('the examples exercise the transforms legacy columns need', () => {
    const mappings = filesEnding('.sync.yaml').map((name) => fs.readFileSync(path.join(examplesDir, name), 'utf8')).join('\n');
    for (const transform of ['map(', 'upper', 'timestamp', 'default(', 'pad(']) {
      assert.ok(mappings.includes(`| ${transform}`), `some example uses ${transform}`);
    }
    assert.match(mappings, /conflict_rule: LAST_WRITE_WINS/);
  });
});
