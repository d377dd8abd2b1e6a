// The mapping language: its three YAML forms, every transform, and the data errors an
// event can meet on its way to a row.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  applyMapping,
  compileIdentify,
  compileMapping,
  formatKeyRule,
  formatMappingRule,
  keyColumnClash,
  MappingError,
  MappingSyntaxError,
  parseKeyRule,
  parseMapping,
  parseMappingLine,
} from '../../nodes/core/mapping';
import type { KeyRule, MappingRule } from '../../nodes/core/types';

const KEY: KeyRule = { source: 'permit_id', target: 'PERMIT_ID' };

/** The row one field produces through `transforms` (written after `|`). */
function mapValue(value: unknown, transforms: string): unknown {
  const rule = parseMappingLine(`HMS:field -> COBOL:COLUMN | ${transforms}`);
  return applyMapping([rule], KEY, { permit_id: 'P-1', field: value }).row.COLUMN;
}

function mappingErrorOf(run: () => unknown): MappingError {
  try {
    run();
  } catch (error) {
    if (error instanceof MappingError) return error;
    throw error;
  }
  assert.fail('expected a MappingError');
}

describe('parseMappingLine', () => {
  it('reads source, target and a transform pipeline', () => {
    assert.deepEqual(parseMappingLine('HMS:status -> COBOL:PERMIT_STAT | map(Approved=APPR, Pending = PEND) | pad(8)'), {
      source: 'status',
      target: 'PERMIT_STAT',
      transforms: [
        { name: 'map', args: ['Approved=APPR', 'Pending=PEND'] },
        { name: 'pad', args: ['8'] },
      ],
    });
  });

  it('accepts lines without side prefixes, any target system and dotted source paths', () => {
    assert.deepEqual(parseMappingLine('status -> PERMIT_STAT'), { source: 'status', target: 'PERMIT_STAT', transforms: [] });
    assert.equal(parseMappingLine('HMS:applicant.name -> SMS:NAME').source, 'applicant.name');
    assert.equal(parseMappingLine('HMS:x -> LEGACY:X$1#').target, 'X$1#');
  });

  it('refuses reversed sides, non-HMS sources and unsafe columns with a message naming the problem', () => {
    const cases: [string, RegExp][] = [
      ['COBOL:X -> HMS:y', /sides are reversed: write 'HMS:y -> COBOL:X'/],
      ['COBOL:X -> SMS:Y', /'COBOL:X' is not an HMS field/],
      ['HMS:a -> COBOL:PERMIT-STAT', /'PERMIT-STAT' is not a safe column name/],
      ['HMS:a -> COBOL:1ST', /not a safe column name/],
      [`HMS:a -> COBOL:${'A'.repeat(129)}`, /not a safe column name/],
      ['HMS:a.__proto__ -> COBOL:A', /'__proto__' cannot be read/],
      ['HMS:a COBOL:A', /has no '->'/],
      ['HMS:a -> COBOL:A | uppr', /unknown transform 'uppr' \(did you mean 'upper'\?\)/],
      ['HMS:a -> COBOL:A | pad(x)', /width must be a whole number/],
      ['HMS:a -> COBOL:A | map(a)', /'a' has no '='/],
      ['HMS:a -> COBOL:A | pad(8', /unbalanced parentheses/],
      ['HMS:a -> COBOL:A | default(x) | default(y)', /more than one default/],
      ['HMS:a -> COBOL:A | timestamp(yyyy-mm-dd)', /case-sensitive/],
    ];
    for (const [line, message] of cases) assert.throws(() => parseMappingLine(line), message, line);
  });

  it('points at the offending token', () => {
    assert.throws(
      () => parseMappingLine('HMS:status -> COBOL:PERMIT_STAT | lowr'),
      (error: unknown) => error instanceof MappingSyntaxError && error.token === 'lowr' && error.offset === 34,
    );
  });

  it('formats canonically, and the canonical line reads back to the same rule', () => {
    const rule = parseMappingLine('status->PERMIT_STAT|map( Approved=APPR ,*=OTHER )|padleft(8,0)|timestamp(YYYY-MM-DD HH:mm)');
    const line = formatMappingRule(rule);
    assert.equal(line, 'HMS:status -> COBOL:PERMIT_STAT | map(Approved=APPR, *=OTHER) | padleft(8, 0) | timestamp(YYYY-MM-DD HH:mm)');
    assert.deepEqual(parseMappingLine(line), rule);
  });
});

describe('parseKeyRule', () => {
  it('reads the key line and formats it back', () => {
    const key = parseKeyRule('HMS:permit_id -> COBOL:PERMIT_ID');
    assert.deepEqual(key, { source: 'permit_id', target: 'PERMIT_ID' });
    assert.equal(formatKeyRule(key), 'HMS:permit_id -> COBOL:PERMIT_ID');
  });

  it('refuses transforms on the key', () => {
    assert.throws(() => parseKeyRule('HMS:permit_id -> COBOL:PERMIT_ID | upper'), /takes no transforms/);
  });
});

describe('parseMapping', () => {
  const expected: MappingRule[] = [
    { source: 'status', target: 'PERMIT_STAT', transforms: [{ name: 'map', args: ['Approved=APPR', 'Pending=PEND'] }, { name: 'pad', args: ['8'] }] },
    { source: 'updated_at', target: 'LAST_CHG_TS', transforms: [{ name: 'timestamp', args: ['YYYY-MM-DD HH:mm'] }] },
  ];

  it('reads the folded block, a list and a map to the same rules', () => {
    // What YAML makes of two indented lines under `mapping:`: one line, pairs side by side.
    const folded = 'HMS:status        -> COBOL:PERMIT_STAT | map(Approved=APPR, Pending=PEND) | pad(8) HMS:updated_at    -> COBOL:LAST_CHG_TS | timestamp(YYYY-MM-DD HH:mm)';
    const list = ['HMS:status -> COBOL:PERMIT_STAT | map(Approved=APPR, Pending=PEND) | pad(8)', 'updated_at -> LAST_CHG_TS | timestamp(YYYY-MM-DD HH:mm)'];
    const map = { 'HMS:status': 'COBOL:PERMIT_STAT | map(Approved=APPR, Pending=PEND) | pad(8)', updated_at: 'LAST_CHG_TS | timestamp(YYYY-MM-DD HH:mm)' };
    const literalBlock = list.join('\n') + '\n';
    for (const form of [folded, list, map, literalBlock]) {
      const { rules, errors } = parseMapping(form);
      assert.deepEqual({ rules, errors }, { rules: expected, errors: [] });
    }
  });

  it('reads the seed mapping', () => {
    const { rules, errors } = parseMapping('HMS:status        -> COBOL:PERMIT_STAT HMS:updated_at    -> COBOL:LAST_CHG_TS');
    assert.deepEqual(errors, []);
    assert.deepEqual(rules.map(formatMappingRule), ['HMS:status -> COBOL:PERMIT_STAT', 'HMS:updated_at -> COBOL:LAST_CHG_TS']);
  });

  it('collects every problem with the token to point at', () => {
    const { rules, errors } = parseMapping(['HMS:a -> COBOL:A', 'HMS:b -> COBOL:B | uppr', 'HMS:c -> COBOL:a', 42]);
    assert.deepEqual(rules.map((r) => r.source), ['a']);
    assert.deepEqual(errors, [
      { message: "unknown transform 'uppr' (did you mean 'upper'?)", token: 'uppr', item: 1, occurrence: 0 },
      { message: "column 'a' is mapped twice (from 'a' and 'c'); 'A' and 'a' are one column, whatever the case", token: 'COBOL:a', item: 2, occurrence: 0 },
      { message: "mapping item 4 must be a line like 'HMS:status -> COBOL:PERMIT_STAT' (got a number)", item: 3 },
    ]);
  });

  it('says where each rule writes its column', () => {
    const { targets } = parseMapping('HMS:a -> COBOL:X HMS:b -> COBOL:Y | upper');
    assert.deepEqual(targets, [{ token: 'COBOL:X', item: undefined, occurrence: 0 }, { token: 'COBOL:Y', item: undefined, occurrence: 0 }]);
  });

  it('finds a mapping line that fills the key column again, whatever its case', () => {
    const { rules } = parseMapping(['HMS:status -> COBOL:STAT', 'HMS:permit_id -> COBOL:permit_id']);
    assert.equal(keyColumnClash(rules, KEY), rules[1]);
    assert.equal(keyColumnClash(parseMapping(['HMS:x -> COBOL:Permit_Id']).rules, KEY)?.source, 'x');
    assert.equal(keyColumnClash(parseMapping(['HMS:permit_id -> COBOL:PERMIT_ID', 'HMS:status -> COBOL:STAT']).rules, KEY), undefined, 'repeating the key is harmless');
  });

  it('counts earlier occurrences of a token so the right one is found', () => {
    const { errors } = parseMapping('HMS:a -> COBOL:X HMS:b -> COBOL:X');
    assert.deepEqual(errors, [{ message: "column 'X' is mapped twice (from 'a' and 'b')", token: 'COBOL:X', item: undefined, occurrence: 1 }]);
  });

  it('reports a line without -> inside a folded block by that line', () => {
    const { errors } = parseMapping('HMS:a -> COBOL:A HMS:b COBOL:B');
    assert.equal(errors[0].message, "mapping 'HMS:b COBOL:B' has no '->' (write HMS:field -> COBOL:COLUMN)");
    assert.equal(errors[0].token, 'HMS:b COBOL:B');
  });

  it('keeps spaces inside transform arguments when splitting a folded block', () => {
    const { rules } = parseMapping('HMS:a -> COBOL:A | map(In Review=REV, Done=DONE) HMS:b -> COBOL:B');
    assert.deepEqual(rules.map(formatMappingRule), ['HMS:a -> COBOL:A | map(In Review=REV, Done=DONE)', 'HMS:b -> COBOL:B']);
  });

  it('says so when the mapping is empty or of the wrong type', () => {
    assert.match(parseMapping([]).errors[0].message, /lists no fields/);
    assert.match(parseMapping(7).errors[0].message, /got a number/);
  });
});

describe('transforms', () => {
  it('map translates through the value table, with * as the fallback', () => {
    assert.equal(mapValue('Approved', 'map(Approved=APPR, Pending=PEND)'), 'APPR');
    assert.equal(mapValue('Denied', 'map(Approved=APPR, *=OTHER)'), 'OTHER');
    const error = mappingErrorOf(() => mapValue('Denied', 'map(Approved=APPR, Pending=PEND)'));
    assert.equal(error.message, "field 'field': 'Denied' is not in the value table (known: Approved, Pending)");
    assert.equal(error.field, 'field');
  });

  it('upper, lower and trim change text; numbers are read as text', () => {
    assert.equal(mapValue('Approved', 'upper'), 'APPROVED');
    assert.equal(mapValue('Approved', 'lower'), 'approved');
    assert.equal(mapValue('  P-1 ', 'trim'), 'P-1');
    assert.equal(mapValue(12, 'upper'), '12');
  });

  it('pad and padleft fill to a fixed width and refuse longer values', () => {
    assert.equal(mapValue('APPR', 'pad(8)'), 'APPR    ');
    assert.equal(mapValue('APPR', 'pad(6, .)'), 'APPR..');
    assert.equal(mapValue(42, 'padleft(6, 0)'), '000042');
    assert.equal(mappingErrorOf(() => mapValue('APPROVED!', 'pad(8)')).message, "field 'field': 'APPROVED!' is 9 characters, longer than pad(8)");
    assert.match(mappingErrorOf(() => mapValue('1234567', 'padleft(6,0)')).message, /longer than padleft\(6\)/);
  });

  it('truncate cuts to a width', () => {
    assert.equal(mapValue('APPROVED', 'truncate(4)'), 'APPR');
    assert.equal(mapValue('AP', 'truncate(4)'), 'AP');
  });

  it('timestamp reads ISO-8601 and epoch milliseconds and writes UTC', () => {
    assert.equal(mapValue('2024-05-01T10:20:30Z', 'timestamp(YYYYMMDDHHmmss)'), '20240501102030');
    assert.equal(mapValue('2024-05-01T12:20:30+02:00', 'timestamp(YYYY-MM-DD HH:mm:ss)'), '2024-05-01 10:20:30');
    assert.equal(mapValue('2024-05-01T10:20:30.123456789Z', 'timestamp'), '2024-05-01 10:20:30.123456');
    assert.equal(mapValue('2024-05-01T10:20:30.5Z', 'timestamp(HHmmssSSS)'), '102030500');
    assert.equal(mapValue('2024-05-01', 'timestamp'), '2024-05-01 00:00:00.000000');
    assert.equal(mapValue(Date.UTC(2024, 4, 1, 10, 20, 30, 45), 'timestamp'), '2024-05-01 10:20:30.045000');
    assert.equal(mapValue(String(Date.UTC(2024, 4, 1)), 'timestamp(YYYYMMDD)'), '20240501');
  });

  it('timestamp reads compact legacy stamps (8, 12 or 14-20 digits) as UTC, other whole numbers as epoch milliseconds', () => {
    assert.equal(mapValue('20240501102030', 'timestamp'), '2024-05-01 10:20:30.000000');
    assert.equal(mapValue(20240501102030, 'timestamp'), '2024-05-01 10:20:30.000000');
    assert.equal(mapValue('20240501102030123456', 'timestamp'), '2024-05-01 10:20:30.123456');
    assert.equal(mapValue('202405011020', 'timestamp'), '2024-05-01 10:20:00.000000');
    assert.equal(mapValue(20240501, 'timestamp'), '2024-05-01 00:00:00.000000');
    assert.equal(mapValue(1714558830000, 'timestamp(YYYYMMDDHHmmss)'), '20240501102030');
    assert.equal(mapValue(-1000, 'timestamp(YYYYMMDDHHmmss)'), '19691231235959');
    assert.match(mappingErrorOf(() => mapValue('20241301', 'timestamp')).message, /'20241301' is not a timestamp \(ISO-8601, YYYYMMDD\[HHmm\[ss\]\] or epoch milliseconds\)/);
  });

  it('timestamp refuses what is not a time', () => {    for (const bad of ['yesterday', '2024-02-30T00:00:00Z', '2024-05-01T25:00:00Z', true]) {
      assert.match(mappingErrorOf(() => mapValue(bad, 'timestamp')).message, /is not a timestamp/, String(bad));
    }
  });

  it('number turns numeric text into a number', () => {
    assert.equal(mapValue(' 42.5 ', 'number'), 42.5);
    assert.equal(mapValue(7, 'number'), 7);
    assert.equal(mappingErrorOf(() => mapValue('abc', 'number')).message, "field 'field': 'abc' is not a number");
  });

  it('default fills a missing or null field before the other transforms, wherever it is written', () => {
    const rule = parseMappingLine('HMS:status -> COBOL:STAT | upper | default(pending) | pad(8)');
    const record = (event: object) => applyMapping([rule], KEY, { permit_id: 'P-1', ...event }).row.STAT;
    assert.equal(record({}), 'PENDING ');
    assert.equal(record({ status: null }), 'PENDING ');
    assert.equal(record({ status: 'ok' }), 'OK      ');
  });
});

describe('compileIdentify: what coalescing knows of an event', () => {
  const rules = parseMapping(['HMS:status -> COBOL:PERMIT_STAT | map(Approved=APPR)', 'HMS:note -> COBOL:NOTE | default(none)', 'HMS:inspector -> COBOL:INSPECTOR']).rules;
  const identify = compileIdentify(rules, KEY);

  it('answers the key, the version and the columns the event writes (a default counts, a missing field does not)', () => {
    assert.deepEqual(identify({ permit_id: 'P-1', status: 'Approved', updated_at: '2026-03-01T10:00:00Z' }), {
      key: 'P-1', version: '2026-03-01 10:00:00.000000', columns: ['PERMIT_ID', 'PERMIT_STAT', 'NOTE'],
    });
    assert.deepEqual(identify({ permit_id: 7, inspector: null })?.columns, ['PERMIT_ID', 'NOTE', 'INSPECTOR']);
    assert.equal(identify({ permit_id: 7 })?.version, null);
  });

  it('answers nothing for an event the mapper would refuse, a value a transform rejects included', () => {
    assert.equal(identify({ permit_id: 'P-1', status: 'Misfiled' }), undefined);
    assert.equal(identify({ status: 'Approved' }), undefined);
    assert.equal(identify({ permit_id: 'P-1', updated_at: 'soon' }), undefined);
    assert.equal(identify('text'), undefined);
  });
});

describe('applyMapping', () => {
  const rules = parseMapping(['HMS:status -> COBOL:PERMIT_STAT | map(Approved=APPR)', 'HMS:applicant.name -> COBOL:APPLICANT', 'HMS:note -> COBOL:NOTE']).rules;

  it('builds the row: key column first, mapped columns, missing fields left out; the version from updated_at', () => {
    assert.deepEqual(applyMapping(rules, KEY, { permit_id: 'P-123', status: 'Approved', applicant: { name: 'Ana' } }), {
      keyColumn: 'PERMIT_ID',
      keyValue: 'P-123',
      row: { PERMIT_ID: 'P-123', PERMIT_STAT: 'APPR', APPLICANT: 'Ana' },
      version: null,
    });
    assert.equal(applyMapping(rules, KEY, { permit_id: 'P-123', updated_at: '2026-03-01T10:00:00.25Z' }).version, '2026-03-01 10:00:00.250000');
  });

  it('writes NULL for a field the event sets to null', () => {
    assert.deepEqual(applyMapping(rules, KEY, { permit_id: 7, note: null }).row, { PERMIT_ID: 7, NOTE: null });
  });

  it('refuses events it cannot map, naming the field', () => {
    const cases: [unknown, RegExp, string | undefined][] = [
      ['text', /the event must be a JSON object \(got text\)/, undefined],
      [[1], /got a list/, undefined],
      [{ status: 'Approved' }, /key field 'permit_id' is missing/, 'permit_id'],
      [{ permit_id: null }, /key field 'permit_id' is missing/, 'permit_id'],
      [{ permit_id: { id: 1 } }, /key field 'permit_id' must be text or a number \(got a map\)/, 'permit_id'],
      [{ permit_id: 'P', note: ['a'] }, /field 'note' has a wrong type: a list/, 'note'],
      [{ permit_id: 'P', status: 'Denied' }, /'Denied' is not in the value table/, 'status'],
      [JSON.parse('{"permit_id": "P", "applicant": {"__proto__": {"admin": true}}}'), /'__proto__' key, which is refused/, '__proto__'],
      [JSON.parse('{"permit_id": "P", "__proto__": "x"}'), /'__proto__' key, which is refused/, '__proto__'],
    ];
    for (const [event, message, field] of cases) {
      const error = mappingErrorOf(() => applyMapping(rules, KEY, event));
      assert.match(error.message, message);
      assert.equal(error.field, field);
    }
  });

  it("takes 'constructor' and 'prototype' as plain data, at any depth", () => {
    const event = JSON.parse('{"permit_id": "P", "constructor": "x", "site": {"constructor": "ACME Builders", "prototype": {"a": 1}}}');
    const withSite = [...rules, parseMappingLine('HMS:site.constructor -> COBOL:BUILDER')];
    assert.deepEqual(applyMapping(withSite, KEY, event).row, { PERMIT_ID: 'P', BUILDER: 'ACME Builders' });
  });

  it('reads only own properties, never inherited ones', () => {
    const event = Object.assign(Object.create({ status: 'Approved' }), { permit_id: 'P' });
    assert.deepEqual(applyMapping(rules, KEY, event).row, { PERMIT_ID: 'P' });
  });

  it('compiles once and maps many events', () => {
    const map = compileMapping(rules, KEY);
    assert.deepEqual([1, 2].map((n) => map({ permit_id: n, status: 'Approved' }).row), [
      { PERMIT_ID: 1, PERMIT_STAT: 'APPR' },
      { PERMIT_ID: 2, PERMIT_STAT: 'APPR' },
    ]);
  });
});
