// When a job applies its events: `realtime` as they arrive, or held and flushed on a
// schedule - `hourly`, `nightly`, or a five-field cron expression (minute hour day-of-month
// month day-of-week, with `*`, lists, ranges and steps), evaluated in local time.

export const NAMED_SCHEDULES: Record<string, string> = {
  hourly: '0 * * * *',
  nightly: '0 2 * * *',
};

const FIELDS = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12 },
  { name: 'day of week', min: 0, max: 7 },
] as const;

export interface CronSchedule {
  readonly text: string;
  /** The first run strictly after `after`. */
  nextRun(after: Date): Date;
}

function parseField(text: string, field: (typeof FIELDS)[number]): Set<number> {
  const values = new Set<number>();
  for (const part of text.split(',')) {
    const match = /^(\*|\d+(?:-\d+)?)(?:\/(\d+))?$/.exec(part);
    if (!match) throw new Error(`${field.name} '${part}' is not a number, range, list or step`);
    const step = match[2] ? Number(match[2]) : 1;
    if (step < 1) throw new Error(`${field.name} step must be at least 1`);
    let low: number = field.min;
    let high: number = field.max;
    if (match[1] !== '*') {
      const [a, b] = match[1].split('-').map(Number);
      low = a;
      high = b ?? (match[2] ? field.max : a);
    }
    if (low < field.min || high > field.max || low > high) {
      throw new Error(`${field.name} '${part}' is outside ${field.min}-${field.max}`);
    }
    for (let v = low; v <= high; v += step) values.add(field.name === 'day of week' && v === 7 ? 0 : v);
  }
  return values;
}

/** Parses `hourly`, `nightly` or a cron expression; throws a message for people. */
export function parseCron(text: string): CronSchedule {
  const expression = NAMED_SCHEDULES[text] ?? text;
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== 5) throw new Error(`a cron expression has five fields (minute hour day month weekday), got ${parts.length}`);
  const [minutes, hours, days, months, weekdays] = parts.map((p, i) => parseField(p, FIELDS[i]));
  // Cron's rule: when both day fields are restricted, a day matching either one runs.
  const dayRestricted = parts[2] !== '*';
  const weekdayRestricted = parts[4] !== '*';
  const dayMatches = (d: Date) => {
    const byDay = days.has(d.getDate());
    const byWeekday = weekdays.has(d.getDay());
    if (dayRestricted && weekdayRestricted) return byDay || byWeekday;
    return (!dayRestricted || byDay) && (!weekdayRestricted || byWeekday);
  };
  return {
    text,
    nextRun(after: Date): Date {
      const t = new Date(after.getTime());
      t.setSeconds(0, 0);
      t.setMinutes(t.getMinutes() + 1);
      // Minute steps over at most ~4 years cover every valid expression (Feb 29 included).
      for (let guard = 0; guard < 4 * 366 * 24 * 60; guard++) {
        if (!months.has(t.getMonth() + 1)) {
          t.setMonth(t.getMonth() + 1, 1);
          t.setHours(0, 0);
          continue;
        }
        if (!dayMatches(t)) {
          t.setDate(t.getDate() + 1);
          t.setHours(0, 0);
          continue;
        }
        if (!hours.has(t.getHours())) {
          t.setHours(t.getHours() + 1, 0);
          continue;
        }
        if (!minutes.has(t.getMinutes())) {
          t.setMinutes(t.getMinutes() + 1);
          continue;
        }
        return t;
      }
      throw new Error(`cron '${text}' never runs`);
    },
  };
}

export function isRealtime(schedule: string): boolean {
  return schedule === 'realtime';
}
