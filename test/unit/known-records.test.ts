// KnownRecords: the connector's memory of the records it wrote last (see OdbcConnector.applyKnown).
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { KnownRecords, UNSEEN, type KnownRecord } from '../../nodes/core/connectors/known-records';

const record = (status: string): KnownRecord => ({
  state: { version: null, tiebreak: 't', written: { STATUS: status }, columns: {} },
  check: { fingerprint: `f-${status}`, version: null, tiebreak: 't' },
  current: { STATUS: status },
  rowVersion: `v-${status}`,
});

describe('KnownRecords', () => {
  it('keeps the newest records up to its limit, forgetting the least recently written first', () => {
    const known = new KnownRecords(2);
    known.remember('A', record('a'));
    known.remember('B', record('b'));
    known.remember('A', record('a2')); // A written again: now the newest
    known.remember('C', record('c'));
    assert.equal(known.size, 2);
    assert.equal(known.isKnown('B'), false);
    assert.equal(known.lookUp('A')?.rowVersion, 'v-a2');
    assert.equal(known.lookUp('C')?.rowVersion, 'v-c');
    known.forget('C');
    assert.equal(known.isKnown('C'), false);
  });

  it('presumes unseen keys new while that keeps being right, and again once it is right again', () => {
    const known = new KnownRecords(10);
    assert.equal(known.lookUp('X'), UNSEEN);
    // A table with rows from before EXS: once misses outnumber new keys, unseen keys are read first.
    known.learnWhetherNew(true);
    known.learnWhetherNew(false);
    assert.equal(known.lookUp('X'), UNSEEN);
    known.learnWhetherNew(false);
    assert.equal(known.lookUp('X'), undefined);
    // The presumption is bounded: twenty misses are undone by twenty new keys, not by more.
    for (let i = 0; i < 100; i++) known.learnWhetherNew(false);
    for (let i = 0; i < 19; i++) known.learnWhetherNew(true);
    assert.equal(known.lookUp('X'), undefined);
    known.learnWhetherNew(true);
    assert.equal(known.lookUp('X'), UNSEEN);
    // What is known is returned whatever the presumption.
    known.remember('K', record('k'));
    for (let i = 0; i < 5; i++) known.learnWhetherNew(false);
    assert.equal(known.lookUp('K')?.rowVersion, 'v-k');
  });
});
