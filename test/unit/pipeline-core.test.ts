// Pure pieces of the pipeline: event parsing, the conflict law, change-log entries, the job.
import { describe, it, mock } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildChangeLogEntry } from '../../nodes/core/changelog-entry';
import { timeValue } from '../../nodes/core/conflict';
import { substituteEnv } from '../../nodes/core/env';
import { compileIdentify, parseKeyRule, parseMapping } from '../../nodes/core/mapping';
import { parseEvent } from '../../nodes/core/event';
import { SyncJob } from '../../nodes/core/sync-job';
import { changedDownstream } from '../../nodes/shared/deploys';
import type { Delivery } from '../../nodes/core/queue/dispatcher';
import { tempDir } from '../support/services';

describe('parseEvent', () => {
  it('accepts JSON objects as text, buffers or objects', () => {
    assert.deepEqual(parseEvent('{"a":1}'), { ok: true, event: { a: 1 } });
    assert.deepEqual(parseEvent(Buffer.from('{"a":1}')), { ok: true, event: { a: 1 } });
    assert.deepEqual(parseEvent({ a: 1 }), { ok: true, event: { a: 1 } });
  });

  it('refuses what is not a JSON object, keeping the raw text', () => {
    const notJson = parseEvent('permit approved');
    assert.equal(notJson.ok, false);
    assert.match(!notJson.ok ? notJson.error : '', /^event is not JSON/);
    assert.equal(!notJson.ok ? notJson.raw : '', 'permit approved');
    for (const [input, kind] of [['[1]', 'an array'], ['null', 'null'], ['42', 'a number'], ['"x"', 'a string']]) {
      const result = parseEvent(input);
      assert.equal(!result.ok && result.error, `event must be a JSON object, got ${kind}`);
    }
  });

  it('refuses an oversize event and keeps only a prefix', () => {
    const result = parseEvent(JSON.stringify({ blob: 'x'.repeat(5000) }), 1000);
    assert.equal(result.ok, false);
    assert.match(!result.ok ? result.error : '', /5\d{3} bytes, over the 1000-byte limit/);
    assert.equal(!result.ok ? result.raw.length : 0, 1024);
  });
});

describe('timeValue: how the conflict law reads times', () => {
  it('reads destination times without a zone as UTC', () => {
    assert.equal(timeValue('2026-01-01 10:00:00.250000'), Date.parse('2026-01-01T10:00:00.250Z'));
    assert.equal(timeValue('not a time'), undefined);
  });
  it('reads compact legacy stamps (YYYYMMDD[HHmm[ss]]) as UTC', () => {
    assert.equal(timeValue('20260301100000'), Date.parse('2026-03-01T10:00:00Z'));
    assert.equal(timeValue('202603011000'), Date.parse('2026-03-01T10:00:00Z'));
    assert.equal(timeValue('20260301'), Date.parse('2026-03-01T00:00:00Z'));
    assert.ok(timeValue('20260301100000')! > timeValue('20260301095959')!);
  });
  it('reads a compact stamp held in a numeric column (8, 12 or 14-20 digits) like its text', () => {
    assert.equal(timeValue(20260301100000), Date.parse('2026-03-01T10:00:00Z'));
    assert.equal(timeValue(BigInt('20260301100000')), Date.parse('2026-03-01T10:00:00Z'));
    assert.equal(timeValue(202603011000), Date.parse('2026-03-01T10:00:00Z'));
    assert.equal(timeValue(20260301), Date.parse('2026-03-01T00:00:00Z'));
    assert.equal(timeValue('20260301100000123'), Date.parse('2026-03-01T10:00:00.123Z'));
    assert.equal(timeValue(20261301100000), undefined, 'month 13 is no time');
    assert.ok(timeValue(20260301100000)! < timeValue('20260301100005')!);
  });
  it('reads 13-digit and other whole numbers as epoch milliseconds', () => {
    assert.equal(timeValue(1772359200000), Date.parse('2026-03-01T10:00:00Z'));
    assert.equal(timeValue('1772359200000'), Date.parse('2026-03-01T10:00:00Z'));
    assert.equal(timeValue(new Date('2026-03-01T10:00:00Z')), Date.parse('2026-03-01T10:00:00Z'));
    assert.equal(timeValue(0), 0);
  });
  it('keeps microseconds, so times within one millisecond still compare', () => {
    assert.ok(timeValue('2026-01-01 10:00:00.000002')! > timeValue('2026-01-01T10:00:00.000001Z')!);
  });
});

describe('substituteEnv', () => {
  it('replaces ${NAME}, reports unset names, and honours $${ as a literal', () => {
    assert.deepEqual(substituteEnv('PWD=${PW};X=${NOPE};Y=$${PW}', { PW: 'secret' }), { value: 'PWD=secret;X=${NOPE};Y=${PW}', missing: ['NOPE'] });
    // A name every object answers is a variable like any other: missing unless set.
    assert.deepEqual(substituteEnv('${toString}${constructor}', {}), { value: '${toString}${constructor}', missing: ['toString', 'constructor'] });
  });
});

describe('buildChangeLogEntry', () => {
  const envelope = { job: 'J', seq: 7, attempt: 1, receivedAt: 1000 };
  it('records an applied write with before, after and latency', () => {
    const entry = buildChangeLogEntry(
      { ...envelope, key: 'P-1', outcome: 'applied', result: { outcome: 'applied', before: { S: 'PEND' }, after: { S: 'APPR' } } },
      { permit_id: 'P-1' },
      1250,
    );
    assert.deepEqual(entry, {
      time: new Date(1250).toISOString(), job: 'J', seq: 7, key: 'P-1', outcome: 'applied', dest_row: 'OK',
      attempts: 1, latency_ms: 250, before: { S: 'PEND' }, after: { S: 'APPR' }, event: { permit_id: 'P-1' },
    });
  });
  it('tells a rejected event from a failed write', () => {
    assert.equal(buildChangeLogEntry({ ...envelope, outcome: 'dead_letter', error: 'not JSON', raw: 'x' }, 'x').dest_row, 'REJECTED');
    const failed = buildChangeLogEntry({ ...envelope, outcome: 'dead_letter', error: 'too long', record: { keyColumn: 'K', keyValue: 1, row: { K: 1 } } }, {});
    assert.equal(failed.dest_row, 'FAILED');
    assert.equal(failed.error, 'too long');
  });
});

describe('SyncJob', () => {
  const settings = { id: 'J', source_topic: 't', destination: 'd', schedule: 'realtime', conflict_rule: 'HMS_WINS' as const, retry_policy: { max_attempts: 3, backoff_seconds: 0 }, dead_letter: 'dl', changelog: 'cl', changelog_feed: 'entry' as const, backlog: 'every_event' as const };

  function collect(job: SyncJob): { deliveries: Delivery[]; next(count: number): Promise<Delivery[]> } {
    const deliveries: Delivery[] = [];
    let waiter: (() => void) | undefined;
    job.attachQueue((d) => {
      deliveries.push(d);
      waiter?.();
    }, { nodeId: 'queue' });
    return {
      deliveries,
      next: (count) =>
        new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`only ${deliveries.length} of ${count} deliveries`)), 5000);
          const check = () => {
            if (deliveries.length >= count) {
              clearTimeout(timer);
              waiter = undefined;
              resolve(deliveries.slice(0, count));
            }
          };
          waiter = check;
          check();
        }),
    };
  }

  it('delivers accepted events from the journal and forgets them once settled', async () => {
    const job = new SyncJob(settings, tempDir('job'));
    const queue = collect(job);
    const seq = await job.accept('permits/status', Buffer.from('{"permit_id":"P-1"}'));
    const [delivery] = await queue.next(1);
    assert.equal(delivery.record.seq, seq);
    assert.equal(delivery.attempt, 1);
    assert.equal(delivery.record.payload.toString(), '{"permit_id":"P-1"}');
    assert.equal(job.state().depth, 1);
    job.settle(seq, 'applied');
    assert.equal(job.state().depth, 0);
    assert.equal(job.counters.applied, 1);
    await job.close();
  });

  it('delivers what an earlier run left unsettled, and continues its numbering', async () => {
    const dir = tempDir('job');
    const first = new SyncJob(settings, dir);
    const firstQueue = collect(first);
    const seqs = [];
    for (const id of ['A', 'B', 'C']) seqs.push(await first.accept('t', Buffer.from(`{"id":"${id}"}`)));
    await firstQueue.next(3);
    first.settle(seqs[0], 'applied');
    await first.close();

    const second = new SyncJob(settings, dir);
    const secondQueue = collect(second);
    const replayed = await secondQueue.next(2);
    assert.deepEqual(replayed.map((d) => d.record.seq), [seqs[1], seqs[2]]);
    assert.ok((await second.accept('t', Buffer.from('{}'))) > seqs[2]);
    await second.close();
  });

  it('retries a data failure with a higher attempt, then gives it up to the dead letter', async () => {
    const job = new SyncJob(settings, tempDir('job'));
    const queue = collect(job);
    const seq = await job.accept('t', Buffer.from('{}'));
    await queue.next(1);
    assert.equal(job.fail(seq, 'data'), 'retry');
    assert.equal((await queue.next(2))[1].attempt, 2);
    assert.equal(job.fail(seq, 'data'), 'retry');
    assert.equal((await queue.next(3))[2].attempt, 3);
    assert.equal(job.fail(seq, 'data'), 'dead_letter', 'max_attempts is 3');
    await job.close();
  });

  it('pauses on a transient failure without spending attempts, and resumes after a write', async () => {
    const job = new SyncJob({ ...settings, retry_policy: { max_attempts: 1, backoff_seconds: 0 } }, tempDir('job'));
    const queue = collect(job);
    const first = await job.accept('t', Buffer.from('{}'));
    await queue.next(1);
    assert.equal(job.fail(first, 'transient'), 'retry', 'a transient failure never dead-letters');
    assert.equal(job.state().paused, true);
    const second = await job.accept('t', Buffer.from('{}'));
    const redelivered = await queue.next(2);
    assert.deepEqual(redelivered.map((d) => [d.record.seq, d.attempt]), [[first, 1], [first, 1]], 'only the failed event is tried while paused');
    job.settle(first, 'applied');
    assert.equal(job.state().paused, false);
    assert.equal((await queue.next(3))[2].record.seq, second);
    await job.close();
  });

  it('asks a destination that stays down again at most 15 s apart, however long backoff_seconds is', async () => {
    // With backoff_seconds 300 the probes used to back off to 5 minutes: a database back after its
    // nightly window waited minutes for the next probe before the backlog began to drain.
    const job = new SyncJob({ ...settings, retry_policy: { max_attempts: 1, backoff_seconds: 300 } }, tempDir('job'));
    const queue = collect(job);
    const seq = await job.accept('t', Buffer.from('{}'));
    await queue.next(1);
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      for (let probe = 1; probe <= 8; probe++) {
        assert.equal(job.fail(seq, 'transient'), 'retry');
        // Equal jitter: half the capped 15 s is fixed, so no probe comes before 7.5 s ...
        mock.timers.tick(7_499);
        assert.equal(queue.deliveries.length, probe, `probe ${probe} came before 7.5 s`);
        // ... and every probe has come by 15 s.
        mock.timers.tick(15_000 - 7_499);
        assert.equal(queue.deliveries.length, probe + 1, `probe ${probe} had not come after 15 s`);
        assert.equal(queue.deliveries[probe].record.seq, seq);
      }
    } finally {
      mock.timers.reset();
    }
    job.settle(seq, 'applied');
    assert.equal(job.state().paused, false);
    await job.close();
  });

  it('after an outage, sends what failed during it again in journal order, oldest first as the probe', async () => {
    const job = new SyncJob({ ...settings, retry_policy: { max_attempts: 1, backoff_seconds: 0 } }, tempDir('job'));
    const queue = collect(job);
    const seqs: number[] = [];
    for (const id of ['A1', 'B1', 'A2']) seqs.push(await job.accept('t', Buffer.from(`{"id":"${id}"}`)));
    await queue.next(3);
    // The destination goes down: the writes fail in the order the connector happened to finish them.
    for (const seq of [seqs[2], seqs[0], seqs[1]]) assert.equal(job.fail(seq, 'transient'), 'retry');
    const [probe] = (await queue.next(4)).slice(3);
    assert.equal(probe.record.seq, seqs[0], 'the oldest failed event asks whether the destination is back');
    job.settle(seqs[0], 'applied');
    const resent = (await queue.next(6)).slice(4).map((d) => d.record.seq);
    assert.deepEqual(resent, [seqs[1], seqs[2]], 'the rest follow in journal order, so A2 is written after A1');
    await job.close();
  });

  it('with backlog: newest_per_record, hands out each record\'s newest of the events waiting together and logs the others as superseded', async () => {
    const rules = parseMapping(['HMS:status -> COBOL:PERMIT_STAT | map(A=A, B=B, C=C)', 'HMS:inspector -> COBOL:INSPECTOR']).rules;
    const identify = compileIdentify(rules, parseKeyRule('HMS:permit_id -> COBOL:PERMIT_ID'));
    const events = [
      { permit_id: 'P-1', status: 'A', inspector: 'Ada', updated_at: '2026-03-01T10:00:01Z' }, // fills INSPECTOR, which P-1's newest lacks
      { permit_id: 'P-2', status: 'A', updated_at: '2026-03-01T10:00:01Z' }, // superseded by P-2's newest
      { permit_id: 'P-1', status: 'B', updated_at: '2026-03-01T10:00:03Z' }, // P-1's newest
      { permit_id: 'P-1', status: 'C', updated_at: '2026-03-01T10:00:02Z' }, // older, after the newest is handed out: written (the law skips it)
      { permit_id: 'P-2', status: 'B', updated_at: '2026-03-01T10:00:02Z' }, // P-2's newest
      { permit_id: 'P-3', status: 'Misfiled', updated_at: '2026-03-01T10:00:09Z' }, // refused by the mapping: replaces nothing
      { permit_id: 'P-3', status: 'A', updated_at: '2026-03-01T10:00:01Z' },
    ];
    const handedOut = async (backlog: 'every_event' | 'newest_per_record') => {
      const job = new SyncJob({ ...settings, backlog }, tempDir('job'));
      job.declareSchema({ keyColumn: 'PERMIT_ID', columns: ['PERMIT_STAT', 'INSPECTOR'], identify });
      // A backlog: every event is in the journal before the queue is attached.
      for (const event of events) await job.accept('permits/status', Buffer.from(JSON.stringify(event)));
      const queue = collect(job);
      const expected = backlog === 'every_event' ? events.length : 6;
      const seqs = (await queue.next(expected)).map((d) => d.record.seq);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(queue.deliveries.length, expected, 'nothing more is handed out');
      const superseded = (await job.changeLog.tail(10)).map((e) => `${e.seq}:${String(e.key)}:${e.outcome}:${e.reason}`);
      const counted = job.counters.superseded;
      await job.close();
      return { seqs, superseded, counted };
    };
    const coalesced = await handedOut('newest_per_record');
    assert.deepEqual(coalesced.seqs, [1, 3, 4, 5, 6, 7]);
    assert.deepEqual(coalesced.superseded, ['2:P-2:superseded:coalesced into event #5']);
    assert.equal(coalesced.counted, 1);
    const everyEvent = await handedOut('every_event');
    assert.deepEqual(everyEvent.seqs, [1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(everyEvent.superseded, []);
  });

  it('with backlog: newest_per_record, a newest event the queue will refuse (over its size limit) replaces nothing', async () => {
    const rules = parseMapping(['HMS:status -> COBOL:PERMIT_STAT']).rules;
    const job = new SyncJob({ ...settings, backlog: 'newest_per_record' }, tempDir('job'));
    job.declareSchema({ keyColumn: 'PERMIT_ID', columns: ['PERMIT_STAT'], identify: compileIdentify(rules, parseKeyRule('HMS:permit_id -> COBOL:PERMIT_ID')) });
    await job.accept('t', Buffer.from(JSON.stringify({ permit_id: 'P-1', status: 'Approved', updated_at: '2026-03-01T10:00:01Z' })));
    // Newer, but with a scan attached the mapping does not even read: over the queue's 2 KiB limit.
    await job.accept('t', Buffer.from(JSON.stringify({ permit_id: 'P-1', status: 'Issued', updated_at: '2026-03-01T10:00:02Z', scan: 'x'.repeat(4096) })));
    const deliveries: Delivery[] = [];
    job.attachQueue((d) => deliveries.push(d), { maxEventBytes: 2048 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(deliveries.map((d) => d.record.seq), [1, 2], 'both handed out: the first is written, the second goes to the dead letter');
    assert.equal(job.counters.superseded, 0);
    await job.close();
  });

  it('a failure reported for a copy an earlier queue node handed out, or with no queue node, is no attempt and no dead letter', async () => {
    const job = new SyncJob({ ...settings, retry_policy: { max_attempts: 1, backoff_seconds: 0 } }, tempDir('job'));
    const first: Delivery[] = [];
    const detach = job.attachQueue((d) => first.push(d));
    const seq = await job.accept('t', Buffer.from('{"permit_id":"P-1"}'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(first.length, 1);
    const oldQueue = first[0].queue;
    assert.equal(typeof oldQueue, 'number');
    detach(); // the queue node is redeployed alone
    assert.equal(job.fail(seq, 'transient', { queue: oldQueue }), 'retry', 'no queue node: the event stays in the journal for the next one');
    const queue = collect(job);
    const [again] = await queue.next(1);
    assert.equal(again.record.seq, seq);
    assert.notEqual(again.queue, oldQueue);
    // The old copy fails on: neither a dead letter (max_attempts 1) nor a change to the new copy,
    // which comes (the record's later events wait for it).
    assert.equal(job.fail(seq, 'data', { queue: oldQueue }), 'retry');
    assert.equal(job.fail(seq, 'transient', { queue: oldQueue }), 'retry');
    assert.deepEqual({ retrying: job.state().retrying, paused: job.state().paused }, { retrying: 0, paused: false });
    assert.equal(job.fail(seq, 'data', again), 'dead_letter', 'the current copy\'s own failure counts');
    job.settle(seq, 'dead_letter');
    assert.equal(job.fail(seq, 'data', { queue: oldQueue }), 'gone', 'settled: the old copy will not come again');
    await job.close();
  });

  it('after a deploy that replaced a node of its flow, hands out again what was in the flow before it and is still not heard of', async () => {
    const job = new SyncJob({ ...settings, retry_policy: { max_attempts: 3, backoff_seconds: 60 } }, tempDir('job'));
    const queue = collect(job);
    const seqs: number[] = [];
    for (const id of ['D-1', 'D-2', 'D-3', 'D-4']) seqs.push(await job.accept('t', Buffer.from(`{"permit_id":"${id}"}`)));
    await queue.next(4);
    // A deploy that stops no node the queue node's messages reach, or replaces the job itself (full): nothing again.
    const mapperStopped = (id: string) => id === 'queue';
    job.deployStarting();
    job.deployFinished('nodes');
    job.deployStarting();
    job.deployFinished('full', mapperStopped);
    assert.equal(queue.deliveries.length, 4);
    // A deploy of modified nodes that replaced the mapper: D-1 settled meanwhile, D-2 waits for a
    // retry (its failure was heard), D-3 and D-4 may have been dropped with the old mapper.
    job.deployStarting();
    job.settle(seqs[0], 'applied');
    assert.equal(job.fail(seqs[1], 'data', queue.deliveries[1]), 'retry');
    job.deployFinished('nodes', mapperStopped);
    assert.deepEqual(queue.deliveries.slice(4).map((d) => d.record.seq), [seqs[2], seqs[3]]);
    // An event handed out during a deploy may have gone to a node not created yet: it goes again too.
    job.deployStarting();
    const during = await job.accept('t', Buffer.from('{"permit_id":"D-5"}'));
    await queue.next(7);
    job.deployFinished('nodes', mapperStopped);
    assert.deepEqual(queue.deliveries.slice(7).map((d) => d.record.seq), [seqs[2], seqs[3], during]);
    await job.close();
  });

  it('after a deploy that replaced its queue node too, hands nothing out twice: the new queue node hands out every unsettled event itself', async () => {
    const job = new SyncJob(settings, tempDir('job'));
    const first: Delivery[] = [];
    const detach = job.attachQueue((d) => first.push(d));
    for (const id of ['Q-1', 'Q-2']) await job.accept('t', Buffer.from(`{"permit_id":"${id}"}`));
    while (first.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
    job.deployStarting(); // a deploy of modified flows: the queue node and the mapper restart
    detach();
    const queue = collect(job);
    await queue.next(2);
    job.deployFinished('flows', () => true);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(queue.deliveries.length, 2);
    await job.close();
  });

  it('knows what this run wrote for an event until it is settled, and which entries are being written', async () => {
    const job = new SyncJob(settings, tempDir('job'));
    collect(job);
    const seq = await job.accept('t', Buffer.from('{"permit_id":"W-1"}'));
    assert.equal(job.writtenAs(seq), undefined);
    const skipped = { outcome: 'skipped' as const, before: { V: 'newer' }, after: { V: 'newer' }, reason: 'the destination is newer' };
    job.noteWritten(seq, skipped); // a connector wrote it; its change-log entry is not written yet
    assert.deepEqual(job.writtenAs(seq), skipped, 'another copy goes on with what the law decided');
    assert.equal(job.startLogging(seq), true);
    assert.equal(job.startLogging(seq), false, 'a second copy adds no entry while the first is being written');
    job.stopLogging(seq); // that change-log node closed: the next one writes it
    assert.equal(job.startLogging(seq), true);
    job.settle(seq, 'skipped');
    assert.equal(job.writtenAs(seq), 'settled');
    assert.equal(job.startLogging(seq), false, 'its entry is on disk');
    await job.close();
  });

  it('stays paused while its probe is out, whatever else settles meanwhile', async () => {
    const job = new SyncJob({ ...settings, retry_policy: { max_attempts: 1, backoff_seconds: 0 } }, tempDir('job'));
    const queue = collect(job);
    const seqs: number[] = [];
    for (const id of ['R-1', 'R-2', 'R-3']) seqs.push(await job.accept('t', Buffer.from(`{"permit_id":"${id}"}`)));
    const delivered = await queue.next(3);
    assert.equal(job.fail(seqs[0], 'transient', delivered[0]), 'retry');
    const [probe] = (await queue.next(4)).slice(3); // a second later
    assert.equal(probe.record.seq, seqs[0]);
    await job.accept('t', Buffer.from('{"permit_id":"R-4"}'));
    job.settle(seqs[1], 'dead_letter'); // another event of the flow ends in the dead letter
    assert.equal(job.state().paused, true, 'the probe decides, not an unrelated dead letter');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(queue.deliveries.length, 4, 'nothing new handed out to a destination that may still be down');
    job.settle(seqs[0], 'applied');
    assert.equal(job.state().paused, false);
    await job.close();
  });

  it('after a deploy that changed a node its queue node\'s messages reach (a delay node, say), hands out again what was in the flow', async () => {
    const job = new SyncJob(settings, tempDir('job'));
    const deliveries: Delivery[] = [];
    job.attachQueue((d) => deliveries.push(d), { nodeId: 'queue' });
    const seq = await job.accept('t', Buffer.from('{"permit_id":"T-1"}'));
    while (deliveries.length < 1) await new Promise((resolve) => setTimeout(resolve, 5));
    // What Node-RED 4.1 and 5 tell at flows:started: the deployed flows and the ids the deploy changed.
    const flows = [
      { id: 'tab', type: 'tab' },
      { id: 'queue', type: 'exs-sync-queue', z: 'tab', wires: [['delay'], ['log']] },
      { id: 'delay', type: 'delay', z: 'tab', wires: [['mapper']] },
      { id: 'mapper', type: 'exs-mapper', z: 'tab', wires: [['log'], ['log']] },
      { id: 'log', type: 'exs-change-log', z: 'tab', wires: [[], []] },
      { id: 'debug', type: 'debug', z: 'tab', wires: [] },
    ];
    job.deployStarting();
    job.deployFinished('nodes', changedDownstream({ type: 'nodes', diff: { changed: ['debug', 'tab'] }, config: { flows } }));
    assert.equal(deliveries.length, 1, 'a node the events do not pass changed: nothing again');
    job.deployStarting();
    job.deployFinished('nodes', changedDownstream({ type: 'nodes', diff: { changed: ['delay', 'tab'] }, config: { flows } }));
    assert.deepEqual(deliveries.map((d) => d.record.seq), [seq, seq]);
    await job.close();
  });

  it('takes only the probe\'s own copy as its answer: an older copy of the event failing says nothing', async () => {
    const job = new SyncJob({ ...settings, retry_policy: { max_attempts: 5, backoff_seconds: 0 } }, tempDir('job'));
    const queue = collect(job);
    const seq = await job.accept('t', Buffer.from('{"permit_id":"R-1"}'));
    const [older] = await queue.next(1);
    assert.equal(job.fail(seq, 'transient', older), 'retry'); // the destination is down
    const [, probe] = await queue.next(2); // a second later
    assert.notEqual(probe.handout, older.handout);
    // The older copy (still in the flow, say behind a slow node) fails for its data: not the probe.
    assert.equal(job.fail(seq, 'data', older), 'retry');
    assert.deepEqual({ paused: job.state().paused, retrying: job.state().retrying }, { paused: true, retrying: 0 }, 'no attempt spent, still paused');
    await job.accept('t', Buffer.from('{"permit_id":"R-2"}'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(queue.deliveries.length, 2, 'nothing new handed out while the destination may be down');
    // The probe's own failure counts: still down.
    assert.equal(job.fail(seq, 'transient', probe), 'retry');
    assert.equal(job.state().paused, true);
    await job.close();
  });

  it('counts a failure once however many copies of the event fail, and a copy of a settled event is gone', async () => {
    const job = new SyncJob({ ...settings, retry_policy: { max_attempts: 2, backoff_seconds: 60 } }, tempDir('job'));
    const queue = collect(job);
    const seq = await job.accept('t', Buffer.from('{"permit_id":"P-1"}'));
    const [copy] = await queue.next(1);
    // Two copies of the event in the flow (one handed out again after a deploy): both fail.
    assert.equal(job.fail(seq, 'data', copy), 'retry');
    assert.equal(job.fail(seq, 'data', copy), 'retry', 'it comes again, but the second copy\'s failure is not a second attempt');
    assert.equal(job.fail(seq, 'transient', copy), 'retry');
    assert.deepEqual({ retrying: job.state().retrying, paused: job.state().paused }, { retrying: 1, paused: false });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(queue.deliveries.length, 1, 'one retry is pending (a minute away), not one per copy');
    // Settled by another copy: a failure of this one says nothing, and nothing waits for it.
    job.settle(seq, 'applied');
    assert.equal(job.fail(seq, 'transient', copy), 'gone');
    assert.equal(job.state().paused, false);
    await job.close();
  });

  it('stores a dead letter once though its change-log entry failed and the event came again', async () => {
    const job = new SyncJob(settings, tempDir('job'));
    const seq = await job.accept('t', Buffer.from('{"permit_id":"P-1"}'));
    const letter = { id: seq, job: 'J', topic: 't', error: 'no key', attempts: 1, event: '{}', firstReceivedAt: new Date().toISOString(), deadAt: new Date().toISOString() };
    await job.recordDeadLetter(letter);
    await job.recordDeadLetter(letter); // the probe brought it again: the log had failed
    assert.deepEqual((await job.deadLetters.list()).map((l) => l.id), [seq]);
    job.settle(seq, 'dead_letter');
    await job.close();
  });

  /**
   * A held job with two events of one record, flushed while its change log cannot be written (a
   * directory where its file goes: appends fail with EISDIR until `logFile` is removed): the newest
   * is handed out, the older one's superseded entry fails. Errors land in `errors`.
   */
  async function heldJobWithBrokenLog(errors: Error[]): Promise<{ job: SyncJob; logFile: string }> {
    const rules = parseMapping(['HMS:status -> COBOL:PERMIT_STAT']).rules;
    const dir = tempDir('job');
    const job = new SyncJob({ ...settings, schedule: 'hourly' }, dir);
    job.declareSchema({ keyColumn: 'PERMIT_ID', columns: ['PERMIT_STAT'], identify: compileIdentify(rules, parseKeyRule('HMS:permit_id -> COBOL:PERMIT_ID')) });
    job.on('error', (err: Error) => errors.push(err));
    for (const [status, at] of [['Pending', '10:00:01'], ['Approved', '10:00:02']]) {
      await job.accept('t', Buffer.from(JSON.stringify({ permit_id: 'P-1', status, updated_at: `2026-03-01T${at}Z` })));
    }
    const logFile = path.join(dir, 'J', 'changelog.jsonl');
    fs.mkdirSync(logFile, { recursive: true });
    const queue = collect(job);
    await job.flush();
    await queue.next(1); // the newest
    return { job, logFile };
  }

  it('stops trying a superseded event\'s entry once the job is closed', async () => {
    const { job, logFile } = await heldJobWithBrokenLog([]);
    await new Promise((resolve) => setTimeout(resolve, 50)); // the first append failed; a retry is armed
    await job.close(); // closing removes the job's listeners: a retry after it must neither throw nor write
    fs.rmdirSync(logFile);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(fs.existsSync(logFile), false, 'nothing written by the closed job');
  });

  it('logs a superseded event again until the change log takes it, then settles it', async () => {
    const errors: Error[] = [];
    const { job, logFile } = await heldJobWithBrokenLog(errors);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.ok(errors.length >= 1, 'the failed append is reported');
    assert.equal(job.counters.superseded, 0);
    fs.rmdirSync(logFile);
    const deadline = Date.now() + 5000;
    while (job.counters.superseded === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(job.counters.superseded, 1, 'logged and settled on a later try');
    assert.deepEqual((await job.changeLog.tail(5)).map((e) => `${e.seq}:${e.outcome}`), ['1:superseded']);
    await job.close();
  });

  it('a realtime job flushed by hand still hands out the events that came after the flush, newer ones included', async () => {
    const rules = parseMapping(['HMS:status -> COBOL:PERMIT_STAT']).rules;
    const job = new SyncJob(settings, tempDir('job'));
    job.declareSchema({ keyColumn: 'PERMIT_ID', columns: ['PERMIT_STAT'], identify: compileIdentify(rules, parseKeyRule('HMS:permit_id -> COBOL:PERMIT_ID')) });
    const queue = collect(job);
    const event = (status: string, at: string) => Buffer.from(JSON.stringify({ permit_id: 'P-1', status, updated_at: `2026-03-01T${at}Z` }));
    await job.accept('t', event('Pending', '10:00:01'));
    await queue.next(1);
    await job.flush(); // the first event is in flight: the flush's scan sees it as the record's newest
    await job.accept('t', event('Approved', '10:00:02'));
    const [, second] = await queue.next(2);
    assert.equal(JSON.parse(second.record.payload.toString()).status, 'Approved', 'the newer event is written, not superseded by the older');
    assert.equal(job.counters.superseded, 0);
    await job.close();
  });

  it('settles in the journal an event whose entry lands while no queue node is attached (one redeployed alone)', async () => {
    const job = new SyncJob(settings, tempDir('job'));
    const seq = await job.accept('t', Buffer.from('{"permit_id":"P-1"}'));
    assert.equal(job.state().depth, 1);
    job.settle(seq, 'superseded');
    assert.equal(job.state().depth, 0, 'not handed out again by the next queue node');
    assert.equal(job.counters.superseded, 1);
    await job.close();
  });

  it('hands the mapper schema to a connector that waits for it', async () => {
    const job = new SyncJob(settings, tempDir('job'));
    const waiting = job.whenSchema(1000);
    job.declareSchema({ keyColumn: 'K', columns: ['A'] });
    assert.deepEqual(await waiting, { keyColumn: 'K', columns: ['A'] });
    const other = new SyncJob(settings, tempDir('job'));
    assert.equal(await other.whenSchema(10), undefined);
    await job.close();
    await other.close();
  });
});
