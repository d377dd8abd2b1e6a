// The conflict law as pure logic: source order (versions, ties, missing versions), legacy-edit
// detection and the four rules, per record and per field. The integration tests run the same
// law through real databases; here every case is spelled out and the order-independence
// property is checked over many shuffles.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  compareVersions,
  contentHash,
  decideConflict,
  formatFieldRules,
  parseFieldRules,
  sourceVersionOf,
  type ConflictPolicy,
  type IncomingRecord,
  type RecordState,
} from '../../nodes/core/conflict';
import { compileMapping, MappingError } from '../../nodes/core/mapping';
import type { ConflictRule } from '../../nodes/core/types';

const T = (ms: number) => sourceVersionOf(new Date(Date.parse('2026-03-01T10:00:00Z') + ms).toISOString()) ?? null;

function event(fields: Record<string, unknown>, version: string | null): IncomingRecord {
  const row = { ID: 'P-1', ...fields };
  return { row, keyColumn: 'ID', version, tiebreak: contentHash(row) };
}

/** A destination of one table, written only through the law, as OdbcConnector does. */
class Destination {
  row: Record<string, unknown> | null = null;
  state: RecordState | null = null;
  parked = 0;
  constructor(private readonly policy: ConflictPolicy) {}

  apply(incoming: IncomingRecord) {
    const decision = decideConflict(this.policy, this.state, this.row, incoming);
    if (Object.keys(decision.columns).length > 0) this.row = { ...this.row, ...decision.columns };
    if (decision.state) this.state = decision.state;
    if (decision.outcome === 'parked') this.parked++;
    return decision;
  }

  /** A clerk edits the row directly in the legacy database. */
  clerk(fields: Record<string, unknown> | null) {
    this.row = fields === null ? null : { ...this.row, ...fields };
  }
}

describe('source versions', () => {
  it('reads times in any spelling to one canonical text: ISO, compact stamps and epoch milliseconds, as text or numbers', () => {
    const canonical = '2026-03-01 10:00:00.500000';
    assert.equal(sourceVersionOf('2026-03-01T12:00:00.5+02:00'), canonical);
    assert.equal(sourceVersionOf(Date.parse('2026-03-01T10:00:00.5Z')), canonical, 'epoch milliseconds as a number');
    assert.equal(sourceVersionOf(String(Date.parse('2026-03-01T10:00:00.5Z'))), canonical, 'and as text: the same');
    assert.equal(sourceVersionOf('20260301100000'), '2026-03-01 10:00:00.000000');
    assert.equal(sourceVersionOf(undefined), null);
    assert.equal(sourceVersionOf(''), null);
    assert.equal(sourceVersionOf('yesterday'), undefined);
    assert.equal(sourceVersionOf({}), undefined);
  });

  it('reads revision numbers, as numbers or digits, the same way', () => {
    assert.equal(sourceVersionOf(42, 'number'), '42');
    assert.equal(sourceVersionOf('42', 'number'), '42');
    assert.equal(sourceVersionOf('0042', 'number'), '42');
    assert.equal(sourceVersionOf('4.5', 'number'), '4.5');
    assert.equal(sourceVersionOf('v4', 'number'), undefined);
    assert.ok(compareVersions(sourceVersionOf('43', 'number')!, sourceVersionOf(44, 'number')!) < 0);
    assert.ok(compareVersions('123456789012345678901', '123456789012345678900') > 0, 'whole numbers compare exactly, past double precision');
  });

  it('orders none < revisions < times, microseconds apart, revisions numerically', () => {
    assert.ok(compareVersions(null, '1') < 0);
    assert.ok(compareVersions('10', '9') > 0, 'numerically, not as text');
    assert.ok(compareVersions('2026-03-01 10:00:00.000002', '2026-03-01 10:00:00.000001') > 0);
    assert.ok(compareVersions('5', '2026-03-01 10:00:00.000000') < 0);
    assert.equal(compareVersions(null, null), 0);
  });

  it('the mapper puts the version on the record and flags a time too far in the future', () => {
    const now = Date.parse('2026-03-01T10:00:00Z');
    const map = compileMapping([{ source: 'status', target: 'STAT', transforms: [] }], { source: 'id', target: 'ID' }, { now: () => now, maxClockSkewSeconds: 300 });
    assert.equal(map({ id: 'P-1', status: 'A', updated_at: '2026-03-01T10:04:59Z' }).version, '2026-03-01 10:04:59.000000', 'within the skew');
    assert.equal(map({ id: 'P-1', status: 'A' }).version, null, 'no version: the oldest');
    assert.throws(() => map({ id: 'P-1', status: 'A', updated_at: '2099-01-01T00:00:00Z' }),
      (err: Error) => err instanceof MappingError && /'updated_at' 2099-01-01T00:00:00Z is \d+ s in the future, beyond max_clock_skew_seconds \(300\): flagged/.test(err.message));
    assert.throws(() => map({ id: 'P-1', updated_at: 'soon' }), /version field 'updated_at' must be a time \(ISO-8601, .*\) \(got 'soon'\)/);
    assert.throws(() => map({ id: 'P-1', updated_at: now + 86_400_000 }), /is 86400 s in the future/, 'epoch milliseconds are checked too');
    const byRevision = compileMapping([], { source: 'id', target: 'ID' }, { versionField: 'meta.rev', versionType: 'number' });
    assert.equal(byRevision({ id: 'P-1', meta: { rev: 12 } }).version, '12');
    assert.throws(() => byRevision({ id: 'P-1', meta: { rev: 'twelve' } }), /version field 'meta.rev' must be a number \(got 'twelve'\)/);
  });
});

describe('source order: no event regresses a record', () => {
  for (const rule of ['HMS_WINS', 'LAST_WRITE_WINS', 'DESTINATION_WINS', 'MANUAL'] as ConflictRule[]) {
    it(`${rule}: an older event is skipped, a redelivery is unchanged, a newer one writes`, () => {
      const db = new Destination({ rule, timestampColumn: 'TS' });
      assert.equal(db.apply(event({ STAT: 'B', TS: T(2) }, T(2))).outcome, 'write');
      const older = db.apply(event({ STAT: 'A', TS: T(1) }, T(1)));
      assert.deepEqual([older.outcome, older.reason], ['skipped', 'older than the version EXS last wrote (2026-03-01 10:00:00.002000)']);
      assert.equal(older.state, undefined, 'the state stays at the newer version');
      assert.deepEqual([db.apply(event({ STAT: 'B', TS: T(2) }, T(2))).outcome], ['unchanged']);
      assert.equal(db.apply(event({ STAT: 'C', TS: T(3) }, T(3))).outcome, 'write');
      assert.equal(db.row?.STAT, 'C');
    });
  }

  it('an event without a version is the oldest: it only lands on a record that has none', () => {
    const db = new Destination({ rule: 'HMS_WINS' });
    assert.equal(db.apply(event({ STAT: 'untimed' }, null)).outcome, 'write');
    assert.equal(db.apply(event({ STAT: 'untimed, later' }, null)).outcome, 'write', 'no versions: the later arrival wins');
    assert.equal(db.apply(event({ STAT: 'untimed, later' }, null)).outcome, 'unchanged');
    assert.equal(db.apply(event({ STAT: 'timed' }, T(0))).outcome, 'write');
    assert.equal(db.apply(event({ STAT: 'untimed again' }, null)).outcome, 'skipped');
    assert.equal(db.row?.STAT, 'timed');
  });

  it('partial events: an older event still fills a column the newer one did not carry, in either order', () => {
    const v5 = event({ STAT: 'S5' }, T(5));
    const v6 = event({ NOTE: 'N6' }, T(6));
    for (const order of [[v5, v6], [v6, v5], [v6, v5, v6, v5]]) {
      const db = new Destination({ rule: 'HMS_WINS' });
      order.forEach((e) => db.apply(e));
      assert.deepEqual(db.row, { ID: 'P-1', STAT: 'S5', NOTE: 'N6' });
    }
    // But not a column a newer event did carry.
    const db = new Destination({ rule: 'HMS_WINS' });
    db.apply(event({ STAT: 'S7', NOTE: 'N7' }, T(7)));
    assert.equal(db.apply(event({ STAT: 'S5', NOTE: 'N5' }, T(5))).outcome, 'skipped');
    const mixed = db.apply(event({ STAT: 'S6', REMARK: 'R6' }, T(6)));
    assert.deepEqual([mixed.outcome, mixed.reason], ['write', 'event is newer; STAT already newer']);
    assert.deepEqual(db.row, { ID: 'P-1', STAT: 'S7', NOTE: 'N7', REMARK: 'R6' });
  });

  it('two different events with the same version: the content hash decides, in either order', () => {
    const a = event({ STAT: 'A' }, T(5));
    const b = event({ STAT: 'B' }, T(5));
    const winner = a.tiebreak > b.tiebreak ? 'A' : 'B';
    for (const order of [[a, b], [b, a], [a, b, a], [b, a, b, b]]) {
      const db = new Destination({ rule: 'HMS_WINS' });
      order.forEach((e) => db.apply(e));
      assert.equal(db.row?.STAT, winner);
    }
  });

  it('property: any shuffle of the same events, each delivered 1-3 times, ends at the model\'s row', () => {
    let seed = 20261127;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let round = 0; round < 300; round++) {
      // Versions from a few producers whose clocks disagree by up to ±40 ms, ties included, some
      // missing; some events partial (a field left out). Events without a version carry every field:
      // among themselves they are applied in arrival order, and a versioned full event outranks them.
      const events: IncomingRecord[] = Array.from({ length: 2 + Math.floor(random() * 6) }, (_, i) => {
        const version = i > 0 && random() < 0.15 ? null : T(Math.floor(random() * 4) * 10 + Math.floor(random() * 80) - 40);
        const fields: Record<string, unknown> = { STAT: `S${i}`, NOTE: random() < 0.3 ? null : `n${i}`, TS: version };
        if (i > 0 && version !== null && random() < 0.4) delete fields[random() < 0.5 ? 'STAT' : 'NOTE'];
        return event(fields, version);
      });
      // The model, per column: the value of the greatest (version, content hash) among the events carrying it.
      const byStamp = (x: IncomingRecord, y: IncomingRecord) => compareVersions(x.version, y.version) || (x.tiebreak < y.tiebreak ? -1 : x.tiebreak > y.tiebreak ? 1 : 0);
      const expectedRow: Record<string, unknown> = { ID: 'P-1' };
      for (const column of ['STAT', 'NOTE', 'TS']) {
        const carrier = events.filter((e) => Object.hasOwn(e.row, column)).sort(byStamp).at(-1);
        if (carrier) expectedRow[column] = carrier.row[column];
      }
      const rule = (['HMS_WINS', 'LAST_WRITE_WINS', 'DESTINATION_WINS', 'MANUAL'] as const)[round % 4];
      const deliveries = events.flatMap((e) => Array(1 + Math.floor(random() * 3)).fill(e) as IncomingRecord[]);
      for (let i = deliveries.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [deliveries[i], deliveries[j]] = [deliveries[j], deliveries[i]];
      }
      const db = new Destination({ rule, timestampColumn: 'TS' });
      deliveries.forEach((e) => db.apply(e));
      // A table has every column: one no event has written holds NULL.
      const row = Object.fromEntries(Object.keys(expectedRow).map((column) => [column, db.row?.[column] ?? null]));
      assert.deepEqual(row, expectedRow, `round ${round} (${rule}): ${JSON.stringify(deliveries.map((d) => d.row))}`);
      assert.equal(db.parked, 0, 'nobody else edited the row: nothing to park');
    }
  });
});

describe('both sides changed: a clerk edits the row, then an older and a newer HMS event arrive', () => {
  function scenario(policy: ConflictPolicy) {
    const db = new Destination(policy);
    db.apply(event({ STAT: 'PEND', INSPECTOR: 'Ann', TS: T(10) }, T(10)));
    db.clerk({ STAT: 'HOLD', INSPECTOR: 'Carl', TS: T(20) }); // the clerk's edit stamps its own time
    const older = db.apply(event({ STAT: 'OLD', INSPECTOR: 'Old', TS: T(5) }, T(5)));
    const newer = db.apply(event({ STAT: 'APPR', INSPECTOR: 'Bob', TS: T(30) }, T(30)));
    return { db, older, newer };
  }

  it('HMS_WINS: the older event is skipped; the newer overwrites the clerk and says so', () => {
    const { db, older, newer } = scenario({ rule: 'HMS_WINS', timestampColumn: 'TS' });
    assert.equal(older.outcome, 'skipped');
    assert.equal(newer.outcome, 'write');
    assert.deepEqual(newer.conflicts.map((c) => [c.column, c.winner]), [['STAT', 'hms'], ['INSPECTOR', 'hms'], ['TS', 'hms']]);
    assert.deepEqual(db.row, { ID: 'P-1', STAT: 'APPR', INSPECTOR: 'Bob', TS: T(30) });
  });

  it('DESTINATION_WINS: the clerk\'s edits are kept; nothing else changed, so nothing is written', () => {
    const { db, older, newer } = scenario({ rule: 'DESTINATION_WINS', timestampColumn: 'TS' });
    assert.equal(older.outcome, 'skipped');
    assert.equal(newer.outcome, 'skipped');
    assert.match(newer.reason, /^DESTINATION_WINS: destination kept STAT, INSPECTOR, TS$/);
    assert.deepEqual(db.row, { ID: 'P-1', STAT: 'HOLD', INSPECTOR: 'Carl', TS: T(20) });
    // A column the clerk never touched still follows HMS.
    db.apply(event({ STAT: 'APPR', INSPECTOR: 'Bob', TS: T(30), REMARK: 'new field' }, T(40)));
    const row: Record<string, unknown> | null = db.row;
    assert.equal(row?.REMARK, 'new field');
    assert.equal(row?.STAT, 'HOLD');
  });

  it('LAST_WRITE_WINS: the clerk\'s newer row beats an older event; a newer event beats the clerk', () => {
    const db = new Destination({ rule: 'LAST_WRITE_WINS', timestampColumn: 'TS' });
    db.apply(event({ STAT: 'PEND', TS: T(10) }, T(10)));
    db.clerk({ STAT: 'HOLD', TS: T(20) });
    const between = db.apply(event({ STAT: 'MID', TS: T(15) }, T(15)));
    assert.deepEqual([between.outcome, between.reason], ['skipped', 'LAST_WRITE_WINS: destination is newer']);
    const newer = db.apply(event({ STAT: 'APPR', TS: T(30) }, T(30)));
    assert.equal(newer.outcome, 'write');
    assert.deepEqual(db.row, { ID: 'P-1', STAT: 'APPR', TS: T(30) });
    // A row that predates EXS (no state) is judged by its time column too.
    const fresh = new Destination({ rule: 'LAST_WRITE_WINS', timestampColumn: 'TS' });
    fresh.clerk({ ID: 'P-1', STAT: 'LEGACY', TS: T(50) });
    assert.equal(fresh.apply(event({ STAT: 'HMS', TS: T(40) }, T(40))).outcome, 'skipped');
    assert.equal(fresh.apply(event({ STAT: 'HMS', TS: T(50) }, T(50))).outcome, 'write', 'a tie writes');
  });

  it('MANUAL: the changed columns are parked with old, new and current; the rest is written', () => {
    const { db, older, newer } = scenario({ rule: 'MANUAL', timestampColumn: 'TS' });
    assert.equal(older.outcome, 'skipped');
    assert.equal(newer.outcome, 'parked');
    assert.deepEqual(newer.state?.parked?.fields.STAT, { old: 'PEND', new: 'APPR', current: 'HOLD' });
    assert.deepEqual(newer.state?.parked?.fields.INSPECTOR, { old: 'Ann', new: 'Bob', current: 'Carl' });
    assert.deepEqual(db.row, { ID: 'P-1', STAT: 'HOLD', INSPECTOR: 'Carl', TS: T(20) }, 'nothing of the conflict is written');
    // A still newer event replaces the waiting HMS values and keeps `old`.
    const newest = db.apply(event({ STAT: 'DONE', INSPECTOR: 'Bob', TS: T(40) }, T(40)));
    assert.deepEqual(newest.state?.parked?.fields.STAT, { old: 'PEND', new: 'DONE', current: 'HOLD' });
  });

  it('per-field rules split ownership: HMS owns the status, the clerk the inspector', () => {
    const { db, newer } = scenario({ rule: 'HMS_WINS', timestampColumn: 'TS', fieldRules: { INSPECTOR: 'DESTINATION_WINS' } });
    assert.equal(newer.outcome, 'write');
    assert.deepEqual(newer.conflicts.map((c) => [c.column, c.rule, c.winner]),
      [['STAT', 'HMS_WINS', 'hms'], ['INSPECTOR', 'DESTINATION_WINS', 'destination'], ['TS', 'HMS_WINS', 'hms']]);
    assert.deepEqual(db.row, { ID: 'P-1', STAT: 'APPR', INSPECTOR: 'Carl', TS: T(30) });
  });

  it('a column named like a member of every object (constructor, toString) takes the job\'s rule unless it has its own', () => {
    const db = new Destination({ rule: 'HMS_WINS', fieldRules: { INSPECTOR: 'DESTINATION_WINS' } });
    db.apply(event({ constructor: 'a', toString: 'b' }, T(1)));
    db.clerk({ constructor: 'clerk a', toString: 'clerk b' });
    const decision = db.apply(event({ constructor: 'hms a', toString: 'hms b' }, T(2)));
    assert.deepEqual(decision.conflicts.map((c) => [c.column, c.rule, c.winner]), [['constructor', 'HMS_WINS', 'hms'], ['toString', 'HMS_WINS', 'hms']]);
    assert.deepEqual(db.row, { ID: 'P-1', constructor: 'hms a', toString: 'hms b' });
  });

  it('a column on LAST_WRITE_WINS keeps the time column on it too, so the clerk\'s newer time is never stepped back', () => {
    const db = new Destination({ rule: 'HMS_WINS', timestampColumn: 'TS', fieldRules: { X: 'LAST_WRITE_WINS' } });
    db.apply(event({ X: 'hms', TS: T(10) }, T(10)));
    db.clerk({ X: 'clerk', TS: T(40) });
    const between = db.apply(event({ X: 'hms 20', TS: T(20) }, T(20)));
    assert.equal(between.outcome, 'skipped');
    assert.deepEqual(db.row, { ID: 'P-1', X: 'clerk', TS: T(40) });
    db.apply(event({ X: 'hms 30', TS: T(30) }, T(30)));
    assert.equal(db.row?.X, 'clerk', 'the clerk at :40 is still newer than :30');
    db.apply(event({ X: 'hms 50', TS: T(50) }, T(50)));
    assert.equal(db.row?.X, 'hms 50');
  });

  it('MANUAL on a row the clerk deleted parks the whole event, and taking HMS brings the whole row back', () => {
    const db = new Destination({ rule: 'HMS_WINS', fieldRules: { INSPECTOR: 'MANUAL' } });
    db.apply(event({ STAT: 'PEND', INSPECTOR: 'Ann' }, T(1)));
    db.clerk(null);
    const decision = db.apply(event({ STAT: 'APPR', INSPECTOR: 'Bob' }, T(2)));
    assert.equal(decision.outcome, 'parked');
    assert.deepEqual(decision.state?.parked?.fields, {
      STAT: { old: 'PEND', new: 'APPR', current: null },
      INSPECTOR: { old: 'Ann', new: 'Bob', current: null },
    });
    assert.equal(db.row, null);
  });

  it('a row the clerk deleted comes back under HMS_WINS and stays deleted under DESTINATION_WINS', () => {
    for (const [rule, expected] of [['HMS_WINS', 'write'], ['DESTINATION_WINS', 'skipped'], ['MANUAL', 'parked']] as const) {
      const db = new Destination({ rule });
      db.apply(event({ STAT: 'PEND' }, T(1)));
      db.clerk(null);
      const decision = db.apply(event({ STAT: 'APPR' }, T(2)));
      assert.equal(decision.outcome, expected, rule);
      assert.deepEqual(db.row, rule === 'HMS_WINS' ? { ID: 'P-1', STAT: 'APPR' } : null);
    }
  });

  it('no edit on the legacy side is no conflict, whatever the rule', () => {
    for (const rule of ['DESTINATION_WINS', 'MANUAL'] as const) {
      const db = new Destination({ rule });
      db.apply(event({ STAT: 'PEND' }, T(1)));
      const decision = db.apply(event({ STAT: 'APPR' }, T(2)));
      assert.deepEqual([decision.outcome, decision.conflicts], ['write', []]);
    }
  });
});

describe('field rules text', () => {
  it('reads COLUMN: RULE lines (prefix allowed) and writes them back', () => {
    const rules = parseFieldRules('COBOL:INSPECTOR: DESTINATION_WINS\n# a comment\nREMARKS=MANUAL\n');
    assert.deepEqual(rules, { INSPECTOR: 'DESTINATION_WINS', REMARKS: 'MANUAL' });
    assert.equal(formatFieldRules(rules), 'INSPECTOR: DESTINATION_WINS\nREMARKS: MANUAL');
    assert.throws(() => parseFieldRules('INSPECTOR: CLERK_WINS'), /the rule must be one of HMS_WINS, LAST_WRITE_WINS, DESTINATION_WINS, MANUAL/);
    assert.throws(() => parseFieldRules('just words'), /must read COLUMN: RULE/);
  });
});
