// Reading and writing moments in time, shared by the `timestamp` transform and the conflict
// law, so an event's time and the destination's time are read by the same rules.

/** A moment in UTC with microseconds, which JavaScript dates cannot hold. */
export interface Instant {
  /** The whole second. */
  second: Date;
  micros: number;
}

export const TIMESTAMP_TOKENS = /YYYY|SSSSSS|SSS|MM|DD|HH|mm|ss/g;
/** `2026-03-01 10:00:00.123456`, UTC: the text every SQL dialect casts without losing microseconds. */
export const CANONICAL_TIMESTAMP = 'YYYY-MM-DD HH:mm:ss.SSSSSS';
/** What parseInstant reads, for messages. */
export const TIMESTAMP_FORMS = 'ISO-8601, YYYYMMDD[HHmm[ss]] or epoch milliseconds';

const ISO_8601 = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;
/** Legacy stamps: YYYYMMDD, YYYYMMDDHHmm, or YYYYMMDDHHmmss with up to 6 fraction digits (8, 12 or 14-20 digits). */
const COMPACT = /^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(?:(\d{2})(\d{0,6}))?)?$/;

/**
 * Reads a time: a Date; ISO-8601 text (without a zone it is UTC); a compact legacy stamp
 * YYYYMMDD[HHmm[ss[fraction]]] in UTC, as digits or a number (a BIGINT column); any other
 * whole number is epoch milliseconds (the 13 digits of today's times among them).
 * Undefined when the value is not a time.
 */
export function parseInstant(value: unknown): Instant | undefined {
  if (value instanceof Date) return fromEpochMillis(value.getTime());
  if (typeof value === 'bigint') return parseDigits(String(value));
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return undefined;
    return Number.isInteger(value) && value >= 0 ? parseDigits(String(value)) : fromEpochMillis(value);
  }
  if (typeof value !== 'string') return undefined;
  // One event's time is read several times on its way (its version, the bound value, the
  // conflict law's comparison, the row read back): the texts read last are remembered.
  const known = recentTexts.get(value);
  if (known !== undefined) return known === null ? undefined : { second: new Date(known.millis), micros: known.micros };
  const instant = parseText(value);
  if (recentTexts.size >= RECENT_TEXTS) recentTexts.clear();
  recentTexts.set(value, instant ? { millis: instant.second.getTime(), micros: instant.micros } : null);
  return instant;
}

/** Texts parseInstant read lately, as milliseconds of the whole second and microseconds (null: not a time). */
const recentTexts = new Map<string, { millis: number; micros: number } | null>();
const RECENT_TEXTS = 8192;

function parseText(value: string): Instant | undefined {
  const text = value.trim();
  const common = parseCommonIso(text);
  if (common !== false) return common;
  if (/^-?\d+$/.test(text)) return parseDigits(text);
  const match = ISO_8601.exec(text);
  if (!match) return undefined;
  const [, year, month, day, hour = '0', minute = '0', seconds = '0', fraction = '', zone = 'Z'] = match;
  const instant = fromParts([year, month, day, hour, minute, seconds], fraction);
  if (instant) instant.second.setTime(instant.second.getTime() - zoneOffsetMinutes(zone) * 60_000);
  return instant;
}

/** The digit at `at` as a number, or -1. */
function digitAt(text: string, at: number): number {
  const code = text.charCodeAt(at) - 48;
  return code >= 0 && code <= 9 ? code : -1;
}

/** The number written by the digits from `at` to `end`, or -1 when one is not a digit. */
function numberAt(text: string, at: number, end: number): number {
  let value = 0;
  for (let i = at; i < end; i++) {
    const digit = digitAt(text, i);
    if (digit < 0) return -1;
    value = value * 10 + digit;
  }
  return value;
}

/** What readClock() read last: year, month, day, hour, minute, second (reused: read per event). */
const clock = new Int32Array(6);

/** The digits of `YYYY-MM-DD?HH:mm:ss` at the start of the text into `clock` (separators not checked); false when one is no digit. */
function readClock(text: string): boolean {
  clock[0] = numberAt(text, 0, 4);
  clock[1] = numberAt(text, 5, 7);
  clock[2] = numberAt(text, 8, 10);
  clock[3] = numberAt(text, 11, 13);
  clock[4] = numberAt(text, 14, 16);
  clock[5] = numberAt(text, 17, 19);
  return clock[0] >= 0 && clock[1] >= 0 && clock[2] >= 0 && clock[3] >= 0 && clock[4] >= 0 && clock[5] >= 0;
}

/**
 * `YYYY-MM-DDTHH:mm:ss[.fraction][Z|+HH:mm]` (or a space for the T), the form nearly every time
 * arrives in, read without a regular expression: an event's time is read several times on its
 * way. False when the text is in another form (the regular expression then decides).
 */
function parseCommonIso(text: string): Instant | undefined | false {
  if (text.length < 19 || text.charCodeAt(4) !== 45 || text.charCodeAt(7) !== 45 || text.charCodeAt(13) !== 58 || text.charCodeAt(16) !== 58) return false;
  const t = text.charCodeAt(10);
  if (t !== 84 && t !== 116 && t !== 32) return false; // T, t or a space
  if (!readClock(text)) return false;
  const year = clock[0], month = clock[1], day = clock[2], hour = clock[3], minute = clock[4], seconds = clock[5];
  let at = 19;
  let fraction = '';
  if (text.charCodeAt(at) === 46 || text.charCodeAt(at) === 44) { // . or ,
    let end = at + 1;
    while (digitAt(text, end) >= 0) end++;
    if (end === at + 1) return false;
    fraction = text.slice(at + 1, end);
    at = end;
  }
  let zone = 'Z';
  if (at < text.length) {
    zone = text.slice(at).trimStart();
    if (!/^(Z|[+-]\d{2}(:?\d{2})?)$/i.test(zone)) return false;
  }
  const instant = fromParts([year, month, day, hour, minute, seconds], fraction);
  if (instant && zone !== 'Z' && zone !== 'z') instant.second.setTime(instant.second.getTime() - zoneOffsetMinutes(zone) * 60_000);
  return instant;
}

/**
 * Epoch milliseconds (microseconds as the fraction) of canonical text, `YYYY-MM-DD HH:mm:ss.SSSSSS`
 * in UTC as EXS binds, stores and compares times, read without a regular expression or an Instant:
 * one event's times are read several times on their way. Undefined when the text is not canonical
 * (or not a real time); parseInstant then reads it, the same value for canonical text.
 */
export function canonicalMillis(text: string): number | undefined {
  if (text.length !== 26 || text.charCodeAt(4) !== 45 || text.charCodeAt(7) !== 45 || text.charCodeAt(10) !== 32
    || text.charCodeAt(13) !== 58 || text.charCodeAt(16) !== 58 || text.charCodeAt(19) !== 46) return undefined;
  const micros = numberAt(text, 20, 26);
  if (micros < 0 || !readClock(text)) return undefined;
  const year = clock[0], month = clock[1], day = clock[2], hour = clock[3], minute = clock[4], seconds = clock[5];
  // Years before 100 take fromParts' way round Date.UTC (which reads them as 19xx).
  if (year < 100 || month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || seconds > 59) return undefined;
  return Date.UTC(year, month - 1, day, hour, minute, seconds) + micros / 1000;
}

/** Whether the text is canonical time text (see canonicalMillis): it then needs no formatting. */
export function isCanonicalTimestamp(text: string): boolean {
  return canonicalMillis(text) !== undefined;
}

/** Milliseconds since epoch, with the microseconds as a fraction. */
export function epochMillis({ second, micros }: Instant): number {
  return second.getTime() + micros / 1000;
}

/** The instant in UTC as `format` spells it with the tokens YYYY MM DD HH mm ss SSS SSSSSS. */
export function formatInstant(instant: Instant, format: string): string {
  let formatter = formatters.get(format);
  if (!formatter) {
    formatter = compileFormat(format);
    if (formatters.size < 100) formatters.set(format, formatter);
  }
  return formatter(instant);
}

type Formatter = (instant: Instant) => string;

/** Formats by format text, compiled once: timestamps are formatted per event and per column. */
const formatters = new Map<string, Formatter>();

const pad = (value: number, width: number) => String(value).padStart(width, '0');

const TOKEN_FORMATTERS: Record<string, Formatter> = {
  YYYY: ({ second }) => pad(second.getUTCFullYear(), 4),
  MM: ({ second }) => pad(second.getUTCMonth() + 1, 2),
  DD: ({ second }) => pad(second.getUTCDate(), 2),
  HH: ({ second }) => pad(second.getUTCHours(), 2),
  mm: ({ second }) => pad(second.getUTCMinutes(), 2),
  ss: ({ second }) => pad(second.getUTCSeconds(), 2),
  SSS: ({ micros }) => pad(Math.floor(micros / 1000), 3),
  SSSSSS: ({ micros }) => pad(micros, 6),
};

function compileFormat(format: string): Formatter {
  const parts: Array<string | Formatter> = [];
  let at = 0;
  for (const match of format.matchAll(TIMESTAMP_TOKENS)) {
    if (match.index! > at) parts.push(format.slice(at, match.index));
    parts.push(TOKEN_FORMATTERS[match[0]]);
    at = match.index! + match[0].length;
  }
  if (at < format.length) parts.push(format.slice(at));
  return (instant) => {
    let text = '';
    for (const part of parts) text += typeof part === 'string' ? part : part(instant);
    return text;
  };
}

/** Digits are a compact stamp when their length says so, else epoch milliseconds. */
function parseDigits(text: string): Instant | undefined {
  const compact = COMPACT.exec(text);
  if (!compact) return fromEpochMillis(Number(text));
  const [, year, month, day, hour = '0', minute = '0', seconds = '0', fraction = ''] = compact;
  return fromParts([year, month, day, hour, minute, seconds], fraction);
}

/** The UTC instant of written calendar parts, or undefined when one is out of range. */
function fromParts(parts: Array<string | number>, fraction: string): Instant | undefined {
  const year = Number(parts[0]);
  const month = Number(parts[1]);
  const day = Number(parts[2]);
  const hour = Number(parts[3]);
  const minute = Number(parts[4]);
  const seconds = Number(parts[5]);
  // Checked here rather than by Date, which rolls 30 February into March.
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || seconds > 59) return undefined;
  let second: Date;
  if (year >= 100) {
    second = new Date(Date.UTC(year, month - 1, day, hour, minute, seconds));
  } else {
    // Date.UTC maps years 0-99 to 1900-1999 (and 1900 has no 29 February, year 0 does).
    second = new Date(0);
    second.setUTCFullYear(year, month - 1, day);
    second.setUTCHours(hour, minute, seconds, 0);
  }
  return { second, micros: fraction === '' ? 0 : Number(fraction.length >= 6 ? fraction.slice(0, 6) : fraction.padEnd(6, '0')) };
}

function daysIn(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** `Z`, `+02`, `+02:00` or `-0530` as minutes east of UTC. */
function zoneOffsetMinutes(zone: string): number {
  if (zone.toUpperCase() === 'Z') return 0;
  const digits = zone.slice(1).replace(':', '');
  const minutes = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || '0');
  return zone.startsWith('-') ? -minutes : minutes;
}

function fromEpochMillis(millis: number): Instant | undefined {
  const wholeSecond = Math.floor(millis / 1000) * 1000;
  const second = new Date(wholeSecond);
  if (Number.isNaN(second.getTime())) return undefined;
  return { second, micros: Math.min(999_999, Math.round((millis - wholeSecond) * 1000)) };
}
