// The change log's durable diary: one JSON line per settled event, appended to a file per
// job and on disk (an O_DSYNC write, or write + fdatasync) before `append` resolves, so an entry
// that was reported as written survives kill -9. Appends that arrive while a write is in flight
// are written together (group commit): under load one synced write covers many entries.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { EventEmitter } from 'node:events';
import { DURABLE_APPEND_FLAGS, WRITES_ARE_SYNCED } from './durable-append';
import type { ChangeLogEntry } from './types';

const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;
const TAIL_CHUNK = 64 * 1024;

interface PendingAppend {
  entries: ChangeLogEntry[];
  line: string;
  lengths: number[];
  resolve: (lengths: number[]) => void;
  reject: (err: Error) => void;
}

export function changeLogPath(baseDir: string, jobId: string): string {
  return path.join(baseDir, safeJobDir(jobId), 'changelog.jsonl');
}

/** Job ids are validated by the contract, but a path must never escape the base folder. */
function safeJobDir(jobId: string): string {
  return jobId.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^\.+/, '_');
}

/** Emits `entry` with each entry once it is on disk (the editor's sidebar follows the log this way). */
export class ChangeLogStore extends EventEmitter {
  readonly file: string;
  private readonly maxBytes: number;
  private fd: number | undefined;
  private size = 0;
  private pending: PendingAppend[] = [];
  private writing = false;

  constructor(baseDir: string, readonly jobId: string, options: { maxBytes?: number } = {}) {
    super();
    this.file = changeLogPath(baseDir, jobId);
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  }

  /** Resolves once the entry is on disk. */
  async append(entry: ChangeLogEntry): Promise<void> {
    await this.appendAll([entry]);
  }

  /**
   * Resolves once all the entries are on disk (in the same group commit), with the length of each
   * entry's JSON: what a feed sizes its messages by without serializing the entries again.
   */
  appendAll(entries: ChangeLogEntry[]): Promise<number[]> {
    if (entries.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      let line = '';
      const lengths: number[] = [];
      for (const entry of entries) {
        const json = JSON.stringify(entry);
        lengths.push(json.length);
        line += json + '\n';
      }
      this.pending.push({ entries, line, lengths, resolve, reject });
      if (!this.writing) void this.writeLoop();
    });
  }

  private async writeLoop(): Promise<void> {
    this.writing = true;
    try {
      while (this.pending.length > 0) {
        const batch = this.pending;
        this.pending = [];
        try {
          await this.writeBatch(batch.map((p) => p.line).join(''));
          for (const p of batch) {
            p.resolve(p.lengths);
            for (const entry of p.entries) this.emit('entry', entry);
          }
        } catch (err) {
          for (const p of batch) p.reject(err as Error);
        }
      }
    } finally {
      this.writing = false;
    }
  }

  private async writeBatch(text: string): Promise<void> {
    const fd = await this.openForAppend();
    const bytes = Buffer.from(text, 'utf8');
    await new Promise<void>((resolve, reject) =>
      fs.write(fd, bytes, 0, bytes.length, null, (err) => (err ? reject(err) : resolve())),
    );
    if (!WRITES_ARE_SYNCED) await new Promise<void>((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
    this.size += bytes.length;
    // The entries are on disk: a rotation that fails must not fail them (they would be appended
    // again). The file grows on; the next write tries to rotate again.
    if (this.size >= this.maxBytes) await this.rotate().catch((err: Error) => this.emit('rotateFailed', err));
  }

  private async openForAppend(): Promise<number> {
    if (this.fd !== undefined) return this.fd;
    await fsp.mkdir(path.dirname(this.file), { recursive: true });
    dropTornTail(this.file);
    const fd = fs.openSync(this.file, DURABLE_APPEND_FLAGS);
    this.size = fs.fstatSync(fd).size;
    this.fd = fd;
    return fd;
  }

  /** Keeps disk use bounded: the current file becomes `.1`, replacing the older one. */
  private async rotate(): Promise<void> {
    this.closeFd();
    await fsp.rename(this.file, this.file.replace(/\.jsonl$/, '.1.jsonl'));
    this.size = 0;
  }

  private closeFd(): void {
    if (this.fd !== undefined) {
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
  }

  /** Waits for queued appends, then releases the file. */
  async close(): Promise<void> {
    while (this.writing || this.pending.length > 0) {
      await new Promise((r) => setImmediate(r));
    }
    this.closeFd();
  }

  tail(last: number): Promise<ChangeLogEntry[]> {
    return readChangeLogTail(this.file, last);
  }
}

/**
 * A crash mid-write can leave a last line without its newline. That entry was never reported
 * as written; cut it off, so the next entry starts on a line of its own instead of being glued
 * to the fragment (which would make both unreadable).
 */
function dropTornTail(file: string): void {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r+');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size === 0) return;
    const window = Buffer.alloc(Math.min(size, TAIL_CHUNK));
    let end = size;
    // Walk back to the last newline; a torn entry can be longer than one window.
    for (;;) {
      const start = Math.max(0, end - window.length);
      const length = end - start;
      fs.readSync(fd, window, 0, length, start);
      const newline = window.subarray(0, length).lastIndexOf(0x0a);
      if (newline >= 0) {
        const keep = start + newline + 1;
        if (keep < size) fs.ftruncateSync(fd, keep);
        return;
      }
      if (start === 0) {
        fs.ftruncateSync(fd, 0);
        return;
      }
      end = start;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The newest `last` entries, oldest first. Reads backwards from the end of the file so
 * peeking at a long log costs only the bytes of the entries asked for.
 */
export async function readChangeLogTail(file: string, last: number): Promise<ChangeLogEntry[]> {
  if (last <= 0) return [];
  const lines: string[] = [];
  for (const candidate of [file, file.replace(/\.jsonl$/, '.1.jsonl')]) {
    const older = await readLastLines(candidate, last - lines.length);
    lines.unshift(...older);
    if (lines.length >= last) break;
  }
  const entries: ChangeLogEntry[] = [];
  for (const line of lines) {
    try {
      entries.push(JSON.parse(line) as ChangeLogEntry);
    } catch {
      // A torn last line from a crash mid-write: it was never acknowledged, so skip it.
    }
  }
  return entries;
}

/** The newline before the buffer's last line (the buffer usually ends with one). */
function previousNewline(buffer: Buffer): number {
  return buffer.length < 2 ? -1 : buffer.lastIndexOf(0x0a, buffer.length - 2);
}

async function readLastLines(file: string, count: number): Promise<string[]> {
  if (count <= 0) return [];
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  try {
    const { size } = await handle.stat();
    let position = size;
    let carry = Buffer.alloc(0);
    const lines: string[] = [];
    while (position > 0 && lines.length < count) {
      const length = Math.min(TAIL_CHUNK, position);
      position -= length;
      const chunk = Buffer.alloc(length);
      await handle.read(chunk, 0, length, position);
      carry = Buffer.concat([chunk, carry]);
      let newline = previousNewline(carry);
      while (newline >= 0 && lines.length < count) {
        const line = carry.subarray(newline + 1).toString('utf8').trim();
        if (line) lines.unshift(line);
        carry = carry.subarray(0, newline + 1);
        newline = previousNewline(carry);
      }
    }
    if (position === 0 && lines.length < count) {
      const first = carry.toString('utf8').trim();
      if (first) lines.unshift(first);
    }
    return lines;
  } finally {
    await handle.close();
  }
}
