// A job's dead letters, kept durably with the original event, the reason, the attempts and
// the times, until a person replays them. Two append-only files: the letters, and the ids
// replayed since, so nothing is ever rewritten in place (a crash cannot corrupt a letter).
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

export interface DeadLetter {
  /** The event's journal sequence number: unique per job. */
  id: number;
  job: string;
  topic?: string;
  /** The event as received (text), so a replay sends exactly what HMS sent. */
  event: string;
  error: string;
  attempts: number;
  firstReceivedAt: string;
  deadAt: string;
}

export class DeadLetterStore {
  private readonly lettersFile: string;
  private readonly replayedFile: string;
  private count: number | undefined;

  constructor(dir: string) {
    this.lettersFile = path.join(dir, 'dead-letters.jsonl');
    this.replayedFile = path.join(dir, 'dead-letters-replayed.jsonl');
  }

  /** Resolves once the letters are on disk (one synced write). */
  async add(...letters: DeadLetter[]): Promise<void> {
    if (letters.length === 0) return;
    await fsp.mkdir(path.dirname(this.lettersFile), { recursive: true });
    await appendDurably(this.lettersFile, letters.map((letter) => JSON.stringify(letter) + '\n').join(''));
    if (this.count !== undefined) this.count += letters.length;
  }

  /** Letters not yet replayed, oldest first. */
  async list(): Promise<DeadLetter[]> {
    const replayed = new Set((await readLines(this.replayedFile)).map((line) => Number(line)));
    const letters = (await readLines(this.lettersFile)).flatMap((line) => {
      try {
        return [JSON.parse(line) as DeadLetter];
      } catch {
        return []; // a torn last line from a crash: that letter was never reported as stored
      }
    });
    // A letter stored again for the same event (its change-log entry failed, or the runtime died
    // before it, and the event came again) is one letter: a replay sends the event once.
    const unique = new Map<string, DeadLetter>();
    for (const letter of letters) if (!replayed.has(letter.id)) unique.set(`${letter.id}\u0000${letter.event}`, letter);
    const waiting = [...unique.values()];
    this.count = waiting.length;
    return waiting;
  }

  /** How many letters wait; read from disk once, then kept up to date. */
  async waiting(): Promise<number> {
    if (this.count === undefined) await this.list();
    return this.count ?? 0;
  }

  async markReplayed(ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    await fsp.mkdir(path.dirname(this.replayedFile), { recursive: true });
    await appendDurably(this.replayedFile, ids.map((id) => `${id}\n`).join(''));
    this.count = undefined;
  }
}

async function appendDurably(file: string, text: string): Promise<void> {
  const handle = await fsp.open(file, 'a');
  try {
    await handle.write(text);
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

async function readLines(file: string): Promise<string[]> {
  if (!fs.existsSync(file)) return [];
  return (await fsp.readFile(file, 'utf8')).split('\n').filter((line) => line.trim() !== '');
}
