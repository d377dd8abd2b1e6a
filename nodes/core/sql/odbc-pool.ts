// The narrow, typed surface of the `odbc` package that EXS uses, and a bounded pool that replaces
// `odbc.pool`. Measured on odbc 2.6:
// - `odbc.pool` leaks its "being created" count when a connect fails; the next `connect()` that finds
//   no free connection then waits forever (a database restart wedges every sync).
// - it hands connections back without a health check, so a dropped one keeps failing with 08S01.
// - a prepared statement keeps each parameter's NULL indicator: bind null once, and every later
//   number or boolean bound at that position is written as NULL. Values are bound as text here.
import { createHash } from 'node:crypto';
import { DbError, classifyDbError, isDataState, isLockConflict } from './errors';

/** What EXS binds; numbers reach the driver as text (see above). */
export type SqlParameter = string | number | null;

export type OdbcRow = Record<string, unknown>;

interface OdbcResult extends Array<OdbcRow> {
  count: number;
}

export interface OdbcConnection {
  query(sql: string, parameters?: Array<string | null>, options?: { timeout?: number }): Promise<OdbcResult>;
  tables(catalog: string | null, schema: string | null, table: string | null, type: string | null): Promise<OdbcResult>;
  columns(catalog: string | null, schema: string | null, table: string | null, column: string | null): Promise<OdbcResult>;
  beginTransaction(): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
  close(): Promise<void>;
}

interface OdbcModule {
  connect(options: { connectionString: string; loginTimeout?: number }): Promise<OdbcConnection>;
}

// Typed here, not by the package's own declarations: those forbid null parameters and execute options.
const odbc = require('odbc') as OdbcModule;

export interface ConnectOptions {
  connectionString: string;
  user?: string;
  password?: string;
  connectTimeoutSeconds?: number;
}

export function connectOdbc(options: ConnectOptions): Promise<OdbcConnection> {
  return odbc.connect({
    connectionString: withCredentials(options.connectionString, options.user, options.password),
    loginTimeout: options.connectTimeoutSeconds,
  });
}

/**
 * A pooled connection. Every statement goes through connection.query(): node-odbc 2.6 leaks
 * native memory on each execute() of a prepared statement (measured with psqlODBC: ~0.8 KB per
 * row-returning execute, ~0.25 KB per upsert, so 1.6 GB over a million-event drain), while
 * query() frees what it allocates. Preparing once is ~20% faster per statement (FIELD-NOTES);
 * memory that stays flat under any backlog matters more. Batched writes recover the speed.
 */
/** `$exs$text$exs$`, with a tag the text does not contain. */
export function dollarQuoted(text: string): string {
  let tag = 'exs';
  for (let n = 0; text.includes(`$${tag}$`); n++) tag = `exs${n}`;
  return `$${tag}$${text}$${tag}$`;
}

/** Names of statements by their text: a hash per write was a percent of the runtime's CPU. */
const preparedNames = new Map<string, string>();
const PREPARED_NAMES_MAX = 1000;

/** `exs_` and 20 hex digits of the statement's SHA-1: the same text gets the same name in every connection and runtime. */
function preparedName(sql: string): string {
  let name = preparedNames.get(sql);
  if (name === undefined) {
    name = `exs_${createHash('sha1').update(sql).digest('hex').slice(0, 20)}`;
    if (preparedNames.size >= PREPARED_NAMES_MAX) preparedNames.clear();
    preparedNames.set(sql, name);
  }
  return name;
}

export class OdbcSession {
  /**
   * Set when the connection can no longer be trusted (a commit or rollback failed, its prepared
   * statements and session setup were discarded): it is closed, never reused.
   */
  broken = false;

  constructor(readonly connection: OdbcConnection, private readonly queryTimeoutSeconds?: number) {}

  /** Statements this connection has PREPAREd in SQL (PostgreSQL), by name: they live as long as it does. */
  private readonly prepared = new Set<string>();

  run(sql: string, parameters: SqlParameter[]): Promise<OdbcResult> {
    const bound = parameters.map((value) => (value === null ? null : String(value)));
    return this.queryTimeoutSeconds ? this.connection.query(sql, bound, { timeout: this.queryTimeoutSeconds }) : this.connection.query(sql, bound);
  }

  /**
   * PostgreSQL: runs `sql` (with `?` placeholders, all bound as text) as a statement this connection
   * PREPAREd once, so the server plans a large statement once per connection instead of per call.
   * SQL-level PREPARE/EXECUTE, not node-odbc's prepared statements, which leak native memory on
   * every execute. A connection that lost it (DISCARD ALL behind a pooler) answers 26000: the
   * connection is closed, since DISCARD ALL also reset its session setup (time zone, plan
   * settings), and the caller's transaction retried (a serialization conflict) on another
   * connection, a new one if none is idle.
   */
  async runPrepared(sql: string, parameters: SqlParameter[]): Promise<OdbcResult> {
    // Large values (a batch's rows and states) are bound instead: psqlODBC reads a statement's text
    // character by character, about 40 ns a byte of this process's CPU, while it copies a bound
    // value at about 3 ns. A bound statement costs more round trips and is planned per call, which
    // a batch this large amortizes; small ones (a record or a few) stay prepared, with literals.
    let size = 0;
    for (const value of parameters) size += value === null ? 4 : String(value).length;
    if (size > INLINE_VALUES_MAX) return this.run(sql, parameters);
    const name = await this.prepare(sql);
    try {
      // PostgreSQL takes no parameters in EXECUTE: the values go in as dollar-quoted literals, each
      // with a tag its text does not contain, so no value can end its quote (whatever the server's
      // string settings); NULL as the keyword.
      const literals = parameters.map((value) => (value === null ? 'NULL' : dollarQuoted(String(value))));
      return await this.run(literals.length > 0 ? `EXECUTE ${name} (${literals.join(', ')})` : `EXECUTE ${name}`, []);
    } catch (err) {
      if (classifyDbError(err).sqlState !== '26000') throw err;
      this.prepared.delete(name);
      this.broken = true;
      throw new DbError({ transient: true, sqlState: '40001', message: `prepared statement ${name} is gone from the connection; retrying` }, undefined, err);
    }
  }

  /**
   * PREPAREs `sql` on this connection unless it already has (PostgreSQL; `?` placeholders, all
   * text), and answers the statement's name. Done when a connection opens for the statements every
   * write uses, so the first events after a deploy do not pay for it.
   */
  async prepare(sql: string): Promise<string> {
    const name = preparedName(sql);
    if (!this.prepared.has(name)) {
      let n = 0;
      const numbered = sql.replace(/\?/g, () => `$${++n}`);
      const types = n > 0 ? ` (${Array.from({ length: n }, () => 'text').join(', ')})` : '';
      await this.run(`PREPARE ${name}${types} AS ${numbered}`, []);
      this.prepared.add(name);
    }
    return name;
  }

  /**
   * Runs `work` in one transaction: committed when it resolves, rolled back when it throws. A
   * connection whose commit or rollback failed is in an unknown state (half a transaction may
   * still be open on it), so it is marked broken and the pool closes it.
   */
  async transaction<T>(work: () => Promise<T>): Promise<T> {
    await this.connection.beginTransaction();
    let result: T;
    try {
      result = await work();
    } catch (err) {
      await this.connection.rollback().catch(() => {
        this.broken = true;
      });
      throw err;
    }
    try {
      await this.connection.commit();
    } catch (err) {
      this.broken = true;
      await this.connection.rollback().catch(() => undefined);
      throw err;
    }
    return result;
  }

  async dispose(): Promise<void> {
    await this.connection.close().catch(() => undefined); // errors are moot on a dead connection
  }
}

export interface PoolOptions extends ConnectOptions {
  maxSize: number;
  /** Each statement is cancelled by the driver after this long (SQL_ATTR_QUERY_TIMEOUT). */
  queryTimeoutSeconds?: number;
  /** How long a caller waits for a free connection before failing (transient: it is retried). */
  acquireTimeoutMs?: number;
  /** Statements run once on every new connection, e.g. the dialect's session time zone. */
  sessionSetup?: readonly string[];
  /** Statements every new connection PREPAREs (see OdbcSession.prepare): the ones each write runs. */
  prepareOnOpen?: readonly string[];
  /** A statement that only a live connection answers (`SELECT 1`), to tell a dead connection from a bad statement. */
  pingSql?: string;
  /**
   * A connection that sat idle at least this long answers pingSql before it is handed out (default
   * 60 s): a server's idle timeout or a firewall may have dropped it meanwhile (the connections
   * opened at deploy may wait hours for a nightly job's first event), and a dead one would fail the
   * write and pause the job. A connection that does not answer is replaced.
   */
  idleCheckMs?: number;
}

/** Characters of values runPrepared puts into the statement's text; above, they are bound (see there). */
const INLINE_VALUES_MAX = 32_768;

const DEFAULT_ACQUIRE_TIMEOUT_MS = 30_000;
const DEFAULT_IDLE_CHECK_MS = 60_000;

export class OdbcPool {
  private readonly idle: OdbcSession[] = [];
  /** When each idle connection came back to the pool. */
  private readonly idleSince = new Map<OdbcSession, number>();
  private readonly waiting: Array<() => void> = [];
  private size = 0;
  private closed = false;

  constructor(private readonly options: PoolOptions) {}

  /**
   * Runs `work` on one connection. A connection whose work failed with a transient error (lost,
   * timed out) is closed instead of going back to the pool, so the next caller gets a fresh one.
   */
  async withSession<T>(work: (session: OdbcSession) => Promise<T>): Promise<T> {
    const session = await this.acquire();
    try {
      const result = await work(session);
      this.release(session, true);
      return result;
    } catch (err) {
      // A lost connection (SQLSTATE 08), a timeout or a failed commit: closed, not handed out again.
      // A deadlock says nothing against the connection: it stays.
      const failure = await this.diagnose(session, err);
      this.release(session, !classifyDbError(failure).transient || isLockConflict(failure));
      throw failure;
    }
  }

  /**
   * Drivers report some failures on a dropped connection as a general error: psqlODBC inside a
   * transaction says "Error getting information about parameters" (no SQLSTATE) or "internal
   * SAVEPOINT failed" (HY000). Unless the SQLSTATE blames the data or the statement, a ping on the
   * same connection tells a dead connection (transient: pause and retry) from a bad event; a
   * connection whose commit or rollback failed counts as dead.
   */
  private async diagnose(session: OdbcSession, err: unknown): Promise<unknown> {
    const classified = classifyDbError(err);
    if (classified.transient || isDataState(classified.sqlState)) return err;
    const lost = () => new DbError({ transient: true, message: `connection lost (${classified.message})`, sqlState: classified.sqlState }, undefined, err);
    if (session.broken) return lost();
    if (!this.options.pingSql) return err;
    try {
      await session.connection.query(this.options.pingSql);
      return err;
    } catch {
      return lost();
    }
  }

  /** Closes idle connections now; connections in use close when their work ends. */
  async close(): Promise<void> {
    this.closed = true;
    this.waiting.splice(0).forEach((wake) => wake());
    this.idleSince.clear();
    await Promise.all(this.idle.splice(0).map((session) => session.dispose()));
  }

  private async acquire(): Promise<OdbcSession> {
    const timeoutMs = this.options.acquireTimeoutMs ?? DEFAULT_ACQUIRE_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.closed) throw new Error('connection pool is closed');
      const session = this.idle.pop();
      if (session) {
        if (await this.answersAfterIdling(session)) return session;
        continue;
      }
      if (this.size < this.options.maxSize) return this.openSession();
      const left = deadline - Date.now();
      if (left <= 0 || !(await this.waitForRelease(left))) {
        throw new DbError({ transient: true, message: `no free database connection within ${timeoutMs / 1000} s (pool size ${this.options.maxSize})` });
      }
    }
  }

  /** False (and the connection closed) when one that idled long no longer answers. */
  private async answersAfterIdling(session: OdbcSession): Promise<boolean> {
    const since = this.idleSince.get(session);
    this.idleSince.delete(session);
    const checkAfter = this.options.idleCheckMs ?? DEFAULT_IDLE_CHECK_MS;
    if (!this.options.pingSql || since === undefined || Date.now() - since < checkAfter) return true;
    try {
      await session.connection.query(this.options.pingSql);
      return true;
    } catch {
      this.size--;
      void session.dispose();
      return false;
    }
  }

  /** Resolves true when a connection comes free (or the pool closes), false after `ms`. */
  private waitForRelease(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const at = this.waiting.indexOf(wake);
        if (at >= 0) this.waiting.splice(at, 1);
        resolve(false);
      }, ms);
      this.waiting.push(wake);
    });
  }

  /**
   * Opens connections until `count` are open, so the first writes after a deploy find them ready
   * (connected, set up, statements prepared) instead of paying for that while events wait.
   */
  async warm(count: number): Promise<void> {
    const opening: Array<Promise<OdbcSession>> = [];
    while (this.size < Math.min(count, this.options.maxSize)) opening.push(this.openSession());
    const sessions = await Promise.allSettled(opening);
    for (const result of sessions) if (result.status === 'fulfilled') this.release(result.value, true);
    const failed = sessions.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Connections open now, and how many of them are idle (for tests and status). */
  stats(): { size: number; idle: number; waiting: number } {
    return { size: this.size, idle: this.idle.length, waiting: this.waiting.length };
  }

  private async openSession(): Promise<OdbcSession> {
    this.size++;
    try {
      const session = new OdbcSession(await connectOdbc(this.options), this.options.queryTimeoutSeconds);
      try {
        for (const statement of this.options.sessionSetup ?? []) await session.connection.query(statement);
        for (const statement of this.options.prepareOnOpen ?? []) await session.prepare(statement);
      } catch (err) {
        await session.dispose();
        throw err;
      }
      return session;
    } catch (err) {
      this.size--;
      this.waiting.shift()?.();
      throw err;
    }
  }

  private release(session: OdbcSession, healthy: boolean): void {
    if (healthy && !session.broken && !this.closed) {
      this.idle.push(session);
      this.idleSince.set(session, Date.now());
    } else {
      this.size--;
      void session.dispose();
    }
    this.waiting.shift()?.();
  }
}

/** The DRIVER attribute of a connection string (`PostgreSQL Unicode`), if it names one. */
export function driverNameOf(connectionString: string): string | undefined {
  const match = /(?:^|;)\s*DRIVER\s*=\s*(\{[^}]*\}|[^;]*)/i.exec(connectionString);
  return match?.[1].replace(/^\{|\}$/g, '').trim() || undefined;
}

const CONNECTION_VALUE = String.raw`(\{(?:[^}]|\}\})*\}|[^;]*)`;

function withoutAttributes(connectionString: string, names: string[]): string {
  const attribute = new RegExp(String.raw`(^|;)\s*(?:${names.join('|')})\s*=\s*${CONNECTION_VALUE}`, 'gi');
  return connectionString.replace(attribute, '').replace(/^\s*;/, '');
}

/** Braces let a value hold `;` (`PWD={a;b}`); a `}` inside is doubled. */
function connectionValue(value: string): string {
  return /[;{}]|^\s|\s$/.test(value) ? `{${value.replace(/\}/g, '}}')}}` : value;
}

function withAttribute(connectionString: string, name: string, value: string): string {
  const base = connectionString.trim().replace(/;+$/, '');
  return `${base}${base ? ';' : ''}${name}=${connectionValue(value)}`;
}

/** Sets UID/PWD from separately stored credentials, replacing any in the string. */
export function withCredentials(connectionString: string, user?: string, password?: string): string {
  let result = connectionString;
  if (user) result = withAttribute(withoutAttributes(result, ['UID', 'USER', 'USERNAME']), 'UID', user);
  if (password) result = withAttribute(withoutAttributes(result, ['PWD', 'PASSWORD']), 'PWD', password);
  return result;
}
