// Reading times: the texts read lately are remembered, and what is remembered never leaks a
// shared object a caller could change.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { epochMillis, formatInstant, parseInstant, CANONICAL_TIMESTAMP } from '../../nodes/core/time';

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
});
