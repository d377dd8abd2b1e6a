// What the fault tests (test/integration/fault.test.ts) are made of: numbered HMS events with a
// few poison ones among them, a publisher with its own persistent session, `exs run` runtimes
// that can be killed with SIGKILL and started again on the same user directory, and the
// accounting that reads the change logs and dead letters from disk at the end.
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as mqtt from 'mqtt';
import { reapOnExit } from './child-reaper';
import { startExsRun, type ExsRun } from './exs-process';
import { sleep } from './wait';

// ---------------------------------------------------------------------------------------------
// Small things.

/** Deterministic PRNG (mulberry32): a failing run is reproduced with its printed seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function makeLogger(tag: string): (line: string) => void {
  const started = Date.now();
  return (line) => console.log(`[${tag} +${((Date.now() - started) / 1000).toFixed(1)}s] ${line}`);
}

// ---------------------------------------------------------------------------------------------
// The events.

export type PoisonKind = 'not_json' | 'missing_key' | 'proto_key' | 'too_long' | 'oversize';

/** What each poison event's dead letter must say. */
export const POISON_REASONS: Record<PoisonKind, RegExp> = {
  not_json: /not JSON/,
  missing_key: /key field 'permit_id' is missing/,
  proto_key: /__proto__/,
  too_long: /too long/i,
  oversize: /over the 262144-byte limit/,
};

export const POISON_KINDS = Object.keys(POISON_REASONS) as PoisonKind[];

export interface PlannedEvent {
  /** 1..N in publish order. */
  id: number;
  text: string;
  poison?: PoisonKind;
  /** Good events only. */
  key?: string;
  status?: string;
  updatedAt?: string;
}

/** Event times are publish order: 10 ms apart, so one key's updates often share a second. */
const BASE_TIME = Date.UTC(2026, 0, 1, 8, 0, 0);
export function eventTime(id: number): string {
  return new Date(BASE_TIME + id * 10).toISOString();
}

export function poisonText(kind: PoisonKind, id: number, columnWidth: number): string {
  const updatedAt = eventTime(id);
  switch (kind) {
    case 'not_json':
      return `permit approved, event_id=${id}, not JSON at all`;
    case 'missing_key':
      return JSON.stringify({ event_id: id, status: 'APPR', updated_at: updatedAt });
    case 'proto_key':
      // Written as text: JSON.stringify would not keep a `__proto__` key.
      return `{"__proto__": {"polluted": true}, "event_id": ${id}, "permit_id": "POISON-PROTO", "status": "APPR", "updated_at": "${updatedAt}"}`;
    case 'too_long':
      return JSON.stringify({ event_id: id, permit_id: 'POISON-LONG', status: 'L'.repeat(columnWidth * 10), updated_at: updatedAt });
    case 'oversize':
      // event_id first: the dead letter keeps only the first KiB of an oversize event.
      return `{"event_id": ${id}, "permit_id": "POISON-BIG", "status": "${'x'.repeat(300 * 1024)}", "updated_at": "${updatedAt}"}`;
  }
}

export const POISON_KEYS = ['POISON-PROTO', 'POISON-LONG', 'POISON-BIG'];

/**
 * N numbered events over `keys` keys (chosen at random), with `poisonPerKind` of each poison
 * kind spread evenly through the stream.
 */
export function planEvents(count: number, keys: number, random: () => number, options: { poisonPerKind?: number; statusWidth: number }): PlannedEvent[] {
  const poisonAt = new Map<number, PoisonKind>();
  const slots = POISON_KINDS.length * (options.poisonPerKind ?? 2);
  for (let i = 0; i < slots; i++) {
    const id = Math.max(1, Math.min(count, Math.round(((i + 0.5) / slots) * count)));
    poisonAt.set(id, POISON_KINDS[i % POISON_KINDS.length]);
  }
  const events: PlannedEvent[] = [];
  for (let id = 1; id <= count; id++) {
    const poison = poisonAt.get(id);
    if (poison) {
      events.push({ id, poison, text: poisonText(poison, id, options.statusWidth) });
      continue;
    }
    const key = `K-${String(Math.floor(random() * keys)).padStart(4, '0')}`;
    const status = `S${id}`;
    const updatedAt = eventTime(id);
    events.push({ id, key, status, updatedAt, text: JSON.stringify({ event_id: id, permit_id: key, status, updated_at: updatedAt }) });
  }
  return events;
}

/** The last good event of each key: what the table must hold at the end. */
export function lastEventPerKey(events: PlannedEvent[]): Map<string, PlannedEvent> {
  const last = new Map<string, PlannedEvent>();
  for (const event of events) if (!event.poison && event.key) last.set(event.key, event);
  return last;
}

// ---------------------------------------------------------------------------------------------
// The publisher: QoS 1, a persistent session of its own, reconnecting through broker restarts.

export class Publisher {
  readonly client: mqtt.MqttClient;
  readonly acked = new Set<number>();
  readonly errors: string[] = [];
  private sent = 0;

  constructor(url: string, clientId: string, private readonly topic: string) {
    this.client = mqtt.connect(url, {
      clientId,
      protocolVersion: 4,
      clean: false,
      reconnectPeriod: 500,
      connectTimeout: 5_000,
    });
    this.client.on('error', (err) => this.errors.push(err.message));
  }

  get published(): number {
    return this.sent;
  }

  /** Queued in mqtt.js's outgoing store when offline; sent (again) on reconnect until acknowledged. */
  publish(event: PlannedEvent): void {
    this.sent += 1;
    this.client.publish(this.topic, event.text, { qos: 1 }, (err) => {
      if (err) this.errors.push(`event ${event.id}: ${err.message}`);
      else this.acked.add(event.id);
    });
  }

  /** Publishes `events` at `perSecond`, steadily; `onProgress` runs after each batch. */
  async publishAtRate(events: PlannedEvent[], perSecond: number, onProgress: (published: number) => void): Promise<void> {
    const started = Date.now();
    let next = 0;
    while (next < events.length) {
      const due = Math.min(events.length, Math.floor(((Date.now() - started) / 1000) * perSecond) + 1);
      while (next < due) this.publish(events[next++]);
      onProgress(next);
      await sleep(20);
    }
  }

  async close(): Promise<void> {
    await this.client.endAsync(true).catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// A runtime: `exs run` on one user directory, killed and started again as the test says.

export class Runtime {
  run?: ExsRun;
  starts = 0;
  kills = 0;
  private readonly outputs: string[] = [];
  private starting?: Promise<unknown>;

  constructor(
    readonly name: string,
    readonly contractFile: string,
    readonly userDir: string,
    readonly instance: string,
    private readonly log: (line: string) => void,
  ) {}

  get pid(): number | undefined {
    return this.run?.child.pid;
  }

  get alive(): boolean {
    return Boolean(this.run && this.run.child.exitCode === null && this.run.child.signalCode === null);
  }

  async start(): Promise<void> {
    if (this.alive) throw new Error(`${this.name} is already running`);
    const began = Date.now();
    const starting = startExsRun([this.contractFile], this.userDir, [], {
      // EXS_DATA_DIR would put every runtime's journal in one place: each keeps its own.
      env: { EXS_INSTANCE: this.instance, EXS_DATA_DIR: undefined, NODE_NO_WARNINGS: '1' },
    });
    this.starting = starting.catch(() => undefined);
    const run = await starting;
    this.run = run;
    reapOnExit(run.child);
    this.starts += 1;
    this.log(`${this.name}: exs run started (pid ${this.pid}, start #${this.starts}, ${Date.now() - began} ms)`);
  }

  /** kill -9: no shutdown, no flush, whatever is in memory is gone. */
  async kill9(): Promise<void> {
    await this.starting; // a start under way finishes first, so its process is not left behind
    const run = this.run;
    if (!run || !this.alive) return;
    const exited = once(run.child, 'exit');
    run.child.kill('SIGKILL');
    await exited;
    this.kills += 1;
    this.outputs.push(run.output());
    this.log(`${this.name}: kill -9 (pid ${run.child.pid}, kill #${this.kills})`);
  }

  /** SIGTERM and wait (exs run's clean shutdown); SIGKILL after 20 s. */
  async stop(): Promise<number | null> {
    await this.starting;
    const run = this.run;
    if (!run) return null;
    if (!this.alive) return run.child.exitCode;
    const code = await run.stop();
    this.outputs.push(run.output());
    return code;
  }

  /** Everything every process of this runtime printed. */
  output(): string {
    const current = this.run && this.alive ? [this.run.output()] : [];
    return [...this.outputs, ...current].join('\n----- next process -----\n');
  }

  async jobState(jobId: string): Promise<unknown> {
    if (!this.run || !this.alive) return 'not running';
    try {
      const response = await fetch(`${this.run.adminUrl}/exs/jobs/${jobId}`);
      return await response.json();
    } catch (err) {
      return `unreachable: ${(err as Error).message}`;
    }
  }
}

/** The client id exs-source uses (nodes/exs-source/exs-source.ts): a Mosquitto log line names it. */
export function sourceClientId(jobId: string, instance: string): string {
  return `exs-${jobId}-${instance}`.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 128);
}

// ---------------------------------------------------------------------------------------------
// The accounting, from the files on disk.

export interface LoggedEntry {
  runtime: string;
  seq: number;
  key: unknown;
  outcome: string;
  eventId?: number;
  error?: string;
  attempts?: number;
  time?: string;
  after?: Record<string, unknown>;
  before?: Record<string, unknown> | null;
}

export interface StoredLetter {
  runtime: string;
  id: number;
  eventId?: number;
  error: string;
  attempts: number;
  event: string;
}

/** The event's number: `event.event_id` of a parsed event, or found in the text of one that was not. */
export function eventIdOf(event: unknown): number | undefined {
  if (event && typeof event === 'object' && Object.prototype.hasOwnProperty.call(event, 'event_id')) {
    const value = (event as Record<string, unknown>).event_id;
    return typeof value === 'number' ? value : undefined;
  }
  if (typeof event === 'string') {
    const match = /"?event_id"?\s*[:=]\s*(\d+)/.exec(event);
    return match ? Number(match[1]) : undefined;
  }
  return undefined;
}

export interface JsonLines {
  records: any[];
  /** Lines that are not JSON (a write torn by kill -9, or two lines run together after one). */
  torn: string[];
}

export function readJsonLines(...files: string[]): JsonLines {
  const records: any[] = [];
  const torn: string[] = [];
  for (const file of files) {
    if (!fs.existsSync(file)) continue;
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      if (line.trim() === '') continue;
      try {
        records.push(JSON.parse(line));
      } catch {
        torn.push(`${path.basename(file)}: ${line.slice(0, 200)}${line.length > 200 ? '...' : ''}`);
      }
    }
  }
  return { records, torn };
}

export function jobDir(userDir: string, jobId: string): string {
  return path.join(userDir, 'exs', jobId);
}

/** Change-log entries of a runtime, the rotated file first. */
export function readChangeLog(runtime: string, userDir: string, jobId: string): { entries: LoggedEntry[]; torn: string[] } {
  const dir = jobDir(userDir, jobId);
  const { records, torn } = readJsonLines(path.join(dir, 'changelog.1.jsonl'), path.join(dir, 'changelog.jsonl'));
  const entries = records.map((r) => ({
    runtime,
    seq: r.seq,
    key: r.key,
    outcome: r.outcome,
    eventId: eventIdOf(r.event),
    error: r.error,
    attempts: r.attempts,
    time: r.time,
    after: r.after,
    before: r.before,
  }));
  return { entries, torn };
}

export function readDeadLetters(runtime: string, userDir: string, jobId: string): { letters: StoredLetter[]; torn: string[] } {
  const { records, torn } = readJsonLines(path.join(jobDir(userDir, jobId), 'dead-letters.jsonl'));
  return {
    letters: records.map((r) => ({ runtime, id: r.id, eventId: eventIdOf(r.event), error: String(r.error), attempts: r.attempts, event: String(r.event) })),
    torn,
  };
}

export const SETTLED_OUTCOMES = new Set(['applied', 'unchanged', 'skipped', 'dead_letter']);

export interface Accounting {
  entries: LoggedEntry[];
  byEvent: Map<number, LoggedEntry[]>;
  missing: number[];
  /** Entries whose event carries no number we know (should be none). */
  unidentified: LoggedEntry[];
  torn: string[];
}

export function account(events: PlannedEvent[], logs: Array<{ entries: LoggedEntry[]; torn: string[] }>): Accounting {
  const entries = logs.flatMap((l) => l.entries);
  const byEvent = new Map<number, LoggedEntry[]>();
  const unidentified: LoggedEntry[] = [];
  for (const entry of entries) {
    if (entry.eventId === undefined) {
      unidentified.push(entry);
      continue;
    }
    const list = byEvent.get(entry.eventId) ?? [];
    list.push(entry);
    byEvent.set(entry.eventId, list);
  }
  const missing = events.filter((e) => !(byEvent.get(e.id) ?? []).some((entry) => SETTLED_OUTCOMES.has(entry.outcome))).map((e) => e.id);
  return { entries, byEvent, missing, unidentified, torn: logs.flatMap((l) => l.torn) };
}

export function countBy<T>(items: T[], keyOf: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[keyOf(item)] = (counts[keyOf(item)] ?? 0) + 1;
  return counts;
}

/** `1-5, 9, 12-13`: a short way to print many ids. */
export function idRanges(ids: number[], max = 40): string {
  const sorted = [...ids].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.length > max ? `${parts.slice(0, max).join(', ')}, ... (${sorted.length} ids)` : parts.join(', ');
}
