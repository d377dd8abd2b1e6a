// What a deploy stopped downstream of a node, read from what Node-RED tells at flows:started.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { changedDownstream } from '../../nodes/shared/deploys';
import type { DeployInfo } from '../../nodes/shared/red';

const flows = [
  { id: 'A', type: 'tab' },
  { id: 'B', type: 'tab' },
  { id: 'queue', type: 'exs-sync-queue', z: 'A', wires: [['out'], ['log']] },
  { id: 'out', type: 'link out', z: 'A', links: ['in'], wires: [] },
  { id: 'in', type: 'link in', z: 'B', links: ['out', 'elsewhere'], wires: [['delay']] },
  { id: 'delay', type: 'delay', z: 'B', wires: [['mapper']] },
  { id: 'mapper', type: 'exs-mapper', z: 'A', wires: [['loop'], ['log']] },
  { id: 'loop', type: 'function', z: 'A', wires: [['mapper']] }, // a cycle
  { id: 'log', type: 'exs-change-log', z: 'A', wires: [['feed'], []] },
  { id: 'feed', type: 'mqtt out', z: 'A', wires: [] },
  { id: 'elsewhere', type: 'link out', z: 'B', links: ['in'], wires: [] },
  { id: 'side', type: 'debug', z: 'A', wires: [] },
];
const after = (type: string, diff: DeployInfo['diff']) => changedDownstream({ type, diff, config: { flows } });

describe('changedDownstream', () => {
  it('finds a stopped node the messages reach, through link nodes and cycles, up to the change log', () => {
    assert.equal(after('nodes', { changed: ['loop'] })('queue'), true, 'behind a link and a cycle');
    assert.equal(after('nodes', { changed: ['delay', 'B'] })('queue'), true, 'on another tab, through the link');
    assert.equal(after('nodes', { changed: ['side', 'A'] })('queue'), false, 'a node the messages do not reach');
    assert.equal(after('nodes', { changed: ['feed'] })('queue'), false, 'past the change log: the feed holds no event of the job');
    assert.equal(after('nodes', { changed: ['elsewhere'] })('queue'), false, 'a link-in node\'s links point back, not on');
    assert.equal(after('nodes', { changed: ['queue'] })('mapper'), false, 'upstream of the node');
    assert.equal(after('nodes', {})('queue'), false);
    assert.equal(changedDownstream(undefined)('queue'), false);
  });

  it('knows what each kind of deploy stops: rewired and linked nodes only in a deploy of modified flows, a whole flow whose settings changed', () => {
    assert.equal(after('nodes', { rewired: ['delay'] })('queue'), false, 'a modified-nodes deploy does not stop a rewired node');
    assert.equal(after('flows', { rewired: ['delay'] })('queue'), true);
    assert.equal(after('flows', { linked: ['delay'] })('queue'), true);
    assert.equal(after('nodes', { removed: ['gone'], rewired: ['delay'] })('queue'), true, 'a removed node\'s old neighbour stands for it');
    assert.equal(after('nodes', { flowChanged: ['B'] })('queue'), true, 'every node of tab B restarts');
  });

  it('follows a subflow\'s outputs to what each of its instances is wired to, also from a subflow inside another', () => {
    const nested = [
      { id: 'A', type: 'tab' },
      // The queue inside subflow S; S's first output leads out of it.
      { id: 'S', type: 'subflow', out: [{ wires: [{ id: 'queue', port: 0 }] }, { wires: [{ id: 'queue', port: 1 }] }] },
      { id: 'queue', type: 'exs-sync-queue', z: 'S', wires: [[], []] },
      // S's instance inside subflow T, then two nodes, the second wired to T's output.
      { id: 'T', type: 'subflow', out: [{ wires: [{ id: 'last', port: 0 }] }] },
      { id: 'inner', type: 'subflow:S', z: 'T', wires: [['step'], []] },
      { id: 'step', type: 'function', z: 'T', wires: [['last']] },
      { id: 'last', type: 'function', z: 'T', wires: [[]] },
      // T's instance on tab A, then the rest of the job's flow.
      { id: 'outer', type: 'subflow:T', z: 'A', wires: [['mapper']] },
      { id: 'mapper', type: 'exs-mapper', z: 'A', wires: [['log'], ['log']] },
      { id: 'log', type: 'exs-change-log', z: 'A', wires: [['feed'], []] },
      { id: 'feed', type: 'mqtt out', z: 'A', wires: [] },
      { id: 'other', type: 'subflow:S', z: 'A', wires: [['side'], []] },
      { id: 'side', type: 'debug', z: 'A', wires: [] },
    ];
    const deployed = (diff: DeployInfo['diff']) => changedDownstream({ type: 'nodes', diff, config: { flows: nested } });
    assert.equal(deployed({ changed: ['step'] })('queue'), true, 'inside T, after S\'s output');
    assert.equal(deployed({ changed: ['mapper', 'A'] })('queue'), true, 'on the tab, after both subflows\' outputs');
    assert.equal(deployed({ changed: ['side', 'A'] })('queue'), true, 'after another instance of S: every instance counts');
    assert.equal(deployed({ changed: ['feed'] })('queue'), false, 'past the change log');
    assert.equal(deployed({ changed: ['mapper', 'A'] })('step'), true);
    assert.equal(deployed({ changed: ['queue'] })('mapper'), false, 'upstream');
  });
});
