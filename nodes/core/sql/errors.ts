// What a database error means for the sync: worth retrying (transient) or not, in words a person can act on.

export interface ClassifiedDbError {
  /** Retrying later may succeed: lost connection, timeout, deadlock, lock contention. */
  transient: boolean;
  sqlState?: string;
  /** The driver's first message, without `[unixODBC][Driver Manager]`-style prefixes. */
  message: string;
}

/** An error from a destination with its classification attached; `cause` keeps the driver's error. */
export class DbError extends Error {
  readonly transient: boolean;
  readonly sqlState?: string;
  /** The classified message without the context prefix. */
  readonly reason: string;

  constructor(classified: ClassifiedDbError, context?: string, cause?: unknown) {
    const state = classified.sqlState ? ` (SQLSTATE ${classified.sqlState})` : '';
    super(`${context ? `${context}: ` : ''}${classified.message}${state}`, { cause });
    this.name = 'DbError';
    this.transient = classified.transient;
    this.sqlState = classified.sqlState;
    this.reason = classified.message;
  }
}

/** Wraps any thrown value as a DbError, keeping an existing classification. */
export function toDbError(err: unknown, context?: string): DbError {
  return new DbError(classifyDbError(err), context, err);
}

interface OdbcDiagnostic {
  state?: string;
  code?: number;
  message?: string;
}

function odbcDiagnostics(err: unknown): OdbcDiagnostic[] {
  const list = (err as { odbcErrors?: unknown } | null)?.odbcErrors;
  return Array.isArray(list) ? list.filter((d): d is OdbcDiagnostic => typeof d === 'object' && d !== null) : [];
}

// Classes 08 (connection), 40 (transaction rollback: serialization failure, deadlock) and 57
// (PostgreSQL/Db2 operator intervention: shutdown, statement cancelled by timeout).
const TRANSIENT_STATES = /^(08|57)|^(HYT00|HYT01|40001|40P01)$/i;
// 22 data exception, 23 constraint violation, 42 syntax or access: the same row fails the same way again.
const PERMANENT_STATES = /^(22|23|42)/;
// Conditions drivers report as a general error (HY000) or that node-odbc raises without a SQLSTATE.
const TRANSIENT_MESSAGES =
  /connection (has already been|is|was) closed|connection has been lost|lost connection|server has gone away|server closed the connection|communication link failure|connection reset|broken pipe|pool is closed|database (table )?is locked|lock wait timeout|deadlock/i;

/** `[ma-3.1.15][10.11.19-MariaDB]Data too long...` -> `Data too long...`; psqlODBC's `ERROR:` and trailer go too. */
export function humanDbMessage(raw: string): string {
  const firstLine = raw
    .replace(/^(\s*\[[^\]]*\])+\s*/, '')
    .replace(/^(ERROR|FATAL):\s+/, '')
    .split(/\r?\n/)
    .find((line) => line.trim() !== '');
  return (firstLine ?? raw).replace(/;\s*$/, '').replace(/\s+/g, ' ').trim();
}

export function classifyDbError(err: unknown): ClassifiedDbError {
  if (err instanceof DbError) return { transient: err.transient, sqlState: err.sqlState, message: err.reason };

  const diagnostics = odbcDiagnostics(err);
  // Warnings (class 01) often come first, e.g. a driver note before the real 08001.
  const primary = diagnostics.find((d) => d.state && !d.state.startsWith('01')) ?? diagnostics[0];
  const sqlState = primary?.state || undefined;
  const rawMessage = primary?.message ?? (err instanceof Error ? err.message : String(err));
  const message = humanDbMessage(rawMessage);

  const transient = sqlState !== undefined && PERMANENT_STATES.test(sqlState)
    ? false
    : (sqlState !== undefined && TRANSIENT_STATES.test(sqlState)) || TRANSIENT_MESSAGES.test(rawMessage);
  return { transient, sqlState, message };
}

/**
 * Two transactions wanted each other's locks, SQLite's database was busy, or two runtimes' MERGEs
 * both inserted a new record's state row (Db2 and SQL Server can, where no lock serialises them):
 * worth trying again at once, on the same connection. A lock wait timeout is not among them: it
 * already waited, and says a lock is held for long (the job pauses and retries later).
 */
export function isLockConflict(err: unknown): boolean {
  const { sqlState, message } = classifyDbError(err);
  return sqlState === '40001' || sqlState === '40P01' || sqlState === '23505'
    || /deadlock|database (table )?is locked|Violation of PRIMARY KEY constraint/i.test(message);
}

/** SQLSTATE classes that say the data or the statement is at fault, never the connection. */
export function isDataState(sqlState: string | undefined): boolean {
  return sqlState !== undefined && PERMANENT_STATES.test(sqlState);
}
