// Reading times: the texts read lately are remembered, and what is remembered never leaks a
// shared object a caller could change.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { canonicalMillis, epochMillis, formatInstant, isCanonicalTimestamp, parseInstant, CANONICAL_TIMESTAMP } from '../../nodes/core/time';
import { toSqlTimestampText } from '../../nodes/core/sql/dialect';

describe('parseInstant', () => {
  it('reads the same text to the same instant again, as a fresh object each time', () => {
    const first = parseInstant('2026-03-01T10:00:00.123456+02:00')!;
    assert.equal(formatInstant(first, CANONICAL_TIMESTAMP), '2026-03-01 08:00:00.123456');
    first.second.setTime(0);
    first.micros = 7;
    const again = parseInstant('2026-03-01T10:00:00.123456+02:00')!;
    assert.notEqual(again, first);
    assert.equal(formatInstant(again, CANONICAL_TIMESTAMP), '2026-03-01 08:00:00.123456', 'a changed result does not change the next');
  });

  it('remembers what is not a time as not a time, and keeps reading correctly past its memory', () => {
    assert.equal(parseInstant('yesterday'), undefined);
    assert.equal(parseInstant('yesterday'), undefined);
    for (let i = 0; i < 5000; i++) {
      const text = new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString();
      assert.equal(epochMillis(parseInstant(text)!), Date.UTC(2026, 0, 1) + i * 1000, text);
    }
    assert.equal(epochMillis(parseInstant(' 2026-01-01T00:00:00Z ')!), Date.UTC(2026, 0, 1), 'surrounding blanks');
  });

  it('reads ISO texts exactly as the regular expression it replaces for the common form did', () => {
    const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;
    const reference = (text: string): number | undefined => {
      const m = ISO.exec(text.trim());
      if (!m) return undefined;
      const [, y, mo, d, h = '0', mi = '0', s = '0', f = '', zone = 'Z'] = m;
      const days = [31, Number(y) % 4 === 0 && (Number(y) % 100 !== 0 || Number(y) % 400 === 0) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
      if (+mo < 1 || +mo > 12 || +d < 1 || +d > days[+mo - 1] || +h > 23 || +mi > 59 || +s > 59) return undefined;
      const date = new Date(0);
      date.setUTCFullYear(+y, +mo - 1, +d);
      date.setUTCHours(+h, +mi, +s, 0);
      let offset = 0;
      if (zone.toUpperCase() !== 'Z') {
        const digits = zone.slice(1).replace(':', '');
        offset = (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || '0')) * (zone.startsWith('-') ? -1 : 1);
      }
      return date.getTime() - offset * 60_000 + Number((f.length >= 6 ? f.slice(0, 6) : f.padEnd(6, '0')) || 0) / 1000;
    };
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)];
    const two = () => String(Math.floor(random() * 70)).padStart(2, '0');
    for (let i = 0; i < 20_000; i++) {
      const text = `${pick(['2026', '2024', '0000', '1900', '0099', '20x6'])}-${two()}-${two()}${pick(['T', 't', ' ', 'X'])}${two()}:${two()}:${two()}`
        + pick(['', '.5', '.123', ',123456789', '.', '.12a'])
        + pick(['', 'Z', 'z', ' Z', '+02:00', '-0530', '+02', '+2', 'UTC', 'Z ', '  +01:00']);
      const got = parseInstant(text);
      assert.equal(got && epochMillis(got), reference(text), text);
    }
  });
});

describe('canonicalMillis', () => {
  it('reads canonical text as parseInstant does, and anything else not at all', () => {
    let seed = 11;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)];
    const two = (max: number) => String(Math.floor(random() * max)).padStart(2, '0');
    let canonical = 0;
    for (let i = 0; i < 20_000; i++) {
      const text = `${pick(['2026', '2024', '1900', '2000', '0099', '0100', '20x6'])}-${two(14)}-${two(33)}${pick([' ', ' ', 'T'])}${two(25)}:${two(61)}:${two(61)}`
        + pick(['.123456', '.000000', '.999999', '.12345', '.1234567', '.12345x', '']);
      const millis = canonicalMillis(text);
      const instant = parseInstant(text);
      if (millis === undefined) {
        // Not canonical (or before the year 100): parseInstant reads it, and it is formatted as ever.
        assert.ok(!instant || formatInstant(instant, CANONICAL_TIMESTAMP) !== text || text.startsWith('00'), text);
        continue;
      }
      canonical += 1;
      assert.ok(instant, text);
      assert.equal(millis, epochMillis(instant!), text);
      assert.equal(formatInstant(instant!, CANONICAL_TIMESTAMP), text, 'canonical text is its own canonical form');
      assert.equal(isCanonicalTimestamp(text), true);
      assert.equal(toSqlTimestampText(text), text);
    }
    assert.ok(canonical > 1000, `only ${canonical} canonical texts generated`);
  });
});
