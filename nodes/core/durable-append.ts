// How EXS opens the files it appends to durably (the journal's segments, the change log).
// Where the platform has O_DSYNC, a write returns only once its data is on disk: one system call
// and one thread-pool round trip per group commit instead of write + fdatasync. Each thread-pool
// request costs tens of microseconds of the event loop on a virtual machine (a thread wake-up),
// so at light load this is a measurable part of an event's latency. Elsewhere (Windows) the file
// opens for plain appending and the caller syncs with fdatasync.
import * as fs from 'node:fs';

const { O_WRONLY, O_APPEND, O_CREAT, O_DSYNC } = fs.constants;

/** Flags for fs.open: synchronous-data appends where the platform has them, else 'a'. */
export const DURABLE_APPEND_FLAGS: number | string = O_DSYNC === undefined ? 'a' : O_WRONLY | O_APPEND | O_CREAT | O_DSYNC;

/** True when a write to a file opened with DURABLE_APPEND_FLAGS is already durable: no fdatasync needed. */
export const WRITES_ARE_SYNCED = typeof DURABLE_APPEND_FLAGS === 'number';

/**
 * Flags for a file written in place at explicit positions (pwrite), each write durable: where
 * the platform has O_DSYNC, the journal's segments, whose tail is zero-filled ahead of the
 * writes (see SyncJournal). Undefined elsewhere: they append with DURABLE_APPEND_FLAGS.
 */
export const DURABLE_IN_PLACE_FLAGS: number | undefined = O_DSYNC === undefined ? undefined : O_WRONLY | O_CREAT | O_DSYNC;

/**
 * Errors a write can fail with before anything reached the disk: the write can be undone and
 * tried again. Any other error of a synced write (EIO) is as bad as a failed fdatasync: the
 * kernel may have dropped the data and forgotten the error.
 */
export function isRetryableWriteError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG';
}
