// What a deploy changed downstream of a node, read from what Node-RED tells at flows:started.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { changedDownstream } from '../../nodes/shared/deploys';

const flows = [
  { id: 'tab', type: 'tab' },
  { id: 'queue', type: 'exs-sync-queue', wires: [['out'], ['log']] },
  { id: 'out', type: 'link out', links: ['in'], wires: [] },
  { id: 'in', type: 'link in', wires: [['mapper']] },
  { id: 'mapper', type: 'exs-mapper', wires: [['loop'], ['log']] },
  { id: 'loop', type: 'function', wires: [['mapper']] }, // a cycle
  { id: 'log', type: 'exs-change-log', wires: [[], []] },
  { id: 'side', type: 'debug', wires: [] },
];

describe('changedDownstream', () => {
  it('follows wires and link nodes (and survives cycles) from the given node', () => {
    const changedAfter = (changed: string[], rewired: string[] = []) => changedDownstream({ type: 'nodes', diff: { changed, rewired }, config: { flows } });
    assert.equal(changedAfter(['loop'])('queue'), true, 'behind a link and a cycle');
    assert.equal(changedAfter([], ['in'])('queue'), true, 'rewired');
    assert.equal(changedAfter(['side', 'tab'])('queue'), false, 'a node the messages do not reach');
    assert.equal(changedAfter(['queue'])('mapper'), false, 'upstream of the node');
    assert.equal(changedAfter([])('queue'), false);
    assert.equal(changedDownstream(undefined)('queue'), false);
  });
});
