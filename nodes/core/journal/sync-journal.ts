// The per-job durable journal behind the sync queue (issue 3): an event is appended and synced
// to disk here (nodes/core/durable-append.ts) before its PUBACK goes to the broker, then read back
// (from memory while the reader keeps up, else from disk), applied and settled. It survives kill -9, keeps memory flat however long the backlog grows (records stay
// on disk; memory holds counters and the settled seqs above the low-water mark), and keeps
// disk bounded by deleting segments whose every record is settled.
//
// On disk, in `dir`:
//   seg-<firstSeq, 16 digits>.log   records with consecutive seqs, starting at firstSeq
//   checkpoint.json                 {"version":1,"lowWater":N,"settled":[...]} (atomic rename)
// A record is framed as [u32 bodyLength][u32 crc32(body)][body], little-endian, with
// body = [f64 seq][f64 receivedAt][u16 topicLength][topic utf8][payload].
//
// Seqs are consecutive across all segments, so a segment's range follows from the names:
// [its firstSeq, next segment's firstSeq - 1]. Only the last segment can be torn by a crash
// (a batch is written to one segment, and a segment is only left after its batch was synced),
// so opening scans that one segment alone, whatever the backlog.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { DURABLE_APPEND_FLAGS, DURABLE_IN_PLACE_FLAGS, WRITES_ARE_SYNCED, isRetryableWriteError } from '../durable-append';

export interface JournalRecord {
  seq: number;
  receivedAt: number;
  topic: string;
  payload: Buffer;
}

export interface JournalOptions {
  /** A segment is closed and a new one started once it reaches this size. Default 64 MiB. */
  segmentBytes?: number;
  /** Settles are persisted at most this long after they happen (and on close). Default 200 ms. */
  checkpointIntervalMs?: number;
}

/** Counters for benchmarks and status displays. */
export interface JournalStats {
  appends: number;
  /** Group commits made durable: an O_DSYNC write or an fdatasync. */
  fdatasyncs: number;
  checkpoints: number;
  segmentsDeleted: number;
  /** Records handed to readers from memory rather than from the segment files. */
  readFromMemory: number;
  /** Bytes read from the segment files (by readers; recovery's scan is not counted). */
  bytesRead: number;
}

const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
const DEFAULT_CHECKPOINT_INTERVAL_MS = 200;
/** Persist the checkpoint early after this many settles, so a crash redelivers little. */
const CHECKPOINT_EVERY_SETTLES = 5000;
/** One synced write carries at most this much: bounds the buffer a burst allocates. */
const MAX_BATCH_BYTES = 4 * 1024 * 1024;
const READ_CHUNK = 256 * 1024;
/**
 * Where writes can be synced in place (DURABLE_IN_PLACE_FLAGS), the active segment's file is
 * zero-filled this far ahead of its records, in the background, once less than half of that is
 * left and the last group commit was small (ZERO_FILL_AFTER_COMMITS_UP_TO). A synced write that
 * grows a file must also commit the file system's journal for the new size and blocks (ext4,
 * xfs): two device flushes. One into blocks already written and synced is a single flush: a
 * 200-byte append took 0.14 instead of 0.20-0.24 ms at the median and 0.23-0.28 instead of
 * 0.39-0.97 ms at the 99th percentile on this project's test machine. PostgreSQL zero-fills its
 * WAL segments for the same reason. Readers stop at the records' end (`bytes`); the zeros are
 * cut off when the journal closes, and by recovery after a crash.
 */
const ZERO_AHEAD = 1024 * 1024;
/**
 * Large group commits (a flood) spread the file system's commit over many records already, and
 * writing the zeros too would double what goes to the disk: 256 appenders lost 10% of their
 * appends and saw their 99th percentile go from 2.5 to 11 ms waiting for fills of 4 MiB.
 */
const ZERO_FILL_AFTER_COMMITS_UP_TO = 16 * 1024;
/**
 * A fill that starts with no zeroed room left (the first small commit after an open, a new segment,
 * an undone write) starts this far past the records' end, so the commits that come meanwhile need
 * not wait for it: they grow the file (or fill the hole left below the fill) as without fills.
 */
const ZERO_GAP = 64 * 1024;
const ZERO_FILLS = DURABLE_IN_PLACE_FLAGS !== undefined;
/** How the active segment is opened for writing: in place where zero-filling, else for appending. */
const WRITE_FLAGS = DURABLE_IN_PLACE_FLAGS ?? DURABLE_APPEND_FLAGS;
/**
 * A read cursor notes where every 1024th record of its segment starts, so that a reader asking for
 * an earlier record (a retry, the pump after a held flush's scan) goes back to the nearest note
 * instead of the segment's start: two readers taking turns on one segment read it once each, not
 * once per turn. About 100 notes per 64 MiB segment of small events.
 */
const MARK_EVERY = 1024;
/**
 * The newest records are also kept in memory, as views into the buffer they were written from, so
 * a dispatcher that keeps up reads them without a disk round trip (and a decode and a copy). Bounded
 * by count and by bytes, so memory stays flat however long the backlog grows.
 */
const RECENT_RECORDS = 4096;
const RECENT_BYTES = 8 * 1024 * 1024;
/** Read cursors kept open (one per segment, least recently used closed first). */
const MAX_OPEN_CURSORS = 4;
const FRAME_HEADER = 8;
const BODY_HEADER = 18;
/** A length above this in a frame header is garbage (MQTT caps a packet at 256 MiB). */
const MAX_BODY = 512 * 1024 * 1024;
const MAX_TOPIC_BYTES = 0xffff;
const CHECKPOINT_FILE = 'checkpoint.json';
const SEGMENT_NAME = /^seg-(\d{16})\.log$/;

// ---------------------------------------------------------------------------------------------
// CRC32 (IEEE 802.3, as zlib and PNG): zlib.crc32 exists only from Node 20.15 / 22.2, so the
// table version is the fallback and the reference the tests compare the native one against.

const CRC_TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

export function crc32Table(data: Uint8Array): number {
  let c = -1;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;

export const crc32: (data: Uint8Array) => number = nativeCrc32 ? (data) => nativeCrc32(data) : crc32Table;

// ---------------------------------------------------------------------------------------------
// Small promise wrappers over the fd-level fs calls (the FileHandle API hides fdatasync counts
// and costs an object per file).

/** Writes at `position`, or at the end of a file opened for appending when it is null. */
function writeFd(fd: number, buf: Buffer, offset: number, length: number, position: number | null = null): Promise<number> {
  return new Promise((resolve, reject) =>
    fs.write(fd, buf, offset, length, position, (err, written) => (err ? reject(err) : resolve(written))),
  );
}

function readFd(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) =>
    fs.read(fd, buf, offset, length, position, (err, read) => (err ? reject(err) : resolve(read))),
  );
}

function fdatasyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

function ftruncateFd(fd: number, length: number): Promise<void> {
  return new Promise((resolve, reject) => fs.ftruncate(fd, length, (err) => (err ? reject(err) : resolve())));
}

function openFd(file: string, flags: string | number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(file, flags, (err, fd) => (err ? reject(err) : resolve(fd))));
}

function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
}

/** Makes a create, rename or delete in `dir` itself durable (POSIX asks for it; ext4 mostly does it anyway). */
async function fsyncDir(dir: string): Promise<void> {
  // Windows cannot open a directory as a file; NTFS journals its metadata changes instead.
  if (process.platform === 'win32') return;
  const fd = await openFd(dir, 'r');
  try {
    await new Promise<void>((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
  } finally {
    await closeFd(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// Record framing.

function frameSize(topicBytes: number, payloadBytes: number): number {
  return FRAME_HEADER + BODY_HEADER + topicBytes + payloadBytes;
}

/** Writes one framed record at `offset`; returns the offset after it. */
/** Writes the record's frame at `offset`; returns where the next frame starts. */
function encodeRecord(buf: Buffer, offset: number, seq: number, item: PendingAppend): number {
  const body = offset + FRAME_HEADER;
  const bodyLength = BODY_HEADER + item.topicBytes + item.payload.length;
  buf.writeDoubleLE(seq, body);
  buf.writeDoubleLE(item.receivedAt, body + 8);
  buf.writeUInt16LE(item.topicBytes, body + 16);
  buf.write(item.topic, body + BODY_HEADER, item.topicBytes, 'utf8');
  item.payload.copy(buf, body + BODY_HEADER + item.topicBytes);
  buf.writeUInt32LE(bodyLength, offset);
  buf.writeUInt32LE(crc32(buf.subarray(body, body + bodyLength)), offset + 4);
  return body + bodyLength;
}

/** A frame as read: `body` is a view into the cursor's buffer, valid until the cursor moves on. */
interface Frame {
  seq: number;
  storedCrc: number;
  body: Buffer;
}

function frameIsIntact(frame: Frame): boolean {
  return frame.body.readUInt16LE(16) <= frame.body.length - BODY_HEADER && crc32(frame.body) === frame.storedCrc;
}

/** Copies the record out of the cursor's buffer, so the caller may keep it. */
function decodeRecord(frame: Frame): JournalRecord {
  const topicEnd = BODY_HEADER + frame.body.readUInt16LE(16);
  return {
    seq: frame.seq,
    receivedAt: frame.body.readDoubleLE(8),
    topic: frame.body.toString('utf8', BODY_HEADER, topicEnd),
    payload: Buffer.from(frame.body.subarray(topicEnd)),
  };
}

class TornFrame extends Error {}

/**
 * A buffered, forward-only reader over one segment file. It remembers where it stopped, so
 * reading the next page continues there instead of rescanning the segment.
 */
class SegmentCursor {
  /** Seq of the frame at the read position. */
  nextSeq: number;
  private buf = Buffer.allocUnsafe(READ_CHUNK);
  private start = 0;
  private end = 0;
  /** File offset of buf[end]. */
  private filePos = 0;

  constructor(
    readonly fd: number,
    readonly segment: Segment,
    /** Counts the bytes this cursor reads from the file. */
    private readonly counted: (bytes: number) => void = () => undefined,
  ) {
    this.nextSeq = segment.firstSeq;
  }

  /** File offset of the frame at the read position. */
  get offset(): number {
    return this.filePos - (this.end - this.start);
  }

  rewind(): void {
    this.start = this.end = this.filePos = 0;
    this.nextSeq = this.segment.firstSeq;
  }

  /**
   * Moves to the latest noted record at or before `seq` (see MARK_EVERY) when that saves reading:
   * back from a position past `seq`, or ahead over records noted before. Past `seq` without a note
   * before it: back to the start.
   */
  seekNear(seq: number): void {
    const marks = this.segment.marks;
    let lo = 0;
    let hi = marks ? marks.seqs.length - 1 : -1;
    if (hi < 0 || marks!.seqs[0] > seq) {
      if (this.nextSeq > seq) this.rewind();
      return;
    }
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (marks!.seqs[mid] <= seq) lo = mid;
      else hi = mid - 1;
    }
    const markSeq = marks!.seqs[lo];
    if (this.nextSeq <= seq && markSeq <= this.nextSeq) return; // reading on from here is as near
    this.start = this.end = 0;
    this.filePos = marks!.offsets[lo];
    this.nextSeq = markSeq;
  }

  /** Forgets bytes read past the read position (after the writer truncated a failed write away). */
  dropReadAhead(): void {
    this.filePos = this.offset;
    this.start = this.end = 0;
  }

  /** The frame at the read position, undefined at a clean end of file; throws TornFrame on a partial or implausible frame. */
  async peek(): Promise<Frame | undefined> {
    const buffered = this.buffered();
    if (buffered) return buffered;
    if (!(await this.fill(FRAME_HEADER))) {
      if (this.end === this.start) return undefined;
      throw new TornFrame('partial frame header');
    }
    const length = this.frameLength();
    if (!(await this.fill(FRAME_HEADER + length))) throw new TornFrame('partial record');
    return this.frameAtStart(length);
  }

  /**
   * The frame at the read position if the buffer holds all of it, else undefined (peek() reads
   * on). A page of a backlog is read mostly from the buffer: without a promise per frame there.
   */
  buffered(): Frame | undefined {
    if (this.end - this.start < FRAME_HEADER) return undefined;
    const length = this.frameLength();
    return this.end - this.start < FRAME_HEADER + length ? undefined : this.frameAtStart(length);
  }

  private frameLength(): number {
    const length = this.buf.readUInt32LE(this.start);
    if (length < BODY_HEADER || length > MAX_BODY) throw new TornFrame(`implausible record length ${length}`);
    return length;
  }

  private frameAtStart(length: number): Frame {
    const body = this.buf.subarray(this.start + FRAME_HEADER, this.start + FRAME_HEADER + length);
    return { seq: body.readDoubleLE(0), storedCrc: this.buf.readUInt32LE(this.start + 4), body };
  }

  /** Moves past the frame `peek` returned. */
  advance(frame: Frame): void {
    this.start += FRAME_HEADER + frame.body.length;
    this.nextSeq++;
    if ((this.nextSeq - this.segment.firstSeq) % MARK_EVERY === 0) {
      // Noted once, in order: only a cursor that reached a new record notes it.
      const marks = (this.segment.marks ??= { seqs: [], offsets: [] });
      if (marks.seqs.length === 0 || marks.seqs[marks.seqs.length - 1] < this.nextSeq) {
        marks.seqs.push(this.nextSeq);
        marks.offsets.push(this.offset);
      }
    }
  }

  /** Makes `n` bytes available at buf[start]; false if the file ends first. */
  private async fill(n: number): Promise<boolean> {
    while (this.end - this.start < n) {
      const kept = this.end - this.start;
      if (n > this.buf.length || (this.buf.length > READ_CHUNK && n <= READ_CHUNK)) {
        // Grow for a record larger than the buffer; shrink back once past it.
        const resized = Buffer.allocUnsafe(Math.max(n, READ_CHUNK));
        this.buf.copy(resized, 0, this.start, this.end);
        this.buf = resized;
      } else if (this.start > 0) {
        this.buf.copy(this.buf, 0, this.start, this.end);
      }
      this.start = 0;
      this.end = kept;
      // Never past the records' end: the active segment's file goes on with zeros (ZERO_AHEAD)
      // that records will overwrite, and a buffer must not keep them.
      const room = Math.min(this.buf.length - this.end, this.segment.bytes - this.filePos);
      if (room <= 0) return false;
      const read = await readFd(this.fd, this.buf, this.end, room, this.filePos);
      this.counted(read);
      if (read === 0) return false;
      this.end += read;
      this.filePos += read;
    }
    return true;
  }
}

// ---------------------------------------------------------------------------------------------

interface Segment {
  firstSeq: number;
  file: string;
  bytes: number;
  /** Set once the segment no longer takes appends: the seq just before the next segment's first. */
  sealedLast?: number;
  /** Where some of its records start (see MARK_EVERY): seqs ascending, byte offsets alike. */
  marks?: { seqs: number[]; offsets: number[] };
}

interface PendingAppend {
  topic: string;
  topicBytes: number;
  payload: Buffer;
  receivedAt: number;
  resolve: (seq: number) => void;
  reject: (err: Error) => void;
}

interface Checkpoint {
  lowWater: number;
  settled: number[];
}

function segmentFileName(firstSeq: number): string {
  return `seg-${String(firstSeq).padStart(16, '0')}.log`;
}

function isSeq(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** The persisted checkpoint, or an empty one when there is none (or it is unreadable: that only means redelivery). */
async function readCheckpoint(file: string): Promise<Checkpoint> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { lowWater: 0, settled: [] };
    throw err;
  }
  try {
    const parsed = JSON.parse(text) as { lowWater?: unknown; settled?: unknown };
    if (isSeq(parsed.lowWater) && Array.isArray(parsed.settled) && parsed.settled.every(isSeq)) {
      return { lowWater: parsed.lowWater, settled: parsed.settled };
    }
  } catch {
    // fall through: the checkpoint is written by atomic rename, so this takes a disk that lies.
  }
  return { lowWater: 0, settled: [] };
}

export class SyncJournal {
  private readonly segmentBytes: number;
  private readonly checkpointIntervalMs: number;
  private readonly checkpointFile: string;

  /** On-disk segments, oldest first; the last one takes appends. */
  private segments: Segment[] = [];
  private writeFd: number | undefined;
  /** The active segment's file holds records, then zeros (or a hole below a fill, see ZERO_GAP), up to here (see ZERO_AHEAD). */
  private zeroedTo = 0;
  /** A zero-fill in flight, from `zeroingFrom` on: a write that would reach into it waits for it. */
  private zeroing: Promise<void> | undefined;
  private zeroingFrom = Infinity;
  private last = 0;
  private low = 0;
  /** Settled seqs above `low`: bounded by how far the caller reads ahead of the low-water mark. */
  private settled = new Set<number>();

  private pending: PendingAppend[] = [];
  private writing = false;
  private writeDone: Promise<void> = Promise.resolve();
  /** Set when a sync failed: the page cache can no longer be trusted, only a reopen can. */
  private failure: Error | undefined;
  /** Bumped when a failed write is truncated away, so read cursors drop what they read past it. */
  private truncations = 0;
  private state: 'open' | 'closing' | 'closed' = 'open';
  private closed: Promise<void> | undefined;

  private cursors = new Map<Segment, { cursor: SegmentCursor; truncations: number }>();
  /** The newest appended records not read yet, consecutive seqs, oldest first from `recentHead`. */
  private recent: JournalRecord[] = [];
  private recentHead = 0;
  private recentBytes = 0;
  /**
   * How far a reader has read. Appends more than RECENT_RECORDS ahead of it are not kept in
   * memory: a reader that far behind (a paused job, a backlog) would find them evicted before it
   * got there, and keeping them only turns every record of a flood into old-generation garbage.
   */
  private readUpTo = 0;
  private readChain: Promise<unknown> = Promise.resolve();

  private dirty = false;
  private settlesSinceCheckpoint = 0;
  private checkpointTimer: NodeJS.Timeout | undefined;
  private checkpointChain: Promise<unknown> = Promise.resolve();
  /** Low-water mark of the last durable checkpoint: segments at or below it may go. */
  private persistedLow = 0;
  private checkpointBytes = 0;

  private readonly counters: JournalStats = { appends: 0, fdatasyncs: 0, checkpoints: 0, segmentsDeleted: 0, readFromMemory: 0, bytesRead: 0 };

  private constructor(
    readonly dir: string,
    options: JournalOptions,
  ) {
    this.segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.checkpointIntervalMs = options.checkpointIntervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS;
    this.checkpointFile = path.join(dir, CHECKPOINT_FILE);
  }

  /** Opens (creating `dir` if needed) and recovers: a torn last record is truncated away. */
  static async open(dir: string, options: JournalOptions = {}): Promise<SyncJournal> {
    const journal = new SyncJournal(dir, options);
    await journal.recover();
    return journal;
  }

  /** Highest seq whose append resolved. */
  get lastSeq(): number {
    return this.last;
  }

  /** Every seq <= lowWater is settled. */
  get lowWater(): number {
    return this.low;
  }

  pendingCount(): number {
    return this.last - this.low - this.settled.size;
  }

  isSettled(seq: number): boolean {
    return seq <= this.low || this.settled.has(seq);
  }

  /** The records' bytes on disk and the checkpoint's (not the active segment's zero-filled tail: at most ZERO_AHEAD). */
  diskBytes(): number {
    return this.segments.reduce((sum, s) => sum + s.bytes, 0) + this.checkpointBytes;
  }

  stats(): JournalStats {
    return { ...this.counters };
  }

  // -------------------------------------------------------------------------------------------
  // Appending: group commit. Appends queue up while a synced write runs; the next round writes
  // all of them with one synced write (O_DSYNC, or write + fdatasync where there is none).

  /** Resolves with the record's seq once it is on disk (written and fdatasync'd). Do not change `payload` until then. */
  append(topic: string, payload: Buffer, receivedAt: number = Date.now()): Promise<number> {
    if (this.state !== 'open') return Promise.reject(new Error(`journal ${this.dir} is closed`));
    if (this.failure) return Promise.reject(this.failure);
    if (!Buffer.isBuffer(payload)) return Promise.reject(new TypeError('journal payload must be a Buffer'));
    const topicBytes = Buffer.byteLength(topic, 'utf8');
    if (topicBytes > MAX_TOPIC_BYTES) {
      return Promise.reject(new RangeError(`topic is ${topicBytes} bytes; the journal takes at most ${MAX_TOPIC_BYTES}`));
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ topic, topicBytes, payload, receivedAt, resolve, reject });
      if (!this.writing) this.writeDone = this.writeLoop();
    });
  }

  private async writeLoop(): Promise<void> {
    this.writing = true;
    try {
      while (this.pending.length > 0) {
        if (this.failure) {
          for (const p of this.pending.splice(0)) p.reject(this.failure);
          break;
        }
        const batch = this.takeBatch();
        try {
          await this.commit(batch);
        } catch (err) {
          for (const p of batch) p.reject(err as Error);
        }
      }
    } finally {
      this.writing = false;
    }
  }

  private takeBatch(): PendingAppend[] {
    let count = 0;
    let bytes = 0;
    while (count < this.pending.length && (count === 0 || bytes < MAX_BATCH_BYTES)) {
      bytes += frameSize(this.pending[count].topicBytes, this.pending[count].payload.length);
      count++;
    }
    return this.pending.splice(0, count);
  }

  /**
   * Writes and syncs one batch, then resolves it in order. Seqs are given here rather than in
   * `append`, so a batch that fails takes its seqs back and seqs stay consecutive.
   */
  private async commit(batch: PendingAppend[]): Promise<void> {
    const firstSeq = this.last + 1;
    const buf = Buffer.allocUnsafe(batch.reduce((sum, p) => sum + frameSize(p.topicBytes, p.payload.length), 0));
    let offset = 0;
    const written: JournalRecord[] = batch.map((p, i) => {
      const end = encodeRecord(buf, offset, firstSeq + i, p);
      const record = { seq: firstSeq + i, receivedAt: p.receivedAt, topic: p.topic, payload: buf.subarray(end - p.payload.length, end) };
      offset = end;
      return record;
    });

    const segment = await this.segmentForAppend(firstSeq);
    const fd = this.writeFd as number;
    const at = segment.bytes;
    if (this.zeroing && at + buf.length > this.zeroingFrom) await this.zeroing;
    try {
      for (let done = 0; done < buf.length; ) done += await writeFd(fd, buf, done, buf.length - done, ZERO_FILLS ? at + done : null);
    } catch (err) {
      await this.undoPartialWrite(fd, segment, err as Error);
      if (WRITES_ARE_SYNCED && !isRetryableWriteError(err) && !this.failure) {
        this.failure = new Error(`journal ${this.dir}: a synced write failed (${(err as Error).message}); reopen the journal`);
      }
      throw err;
    }
    try {
      if (!WRITES_ARE_SYNCED) await fdatasyncFd(fd);
    } catch (err) {
      // After a failed fdatasync the kernel may have dropped the dirty pages and cleared the
      // error: a retry could "succeed" without the data. Only a reopen (which rescans) is safe.
      this.failure = new Error(`journal ${this.dir}: fdatasync failed (${(err as Error).message}); reopen the journal`);
      throw this.failure;
    }
    this.counters.fdatasyncs++;
    segment.bytes += buf.length;
    this.zeroedTo = Math.max(this.zeroedTo, segment.bytes);
    if (buf.length <= ZERO_FILL_AFTER_COMMITS_UP_TO) this.zeroAhead();
    this.last = firstSeq + batch.length - 1;
    this.counters.appends += batch.length;
    this.remember(written);
    batch.forEach((p, i) => p.resolve(firstSeq + i));
  }

  private remember(records: JournalRecord[]): void {
    if (records.length === 0) return;
    if (records[0].seq - this.readUpTo > RECENT_RECORDS) {
      // Kept seqs must stay consecutive: start again once the reader is near.
      if (this.recent.length > 0) this.forgetRecent();
      return;
    }
    for (const record of records) {
      this.recent.push(record);
      this.recentBytes += record.payload.length + record.topic.length;
    }
    while (this.recent.length - this.recentHead > RECENT_RECORDS || (this.recentBytes > RECENT_BYTES && this.recent.length - this.recentHead > 1)) {
      const dropped = this.recent[this.recentHead++];
      this.recentBytes -= dropped.payload.length + dropped.topic.length;
    }
    if (this.recentHead > RECENT_RECORDS) {
      this.recent = this.recent.slice(this.recentHead);
      this.recentHead = 0;
    }
  }

  /**
   * Records a reader has read leave memory: it holds its own copies (a retry reuses them), and what
   * reads them again (a schedule's scan, a reader that dropped its own) reads the disk. Kept until
   * 4096 newer ones came, each record lived seconds at light load, long enough to be promoted and
   * to die in the old generation, whose collections every few seconds stalled the runtime for
   * about 20 ms.
   */
  private forgetRead(): void {
    while (this.recentHead < this.recent.length && this.recent[this.recentHead].seq <= this.readUpTo) {
      const dropped = this.recent[this.recentHead++];
      this.recentBytes -= dropped.payload.length + dropped.topic.length;
    }
    // Not left in the array's head either, where they would live on until the next slice.
    if (this.recentHead === this.recent.length) this.forgetRecent();
    else if (this.recentHead > 0) {
      this.recent = this.recent.slice(this.recentHead);
      this.recentHead = 0;
    }
  }

  private forgetRecent(): void {
    this.recent = [];
    this.recentHead = 0;
    this.recentBytes = 0;
  }

  /** Unsettled records from memory, from `seq` on, when memory still holds `seq`; else undefined. */
  private readRecent(seq: number, limit: number): JournalRecord[] | undefined {
    const oldest = this.recent[this.recentHead];
    if (!oldest || seq < oldest.seq) return undefined;
    const records: JournalRecord[] = [];
    for (let i = this.recentHead + (seq - oldest.seq); i < this.recent.length && records.length < limit; i++) {
      const record = this.recent[i];
      // A copy: a record the caller keeps (retrying, say) must not pin the whole write buffer.
      if (!this.isSettled(record.seq)) records.push({ ...record, payload: Buffer.from(record.payload) });
    }
    return records;
  }

  /** The segment the next batch goes to: a full one is left for a new one named after `firstSeq`. */
  private async segmentForAppend(firstSeq: number): Promise<Segment> {
    const active = this.segments[this.segments.length - 1];
    if (active.bytes < this.segmentBytes || active.bytes === 0) return active;
    const next: Segment = { firstSeq, file: path.join(this.dir, segmentFileName(firstSeq)), bytes: 0 };
    // A sealed segment ends with its last record: only the last segment's tail is scanned by recovery.
    await this.cutZeros(active);
    // Open the new segment before letting go of the old one, so a failure leaves appends working.
    const fd = await openFd(next.file, WRITE_FLAGS);
    await fsyncDir(this.dir);
    const previous = this.writeFd;
    this.writeFd = fd;
    this.zeroedTo = 0;
    active.sealedLast = firstSeq - 1;
    this.segments.push(next);
    if (previous !== undefined) await closeFd(previous);
    return next;
  }

  /** Zero-fills the active segment's file further ahead (ZERO_AHEAD) in the background, when it is time to. */
  private zeroAhead(): void {
    const active = this.segments[this.segments.length - 1];
    const fd = this.writeFd;
    if (!ZERO_FILLS || this.zeroing || fd === undefined || this.state !== 'open' || this.failure) return;
    if (this.zeroedTo - active.bytes >= ZERO_AHEAD / 2) return;
    const from = Math.max(this.zeroedTo, active.bytes + ZERO_GAP);
    if (from >= this.segmentBytes) return;
    const to = Math.min(from + ZERO_AHEAD, this.segmentBytes);
    const zeros = Buffer.alloc(to - from);
    const fill = async () => {
      for (let done = 0; done < zeros.length; ) done += await writeFd(fd, zeros, done, zeros.length - done, from + done);
    };
    this.zeroingFrom = from;
    this.zeroing = fill().then(
      // Commits stayed below `from` meanwhile, and what cuts the file waits for the fill first.
      () => { if (this.writeFd === fd) this.zeroedTo = to; },
      (err) => {
        // A full disk: writes grow the file as they would without fills. Any other error of a
        // synced write may have been a record's (an O_DSYNC write reports the file's write-back
        // errors, once): as with a failed record write, only a reopen is safe.
        if (!isRetryableWriteError(err) && !this.failure) {
          this.failure = new Error(`journal ${this.dir}: a synced write failed (${(err as Error).message}); reopen the journal`);
        }
      },
    ).finally(() => {
      this.zeroing = undefined;
      this.zeroingFrom = Infinity;
    });
  }

  /** Cuts the zeros after the segment's last record off its file (a sealed or closed segment). */
  private async cutZeros(segment: Segment): Promise<void> {
    if (this.zeroing) await this.zeroing;
    const fd = this.writeFd;
    if (!ZERO_FILLS || fd === undefined) return;
    // The file's own size: a fill that failed part way left zeros past `zeroedTo`.
    const size = await new Promise<number>((resolve, reject) => fs.fstat(fd, (err, stats) => (err ? reject(err) : resolve(stats.size))));
    if (size <= segment.bytes) return;
    await ftruncateFd(fd, segment.bytes);
    this.zeroedTo = segment.bytes;
    try {
      await fdatasyncFd(fd);
    } catch (err) {
      this.failure ??= new Error(`journal ${this.dir}: fdatasync failed (${(err as Error).message}); reopen the journal`);
      throw this.failure;
    }
  }

  /** A failed write (say ENOSPC) may have left part of the batch: cut it off so the seqs can be given again. */
  private async undoPartialWrite(fd: number, segment: Segment, cause: Error): Promise<void> {
    try {
      if (this.zeroing) await this.zeroing;
      await ftruncateFd(fd, segment.bytes);
      this.zeroedTo = segment.bytes;
      this.truncations++;
    } catch (err) {
      this.failure = new Error(
        `journal ${this.dir}: a write failed (${cause.message}) and could not be undone (${(err as Error).message}); reopen the journal`,
      );
    }
  }

  // -------------------------------------------------------------------------------------------
  // Reading.

  /**
   * Unsettled records with seq > afterSeq, in seq order, at most `limit`. Streams from disk
   * through a cursor per segment, so reading page after page never rescans.
   */
  readUnsettled(afterSeq: number, limit: number): Promise<JournalRecord[]> {
    if (this.state === 'closed') return Promise.reject(new Error(`journal ${this.dir} is closed`));
    return this.withReadLock(() => this.readUnsettledLocked(afterSeq, limit));
  }

  private async readUnsettledLocked(afterSeq: number, limit: number): Promise<JournalRecord[]> {
    const records = await this.readPage(afterSeq, limit);
    if (limit <= 0) return records;
    // A short page reached the end: the reader is up to date.
    const reached = records.length < limit ? this.last : records[records.length - 1].seq;
    this.readUpTo = Math.max(this.readUpTo, reached);
    this.forgetRead();
    return records;
  }

  private async readPage(afterSeq: number, limit: number): Promise<JournalRecord[]> {
    if (this.state === 'closed') throw new Error(`journal ${this.dir} is closed`);
    const records: JournalRecord[] = [];
    let seq = Number.isFinite(afterSeq) ? Math.floor(afterSeq) + 1 : 1;
    while (records.length < limit) {
      // Re-read each round: settles and segment deletions happen while we await the disk.
      seq = Math.max(seq, this.low + 1);
      if (seq > this.last) break;
      const recent = this.readRecent(seq, limit - records.length);
      if (recent) {
        this.counters.readFromMemory += recent.length;
        records.push(...recent);
        break; // memory holds everything from `seq` to the end
      }
      const segment = this.segments[this.segmentIndexFor(seq)];
      const cursor = await this.cursorAt(segment, seq);
      while (records.length < limit) {
        // Bound by the durable end: bytes past it belong to a write still in flight.
        const end = Math.min(segment.sealedLast ?? this.last, this.last);
        if (cursor.nextSeq > end) break;
        const frame = this.bufferedFrame(cursor) ?? await this.readFrame(cursor);
        if (!frame) {
          this.checkMissingSettled(segment, cursor.nextSeq, end);
          seq = end + 1; // what is not there was settled: go on with the next segment
          break;
        }
        if (!this.isSettled(frame.seq)) {
          if (!frameIsIntact(frame)) throw this.corruption(segment, cursor.offset, 'checksum mismatch');
          records.push(decodeRecord(frame));
        }
        cursor.advance(frame);
      }
      seq = Math.max(seq, cursor.nextSeq);
    }
    return records;
  }

  /** The frame at the cursor, checked to be the one expected there. */
  private async readFrame(cursor: SegmentCursor): Promise<Frame | undefined> {
    let frame: Frame | undefined;
    try {
      frame = await cursor.peek();
    } catch (err) {
      throw this.readFailure(cursor, err);
    }
    return frame && this.checkedSeq(cursor, frame);
  }

  /** readFrame() without waiting, when the cursor's buffer holds the frame; undefined when it must read. */
  private bufferedFrame(cursor: SegmentCursor): Frame | undefined {
    let frame: Frame | undefined;
    try {
      frame = cursor.buffered();
    } catch (err) {
      throw this.readFailure(cursor, err);
    }
    return frame && this.checkedSeq(cursor, frame);
  }

  /** A torn or implausible frame as the journal's corruption at the cursor; any other error as it is. */
  private readFailure(cursor: SegmentCursor, err: unknown): unknown {
    return err instanceof TornFrame ? this.corruption(cursor.segment, cursor.offset, err.message) : err;
  }

  private checkedSeq(cursor: SegmentCursor, frame: Frame): Frame {
    if (frame.seq !== cursor.nextSeq) {
      throw this.corruption(cursor.segment, cursor.offset, `found seq ${frame.seq} where ${cursor.nextSeq} belongs`);
    }
    return frame;
  }

  /**
   * A segment ended before its last seq. Legitimate only for seqs the checkpoint knew settled
   * (see `recover`); an unsettled one was lost to the disk, and that must not pass silently.
   */
  private checkMissingSettled(segment: Segment, from: number, to: number): void {
    if (segment.sealedLast === undefined) throw this.corruption(segment, segment.bytes, `records ${from}..${to} are missing`);
    for (let seq = from; seq <= to; seq++) {
      if (!this.isSettled(seq)) throw this.corruption(segment, segment.bytes, `records ${seq}..${to} are missing`);
    }
  }

  private corruption(segment: Segment, offset: number, what: string): Error {
    return new Error(`journal corrupt: ${segment.file} at byte ${offset}: ${what}`);
  }

  private segmentIndexFor(seq: number): number {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.segments[mid].firstSeq <= seq) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** This segment's cursor, positioned at `seq` (rewound only if it is already past it). */
  private async cursorAt(segment: Segment, seq: number): Promise<SegmentCursor> {
    let entry = this.cursors.get(segment);
    if (entry) {
      this.cursors.delete(segment); // re-inserted below: Map order is the LRU order
    } else {
      entry = { cursor: new SegmentCursor(await openFd(segment.file, 'r'), segment, (bytes) => { this.counters.bytesRead += bytes; }), truncations: this.truncations };
    }
    this.cursors.set(segment, entry);
    for (const [old, stale] of this.cursors) {
      if (this.cursors.size <= MAX_OPEN_CURSORS) break;
      this.cursors.delete(old);
      await closeFd(stale.cursor.fd);
    }
    const { cursor } = entry;
    if (entry.truncations !== this.truncations) {
      cursor.dropReadAhead();
      entry.truncations = this.truncations;
    }
    if (cursor.nextSeq > seq || seq - cursor.nextSeq >= MARK_EVERY) cursor.seekNear(seq);
    while (cursor.nextSeq < seq) {
      const frame = this.bufferedFrame(cursor) ?? await this.readFrame(cursor);
      if (!frame) break; // the caller sees the early end and handles it
      cursor.advance(frame);
    }
    return cursor;
  }

  /** Cursor work is serialized: one read at a time, and an fd is never closed under a read. */
  private withReadLock<T>(work: () => Promise<T>): Promise<T> {
    const run = this.readChain.then(work);
    this.readChain = run.catch(() => undefined);
    return run;
  }

  // -------------------------------------------------------------------------------------------
  // Settling and the checkpoint.

  /** Marks a record done. Idempotent; seqs already settled or never appended are ignored. */
  settle(seq: number): void {
    if (this.state === 'closed' || !Number.isInteger(seq) || seq <= this.low || seq > this.last) return;
    if (this.settled.has(seq)) return;
    this.settled.add(seq);
    while (this.settled.delete(this.low + 1)) this.low++;
    this.dirty = true;
    if (++this.settlesSinceCheckpoint === CHECKPOINT_EVERY_SETTLES) {
      this.checkpointSoon(0);
    } else if (!this.checkpointTimer) {
      this.checkpointSoon(this.checkpointIntervalMs);
    }
  }

  private checkpointSoon(delayMs: number): void {
    if (this.checkpointTimer) clearTimeout(this.checkpointTimer);
    this.checkpointTimer = setTimeout(() => {
      this.checkpointTimer = undefined;
      // A failure keeps the state dirty: the next settle or close tries again, and close reports it.
      this.flushCheckpoint().catch(() => undefined);
    }, delayMs);
    this.checkpointTimer.unref();
  }

  /** Persists the settled state now, then deletes the segments it fully covers. */
  flushCheckpoint(): Promise<void> {
    const run = this.checkpointChain.then(() => this.writeCheckpoint());
    this.checkpointChain = run.catch(() => undefined);
    return run;
  }

  private async writeCheckpoint(): Promise<void> {
    if (this.checkpointTimer) {
      clearTimeout(this.checkpointTimer);
      this.checkpointTimer = undefined;
    }
    if (this.dirty) {
      const lowWater = this.low;
      const text = JSON.stringify({ version: 1, lowWater, settled: [...this.settled].sort((a, b) => a - b) });
      this.dirty = false;
      this.settlesSinceCheckpoint = 0;
      try {
        await this.writeFileAtomically(this.checkpointFile, text);
      } catch (err) {
        this.dirty = true;
        throw err;
      }
      this.persistedLow = lowWater;
      this.checkpointBytes = Buffer.byteLength(text);
      this.counters.checkpoints++;
    }
    await this.deleteSettledSegments();
  }

  private async writeFileAtomically(file: string, text: string): Promise<void> {
    const tmp = `${file}.tmp`;
    const fd = await openFd(tmp, 'w');
    try {
      const bytes = Buffer.from(text, 'utf8');
      for (let done = 0; done < bytes.length; ) done += await writeFd(fd, bytes, done, bytes.length - done);
      await new Promise<void>((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
    } finally {
      await closeFd(fd);
    }
    await fsp.rename(tmp, file);
    // Durable before any segment it covers is deleted.
    await fsyncDir(this.dir);
  }

  /**
   * Deletes leading segments whose records are all at or below the persisted low-water mark.
   * Never the last segment: it takes appends and its name keeps seqs increasing across restarts.
   * Only a prefix goes, so the segments on disk always hold consecutive seqs.
   */
  private async deleteSettledSegments(): Promise<void> {
    const doomed: Segment[] = [];
    while (this.segments.length > 1 && this.segments[1].firstSeq - 1 <= this.persistedLow) {
      doomed.push(this.segments.shift() as Segment);
    }
    if (doomed.length === 0) return;
    for (const segment of doomed) {
      await fsp.rm(segment.file, { force: true });
      this.counters.segmentsDeleted++;
    }
    // A read may still hold one of their cursors: close them in turn with reads.
    await this.withReadLock(async () => {
      for (const segment of doomed) {
        const entry = this.cursors.get(segment);
        if (!entry) continue;
        this.cursors.delete(segment);
        await closeFd(entry.cursor.fd);
      }
    });
  }

  // -------------------------------------------------------------------------------------------
  // Opening and closing.

  private async recover(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true });
    await fsp.rm(`${this.checkpointFile}.tmp`, { force: true });
    const checkpoint = await readCheckpoint(this.checkpointFile);
    this.checkpointBytes = (await fsp.stat(this.checkpointFile).catch(() => undefined))?.size ?? 0;

    const names = await fsp.readdir(this.dir);
    for (const name of names) {
      const match = SEGMENT_NAME.exec(name);
      if (!match) continue;
      const file = path.join(this.dir, name);
      this.segments.push({ firstSeq: Number(match[1]), file, bytes: (await fsp.stat(file)).size });
    }
    this.segments.sort((a, b) => a.firstSeq - b.firstSeq);

    let diskLast = 0;
    let low = checkpoint.lowWater;
    if (this.segments.length > 0) {
      diskLast = await this.truncateTornTail(this.segments[this.segments.length - 1]);
      // Seqs before the first segment were deleted, and only settled ones are.
      low = Math.max(low, this.segments[0].firstSeq - 1);
    }
    const settled = checkpoint.settled.filter((seq) => seq > low);
    // Seqs only ever increase: past anything on disk and anything the checkpoint has seen.
    this.last = settled.reduce((max, seq) => Math.max(max, seq), Math.max(diskLast, low));
    // Seqs the checkpoint saw settled but the disk no longer has (a disk that lied about a
    // sync) cannot be delivered anyway: count them settled so the low-water mark moves on.
    for (let seq = Math.max(diskLast, low) + 1; seq <= this.last; seq++) settled.push(seq);
    this.settled = new Set(settled);
    this.low = low;
    while (this.settled.delete(this.low + 1)) this.low++;
    this.persistedLow = this.low;

    if (this.segments.length === 0 || this.last > diskLast) {
      const firstSeq = this.last + 1;
      const file = path.join(this.dir, segmentFileName(firstSeq));
      await fsp.writeFile(file, '', { flag: 'a' });
      this.segments.push({ firstSeq, file, bytes: (await fsp.stat(file)).size });
    }
    for (let i = 0; i < this.segments.length - 1; i++) this.segments[i].sealedLast = this.segments[i + 1].firstSeq - 1;
    await fsyncDir(this.dir);
    const active = this.segments[this.segments.length - 1];
    this.writeFd = await openFd(active.file, WRITE_FLAGS);
    this.zeroedTo = active.bytes;
    await this.deleteSettledSegments();
  }

  /**
   * Scans the last segment, cuts off whatever follows its last intact record (a write torn
   * by a crash: never acknowledged), and returns the seq of that record.
   */
  private async truncateTornTail(segment: Segment): Promise<number> {
    const fd = await openFd(segment.file, 'r+');
    try {
      const cursor = new SegmentCursor(fd, segment);
      for (;;) {
        let frame: Frame | undefined;
        try {
          frame = await cursor.peek();
        } catch (err) {
          if (!(err instanceof TornFrame)) throw err;
          break;
        }
        if (!frame || frame.seq !== cursor.nextSeq || !frameIsIntact(frame)) break;
        cursor.advance(frame);
      }
      if (cursor.offset < segment.bytes) {
        await ftruncateFd(fd, cursor.offset);
        await fdatasyncFd(fd);
        segment.bytes = cursor.offset;
      }
      return cursor.nextSeq - 1;
    } finally {
      await closeFd(fd);
    }
  }

  /** Waits for queued appends, persists the checkpoint and releases every file. */
  close(): Promise<void> {
    this.closed ??= this.closeOnce();
    return this.closed;
  }

  private async closeOnce(): Promise<void> {
    this.state = 'closing';
    while (this.writing) await this.writeDone;
    // Files at rest end with their last record; recovery would cut the zeros anyway.
    if (this.segments.length > 0) await this.cutZeros(this.segments[this.segments.length - 1]).catch(() => undefined);
    try {
      await this.flushCheckpoint();
    } finally {
      this.state = 'closed';
      this.forgetRecent();
      if (this.checkpointTimer) clearTimeout(this.checkpointTimer);
      await this.withReadLock(async () => {
        for (const { cursor } of this.cursors.values()) await closeFd(cursor.fd);
        this.cursors.clear();
      });
      if (this.writeFd !== undefined) await closeFd(this.writeFd);
      this.writeFd = undefined;
    }
  }
}
