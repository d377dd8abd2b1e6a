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
  const text = value.trim();
  if (/^-?\d+$/.test(text)) return parseDigits(text);
  const match = ISO_8601.exec(text);
  if (!match) return undefined;
  const [, year, month, day, hour = '0', minute = '0', seconds = '0', fraction = '', zone = 'Z'] = match;
  const instant = fromParts([year, month, day, hour, minute, seconds], fraction);
  if (instant) instant.second.setTime(instant.second.getTime() - zoneOffsetMinutes(zone) * 60_000);
  return instant;
}

/** Milliseconds since epoch, with the microseconds as a fraction. */
export function epochMillis({ second, micros }: Instant): number {
  return second.getTime() + micros / 1000;
}

/** The instant in UTC as `format` spells it with the tokens YYYY MM DD HH mm ss SSS SSSSSS. */
export function formatInstant({ second, micros }: Instant, format: string): string {
  const digits = (value: number, width: number) => String(value).padStart(width, '0');
  return format.replace(TIMESTAMP_TOKENS, (token) => {
    switch (token) {
      case 'YYYY': return digits(second.getUTCFullYear(), 4);
      case 'MM': return digits(second.getUTCMonth() + 1, 2);
      case 'DD': return digits(second.getUTCDate(), 2);
      case 'HH': return digits(second.getUTCHours(), 2);
      case 'mm': return digits(second.getUTCMinutes(), 2);
      case 'ss': return digits(second.getUTCSeconds(), 2);
      case 'SSS': return digits(Math.floor(micros / 1000), 3);
      default: return digits(micros, 6);
    }
  });
}

/** Digits are a compact stamp when their length says so, else epoch milliseconds. */
function parseDigits(text: string): Instant | undefined {
  const compact = COMPACT.exec(text);
  if (!compact) return fromEpochMillis(Number(text));
  const [, year, month, day, hour = '0', minute = '0', seconds = '0', fraction = ''] = compact;
  return fromParts([year, month, day, hour, minute, seconds], fraction);
}

/** The UTC instant of written calendar parts, or undefined when one is out of range. */
function fromParts(parts: string[], fraction: string): Instant | undefined {
  const [year, month, day, hour, minute, seconds] = parts.map(Number);
  const second = new Date(0);
  second.setUTCFullYear(year, month - 1, day); // not Date.UTC: it maps years 0-99 to 1900-1999
  second.setUTCHours(hour, minute, seconds, 0);
  // Date rolls 30 February into March; a part that did not survive was out of range.
  const kept = [second.getUTCFullYear(), second.getUTCMonth() + 1, second.getUTCDate(), second.getUTCHours(), second.getUTCMinutes(), second.getUTCSeconds()];
  if ([year, month, day, hour, minute, seconds].some((part, i) => part !== kept[i])) return undefined;
  return { second, micros: Number(fraction.padEnd(6, '0').slice(0, 6)) };
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
