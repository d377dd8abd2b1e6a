// Writes mapped records into a table through ODBC: PostgreSQL, MariaDB/MySQL and SQLite are tested
// live; SQL Server and Db2 share the code path with MERGE SQL. Names from the contract are matched
// to the catalog without regard to case at open(), and all SQL is built there, once.
import {
  DIALECTS,
  DIALECT_NAMES,
  arrayLiteral,
  STATE_COLUMNS,
  columnKind,
  declaredSqlType,
  detectDialect,
  splitTableName,
  toSqlTimestampText,
  type ColumnInfo,
  type DialectName,
  type ArrayBatchSql,
  type RowBatchSql,
  type SqlDialect,
  type StateColumn,
  type StateTable,
} from '../sql/dialect';
import { DbError, classifyDbError, isLockConflict, toDbError } from '../sql/errors';
import {
  OdbcPool,
  connectOdbc,
  dollarQuoted,
  driverNameOf,
  type OdbcConnection,
  type OdbcRow,
  type OdbcSession,
  type SqlParameter,
} from '../sql/odbc-pool';
import {
  contentHash,
  decideConflict,
  fingerprintOf,
  type Stamp,
  type ConflictDecision,
  type ConflictPolicy,
  type IncomingRecord,
  type ParkedConflict,
  type RecordState,
  type SameValue,
  type SourceVersion,
} from '../conflict';
import type { ParkedRecord } from '../sync-job';
import { KnownRecords, UNSEEN, type KnownRecord, type StateCheck } from './known-records';
import { own } from '../own';
import { isCanonicalTimestamp } from '../time';
import type { ApplyResult, ConflictRule, MappedRecord, SyncConnector } from '../types';

export interface OdbcConnectorOptions {
  connectionString: string;
  /** The job whose records this connector writes: its rows in the state table are its own. */
  jobId: string;
  /**
   * Where EXS keeps what it last wrote per record (version, fingerprint, parked conflicts), in the
   * destination database so that every runtime of the job sees it. Created at open() if missing.
   */
  stateTable?: string;
  /** `TABLE` or `SCHEMA.TABLE` as the contract spells it. */
  table: string;
  keyColumn: string;
  /** Mapped target columns as the contract spells them; the key may be among them or not. */
  columns: string[];
  /** Skips detection; needed when the DBMS cannot be told from a probe query. */
  dialect?: DialectName;
  user?: string;
  password?: string;
  /** Upper bound on open connections; ODBC calls run on libuv's thread pool (4 threads by default). */
  poolSize?: number;
  connectTimeoutSeconds?: number;
  /** Each statement is cancelled after this long (default 30 s): a hung database pauses the job, it does not hang it. */
  queryTimeoutSeconds?: number;
  /** How long a write waits for a free pooled connection (default 30 s). */
  acquireTimeoutMs?: number;
  /**
   * PostgreSQL: how many records the connector remembers as it last wrote them, so that their
   * next event is written in one checked statement instead of a locked transaction (default 5,000;
   * 0 writes every record through the locked transaction).
   */
  knownRecords?: number;
}



export interface DbmsInfo {
  dialect?: DialectName;
  /** `PostgreSQL`, `MariaDB`, `MySQL`, `SQLite`, `Microsoft SQL Server`, `Db2`. */
  dbms: string;
  version: string;
}

interface PlannedColumn {
  /** Spelling of the contract, used for the keys of `before` and `after`. */
  contractName: string;
  info: ColumnInfo;
}

/** Everything open() learns from the catalog; apply() only binds and executes. */
interface WritePlan {
  dialect: SqlDialect;
  /** The table as the SQL names it: real spelling, schema-qualified when the contract was. */
  table: string;
  /** Key first: parameter 0 of the upsert is also the one parameter of the select. */
  columns: PlannedColumn[];
  state: StateTable;
  listParkedSql: string;
  /** How the law compares a stored and a written value of a column (by contract name), per column kind. */
  same: SameValue;
  /** The columns by contract name. */
  byName: Map<string, PlannedColumn>;
  /** Contract names in sorted order, as contentHash() orders a row's columns. */
  sortedNames: string[];
  /**
   * PostgreSQL: whether the destination's rows have versions (xmin, ctid) the one-statement path
   * can check; a view or a foreign table has none, and is always written by the locked path.
   */
  rowVersions: boolean;
  /**
   * PostgreSQL: set while the table is a plain table with no BEFORE row triggers or rules, so a
   * column holds exactly what EXS binds whenever storesAsWritten() says so. The one-statement path
   * then runs without a transaction; the SQL condition is that the table is still like that (the
   * statement checks it: a trigger created later turns this off). Unset: in a transaction always.
   */
  faithful?: string;
}

/** One record of a batch and the law it is written under. */
export interface BatchItem {
  record: MappedRecord;
  policy?: ConflictPolicy;
}

/** What became of one record of a batch. */
export type BatchOutcome = { result: ApplyResult; error?: undefined } | { error: Error; result?: undefined };

/** A record's outcome in a transaction with others; `refusedAlone` when its failure was its own, not the transaction's. */
type TogetherOutcome = BatchOutcome & { refusedAlone?: boolean };

/** A record of a batch, bound and ready for the law. */
interface PreparedRecord {
  index: number;
  key: SqlParameter;
  law: ConflictPolicy;
  incoming: IncomingRecord;
}

const DEFAULT_POOL_SIZE = 4;
const DEFAULT_STATE_TABLE = 'EXS_SYNC_STATE';
/** About 1 KB each: what a flood over many keys keeps of them. */
const DEFAULT_KNOWN_RECORDS = 5000;
/**
 * The largest batch written in one checked statement. It saves three round trips whatever the
 * batch's size, but costs PostgreSQL more per record than the locked transaction's statements
 * (bench/results/connector.md): worth it while round trips dominate, not for a flood's batches.
 */
const KNOWN_BATCH_MAX = 64;
const DEFAULT_QUERY_TIMEOUT_SECONDS = 30;
/** Most parameters in one statement (node-odbc 2.6 aborts beyond 32,767), and a state row's. */
const MAX_PARAMETERS = 30_000;
const STATE_PARAMETERS = 8;
/** Deadlocks and serialization failures are retried at once this many times before the job hears of them. */
const LOCK_RETRIES = 5;

export class OdbcConnector implements SyncConnector {
  readonly kind = 'odbc';
  private plan?: WritePlan;
  private steps?: TransactionSteps;
  private pool?: OdbcPool;
  /** PostgreSQL: the records this connector wrote last (see applyKnown). */
  private known?: KnownRecords;
  /**
   * Records written by the one-statement path (known; `alone` of them by a statement outside a
   * transaction) and by the locked transaction.
   */
  readonly stats = { known: 0, alone: 0, locked: 0 };

  constructor(private readonly options: OdbcConnectorOptions) {}

  /** PostgreSQL works on two batches at once; MariaDB's gap locks and SQLite's one writer would only make them wait. */
  get parallelBatches(): number {
    return this.plan?.dialect.name === 'postgresql' ? 2 : 1;
  }

  async open(): Promise<void> {
    if (this.pool) throw new Error(`${this.describe()} is already open`);
    const connection = await connectOdbc(this.options).catch((err) => {
      throw toDbError(err, `cannot connect for ${this.options.table}`);
    });
    try {
      const dialectName = this.options.dialect ?? (await this.detectDialectOf(connection));
      this.plan = await buildWritePlan(connection, DIALECTS[dialectName], this.options);
      this.steps = transactionSteps(this.plan, this.options.jobId);
      const remembered = this.options.knownRecords ?? DEFAULT_KNOWN_RECORDS;
      this.known = this.steps.writeKnown && this.plan.rowVersions && remembered > 0 ? new KnownRecords(remembered) : undefined;
    } finally {
      await connection.close().catch(() => undefined);
    }
    this.pool = new OdbcPool({
      ...this.options,
      queryTimeoutSeconds: this.options.queryTimeoutSeconds ?? DEFAULT_QUERY_TIMEOUT_SECONDS,
      maxSize: this.options.poolSize ?? DEFAULT_POOL_SIZE,
      sessionSetup: this.plan.dialect.sessionSetup,
      prepareOnOpen: this.steps.prepareOnOpen,
      pingSql: this.plan.dialect.name === 'db2' ? 'SELECT 1 FROM SYSIBM.SYSDUMMY1' : 'SELECT 1',
    });
    // The connections the first batches need, opened now rather than by the first events. One is
    // required (it also proves the write statements prepare); more are a head start only: a server
    // near its connection limit still gets writes, one batch at a time, as before.
    try {
      await this.pool.warm(1);
    } catch (err) {
      await this.close();
      throw toDbError(err, `cannot open a connection for ${this.options.table} and prepare its write statements`);
    }
    await this.pool.warm(this.parallelBatches).catch(() => undefined);
  }

  /**
   * Writes the record as the conflict law decides (nodes/core/conflict.ts), in one transaction at
   * the destination: the record's state row is locked first, so two runtimes applying events of
   * the same record queue up there; the destination row is read with a lock, so a clerk's edit
   * either lands before the decision (and is seen) or waits for the write. The decision, the row's
   * write and the new state commit together.
   */
  async apply(record: MappedRecord, policy?: ConflictPolicy): Promise<ApplyResult> {
    const [outcome] = await this.applyTogether([{ record, policy }]);
    if (outcome.error) throw outcome.error;
    return outcome.result;
  }

  /**
   * Writes many records (of different keys) in one transaction: the same law and locks as apply(),
   * with multi-row statements, so a backlog costs a few statements per batch instead of per event.
   * A record the batch cannot take (a value too long, say) is found by applying the records one
   * by one, so it never fails its neighbours. Results are in the order of `items`.
   */
  async applyBatch(items: BatchItem[]): Promise<BatchOutcome[]> {
    const plan = this.openPlan();
    const batch = plan.dialect.batch;
    // Records of different keys: where the dialect has no multi-row statements, in parallel.
    if (!batch) return Promise.all(items.map((item) => this.apply(item.record, item.policy).then((result) => ({ result }), (error: Error) => ({ error }))));
    // node-odbc 2.6 aborts the process (not an error) beyond ~32,767 parameters in one statement.
    const perStatement = batch.binding === 'arrays' ? items.length
      : Math.max(1, Math.floor(MAX_PARAMETERS / Math.max(plan.columns.length + 1, STATE_PARAMETERS)));
    if (items.length > perStatement) {
      const outcomes: BatchOutcome[] = [];
      for (let at = 0; at < items.length; at += perStatement) outcomes.push(...await this.applyBatch(items.slice(at, at + perStatement)));
      return outcomes;
    }
    const keyText = (record: MappedRecord) => String(record.keyValue).toLowerCase();
    if (new Set(items.map((item) => keyText(item.record))).size !== items.length) {
      throw new Error('applyBatch needs records of different keys: two events of one record are applied in turn');
    }
    let outcomes = await this.applyTogether(items);
    const refused = outcomes.find((o) => o.error && !o.refusedAlone);
    // A record the database refused: find it by writing them one by one, in arrival order.
    if (refused && !classifyDbError(refused.error).transient) outcomes = await this.oneByOne(items, outcomes);
    return outcomes.map(({ result, error }) => (error ? { error } : { result: result! }));
  }

  /** Record after record (those not already refused on their own); once the destination is down, the rest fail with that error untried. */
  private async oneByOne(items: BatchItem[], outcomes: TogetherOutcome[]): Promise<TogetherOutcome[]> {
    let down: Error | undefined;
    for (const [i, item] of items.entries()) {
      // Refused alone already, or written (by the one-statement path, before the rest failed).
      if (outcomes[i].refusedAlone || outcomes[i].result) continue;
      if (down) {
        outcomes[i] = { error: down };
        continue;
      }
      [outcomes[i]] = await this.applyTogether([item]);
      const { error } = outcomes[i];
      if (error && classifyDbError(error).transient) down = error;
    }
    return outcomes;
  }

  /**
   * The records in one transaction. A record that cannot even be bound (a value that is no
   * timestamp, say) is refused alone, before the transaction; a failed transaction fails all the
   * others with its error.
   */
  private async applyTogether(items: BatchItem[]): Promise<TogetherOutcome[]> {
    const plan = this.openPlan();
    const outcomes: TogetherOutcome[] = new Array(items.length);
    const prepared: PreparedRecord[] = [];
    items.forEach((item, index) => {
      try {
        prepared.push(prepareRecord(plan, item.record, item.policy, index));
      } catch (err) {
        const context = `${this.describe()}, key ${JSON.stringify(item.record.keyValue)}`;
        outcomes[index] = { error: new DbError({ transient: false, message: (err as Error).message }, context, err), refusedAlone: true };
      }
    });
    if (prepared.length === 0) return outcomes;
    // Every runtime locks a batch's rows in the same (key) order, so two batches cannot deadlock.
    prepared.sort(byKey);
    const contextOf = (records: PreparedRecord[]) => (records.length === 1 ? `${this.describe()}, key ${JSON.stringify(items[records[0].index].record.keyValue)}`
      : `${this.describe()}, ${records.length} records`);
    let unknown = prepared;
    // Small batches are what the one-statement path is for, and what it remembers records from; a
    // flood's records are forgotten instead (kept, they would live just long enough to cost the
    // garbage collector more than they save: batches that large take the locked path anyway).
    const small = prepared.length <= KNOWN_BATCH_MAX;
    if (this.known && !small) for (const p of prepared) this.known.forget(String(p.key));
    if (this.known && small) {
      try {
        unknown = await this.applyKnown(prepared, outcomes);
      } catch (err) {
        const error = err instanceof DbError ? err : toDbError(err, contextOf(prepared));
        for (const p of prepared) outcomes[p.index] = { error, refusedAlone: prepared.length === 1 };
        return outcomes;
      }
    }
    if (unknown.length === 0) return outcomes;
    const context = contextOf(unknown);
    try {
      const committed = await this.transact(context, unknown.map((p) => p.key),
        ({ state, current }, i) => decideConflict(unknown[i].law, state, current, unknown[i].incoming, plan.same));
      unknown.forEach((p, i) => {
        const { decision, current, after } = committed[i];
        outcomes[p.index] = { result: resultOf(decision, current, after) };
        if (small) this.rememberLocked(String(p.key), committed[i]);
      });
      this.stats.locked += unknown.length;
    } catch (err) {
      for (const p of unknown) outcomes[p.index] = { error: err as Error, refusedAlone: unknown.length === 1 };
    }
    return outcomes;
  }

  /**
   * PostgreSQL: the records whose state and row the connector knows (it wrote them last, or they
   * are presumed new) are decided from that knowledge and written in one statement that checks it:
   * one round trip and a commit instead of four. Sets their outcomes; returns the others, for the
   * locked path, in key order.
   */
  private async applyKnown(prepared: PreparedRecord[], outcomes: TogetherOutcome[]): Promise<PreparedRecord[]> {
    const plan = this.openPlan();
    const known = this.known!;
    const candidates: KnownDecision[] = [];
    const unknown: PreparedRecord[] = [];
    for (const p of prepared) {
      const record = known.lookUp(String(p.key));
      if (record?.saved) {
        record.state = this.savedState(record.saved);
        record.saved = undefined;
      }
      const decision = record && !record.state?.parked ? decideConflict(p.law, record.state, record.current, p.incoming, plan.same) : undefined;
      if (record && decision && this.writableKnown(decision)) candidates.push({ prepared: p, known: record, decision });
      else unknown.push(p);
    }
    if (candidates.length === 0) return unknown;
    const steps = this.openSteps();
    // In a transaction, though one statement often does it all: a state saved as if a column had
    // stored the value written (a rounding column, a trigger) is saved again from the row as stored
    // before anyone can read it. Outside one, a column that had always stored what was written and
    // then rounded would leave that state readable, or for good if the second save failed. So the
    // statement runs alone (one call and one round trip instead of three calls) only when every
    // value is one the table stores as written (oneStatementAlone()).
    // A check that raced or a value the table refuses sends the records to the locked path, which
    // decides again from what it reads and finds the refused record. A database that is gone is
    // reported at once: the locked path would only wait for it a second time.
    const alone = oneStatementAlone(plan, candidates);
    const committed = await this.pool!.withSession((session) => (alone
      ? steps.writeKnown!(session, candidates, true)
      : session.transaction(() => steps.writeKnown!(session, candidates))))
      .catch((err) => {
        if (classifyDbError(err).transient && !isLockConflict(err)) throw err;
        return new Array<CommittedRow | undefined>(candidates.length);
      });
    let missed = false;
    candidates.forEach(({ prepared: p, known: record, decision }, i) => {
      const key = String(p.key);
      const row = committed[i];
      // A miss (or a failed statement) is learnt from by the locked path, which reads what is there.
      if (record === UNSEEN && row) known.learnWhetherNew(true);
      if (!row) {
        known.forget(key);
        unknown.push(p);
        missed = true;
        return;
      }
      this.stats.known += 1;
      if (alone) this.stats.alone += 1;
      this.remember(key, row, record.state);
      const before = record.current && { ...record.current };
      outcomes[p.index] = { result: resultOf(decision, before, row.after === record.current ? before : row.after) };
    });
    // Misses rejoin in key order, the order every runtime locks in.
    return missed ? unknown.sort(byKey) : unknown;
  }

  /** Whether writeKnown can carry the decision: a new state to save, and nothing parked for a person. */
  private writableKnown(decision: ConflictDecision): boolean {
    return decision.state !== undefined && !decision.state.parked && decision.outcome !== 'parked';
  }

  /** What the locked path committed becomes what is known of the record. */
  private rememberLocked(key: string, committed: CommittedRecord): void {
    const known = this.known;
    if (!known) return;
    const { locked } = committed;
    if (locked.rowVersion === undefined) return;
    if (!known.isKnown(key)) known.learnWhetherNew(locked.state === null && locked.current === null);
    // A row the transaction did not write is as the lock read it.
    const rowVersion = committed.rowVersion !== undefined ? committed.rowVersion : locked.rowVersion;
    this.remember(key, { ...committed, rowVersion }, locked.state, locked.check ?? null);
  }

  /**
   * Remembers a record as committed: the state as saved (read back as the locked path would read
   * it) or, when none was saved, as it was; the row as it now is, copied, since results travel on
   * in messages that anyone may change.
   */
  private remember(key: string, row: CommittedRow, stateBefore: RecordState | null, checkBefore: StateCheck | null = null): void {
    const known = this.known!;
    if (row.rowVersion === undefined) return known.forget(key);
    if (row.saved) {
      // Read back when the record's next event comes, if it comes while the record is remembered.
      const [version, tiebreak, fingerprint] = row.saved;
      const check = checkOf({ version, tiebreak, fingerprint, written: null, parked: null });
      known.remember(key, { state: null, saved: row.saved, check, current: row.after && { ...row.after }, rowVersion: row.rowVersion });
      return;
    }
    if (!checkBefore && stateBefore) return known.forget(key); // a state whose stored check values are not known
    known.remember(key, { state: stateBefore, check: checkBefore, current: row.after && { ...row.after }, rowVersion: row.rowVersion });
  }

  /** A state as saved (stateParameters()), as the locked path would read it back. */
  private savedState([version, tiebreak, fingerprint, writtenText, parked]: SqlParameter[]): RecordState | null {
    return stateOf({ version, tiebreak, fingerprint, written: writtenText, parked }, this.plan!.columns[0].contractName);
  }

  /** The job's records whose conflict waits for a person (MANUAL). */
  async listConflicts(): Promise<ParkedRecord[]> {
    const plan = this.openPlan();
    const rows = await this.pool!.withSession((session) => session.run(plan.listParkedSql, [this.options.jobId]))
      .catch((err) => { throw toDbError(err, `${this.describe()}: cannot list parked conflicts`); });
    const c = plan.state.columns;
    return rows.map((r) => ({ key: String(r[c.record_key]), ...(parseJson(r[c.parked]) as ParkedConflict) }));
  }

  /**
   * Settles a parked conflict: `hms` writes the waiting HMS values, `destination` keeps the row's
   * and makes them the new baseline (a later HMS change is then written as usual).
   */
  async resolveParked(key: string, take: 'hms' | 'destination'): Promise<ApplyResult> {
    const plan = this.openPlan();
    this.known?.forget(key);
    const context = `${this.describe()}, key ${JSON.stringify(key)}`;
    const [{ decision, current, after }] = await this.transact(context, [key], ({ state, current }) => {
      const parked = state?.parked;
      if (!state || !parked) throw new DbError({ transient: false, message: `no parked conflict for key '${key}'` }, context);
      const columns: Record<string, unknown> = { [plan.columns[0].contractName]: key };
      const baseline: Record<string, unknown> = {};
      for (const [column, field] of Object.entries(parked.fields)) {
        if (take === 'hms') columns[column] = field.new;
        baseline[column] = take === 'hms' ? field.new : current?.[column] ?? null;
      }
      return {
        outcome: take === 'hms' ? 'write' : 'skipped',
        columns: take === 'hms' ? columns : {},
        reason: `MANUAL: resolved, ${take === 'hms' ? 'HMS' : 'destination'} taken for ${Object.keys(parked.fields).join(', ')}`,
        conflicts: Object.keys(parked.fields).map((column) => ({ column, rule: 'MANUAL' as ConflictRule, winner: take })),
        state: { ...state, written: { ...state.written, ...baseline }, parked: null },
      };
    });
    return { outcome: take === 'hms' ? 'applied' : 'unchanged', before: current, after: after ?? {}, reason: decision.reason, conflicts: decision.conflicts };
  }

  private openPlan(): WritePlan {
    // Transient: a write racing a close (a redeploy) must not burn the event into the dead letter.
    if (!this.plan || !this.pool) throw new DbError({ transient: true, message: `${this.describe()} is not open` });
    return this.plan;
  }

  private openSteps(): TransactionSteps {
    this.openPlan();
    return this.steps!;
  }

  /**
   * One transaction over records of different keys, given in key order: their state rows and
   * destination rows locked, `decide` asked for each one's decision, the decisions committed.
   * Deadlocks and serialization failures are retried here a few times, since they say nothing
   * about the destination's health.
   */
  private async transact(
    context: string,
    keys: SqlParameter[],
    decide: (locked: LockedRecord, index: number) => ConflictDecision,
  ): Promise<CommittedRecord[]> {
    const steps = this.openSteps();
    return this.withLockRetries(context, () => this.pool!.withSession((session) => session.transaction(async () => {
      const locked = await steps.lock(session, keys);
      const decided = locked.map((record, i) => ({ key: keys[i], current: record.current, decision: decide(record, i) }));
      const committed = await steps.commit(session, decided);
      return decided.map((record, i) => ({ ...record, ...committed[i], locked: locked[i] }));
    })));
  }

  /** Deadlocks and serialization failures say nothing about the destination: the transaction runs again. */
  private async withLockRetries<T>(context: string, transaction: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await transaction();
      } catch (err) {
        if (attempt < LOCK_RETRIES && isLockConflict(err)) {
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * attempt));
          continue;
        }
        throw err instanceof DbError ? err : toDbError(err, context);
      }
    }
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.close();
  }

  describe(): string {
    return this.plan ? `${this.plan.dialect.name} ${this.plan.table}` : `odbc ${this.options.table}`;
  }

  private async detectDialectOf(connection: OdbcConnection): Promise<DialectName> {
    const { dialect } = await probeDbms(connection, this.options.connectionString);
    if (!dialect) {
      throw new Error(`cannot tell which database ${this.options.table} is in: set the dialect (${DIALECT_NAMES.join(', ')})`);
    }
    return dialect;
  }
}

/** A column among the connector's by contract spelling, else without regard to case. */
function plannedColumn(plan: WritePlan, wanted: string, what: string): PlannedColumn {
  const column = plan.columns.find((c) => c.contractName === wanted)
    ?? plan.columns.find((c) => c.contractName.toLowerCase() === wanted.toLowerCase());
  if (!column) {
    throw new Error(`${what} names column '${wanted}', which this connector does not write`
      + ` (columns: ${plan.columns.map((c) => c.contractName).join(', ')})`);
  }
  if (column === plan.columns[0]) throw new Error(`${what} cannot name the key column '${wanted}'`);
  return column;
}

/**
 * The policy with its column names spelled as the connector's rows are keyed. A time column the
 * connector does not write only matters when a column follows LAST_WRITE_WINS.
 */
function lawFor(plan: WritePlan, policy: ConflictPolicy | undefined): ConflictPolicy {
  if (!policy) return { rule: 'HMS_WINS' };
  const law: ConflictPolicy = { rule: policy.rule };
  if (policy.fieldRules) {
    law.fieldRules = Object.fromEntries(Object.entries(policy.fieldRules)
      .map(([column, rule]) => [plannedColumn(plan, column, 'a field rule').contractName, rule]));
  }
  const lastWriteWins = law.rule === 'LAST_WRITE_WINS' || Object.values(law.fieldRules ?? {}).includes('LAST_WRITE_WINS');
  if (policy.timestampColumn && lastWriteWins) law.timestampColumn = plannedColumn(plan, policy.timestampColumn, 'LAST_WRITE_WINS').contractName;
  return law;
}

/** The decision's new state, with each written column as the destination stored it (`after`). */
function stateAsStored(decision: ConflictDecision, after: Record<string, unknown> | null): RecordState | undefined {
  if (!decision.state) return undefined;
  const written = { ...decision.state.written };
  if (after) for (const column of Object.keys(decision.columns)) written[column] = after[column] ?? null;
  return { ...decision.state, written };
}

function resultOf(decision: ConflictDecision, before: Record<string, unknown> | null, after: Record<string, unknown> | null): ApplyResult {
  return {
    outcome: decision.outcome === 'write' ? 'applied' : decision.outcome,
    before,
    after: after ?? {},
    reason: decision.reason,
    ...(decision.conflicts.length > 0 && { conflicts: decision.conflicts }),
  };
}

/** A record bound for the destination and put in the shape the law reads; throws what is wrong with it. */
function prepareRecord(plan: WritePlan, record: MappedRecord, policy: ConflictPolicy | undefined, index: number): PreparedRecord {
  const row = boundRow(plan, record);
  const keyColumn = plan.columns[0].contractName;
  return {
    index,
    key: row[keyColumn] as SqlParameter,
    law: lawFor(plan, policy),
    incoming: { row, keyColumn, version: record.version ?? null, tiebreak: contentHash(row, plan.sortedNames) },
  };
}

/** A state row's columns, by role, as any of the statements read them. */
type StateFields = Record<'version' | 'tiebreak' | 'fingerprint' | 'written' | 'parked', unknown>;

/** A claimed state row as the law reads it; null when EXS has not written the record yet. */
function stateOf(fields: StateFields, keyColumn: string): RecordState | null {
  if (!fields.fingerprint) return null; // claimed just now: nothing written yet
  const stored = parseJson(fields.written) as StoredWritten | LegacyStoredWritten;
  const version = fields.version === null || fields.version === undefined ? null : String(fields.version);
  const tiebreak = String(fields.tiebreak ?? '');
  const columns: Record<string, Stamp> = {};
  let written: Record<string, unknown>;
  if ('written' in stored) {
    written = stored.written;
    // A written column without a stamp of its own was decided by the record's newest event.
    for (const column of Object.keys(written)) if (column !== keyColumn) columns[column] = { version, tiebreak };
  } else {
    written = stored.values; // every column stamped, as the first version of the state row wrote it
  }
  for (const [column, [v, t]] of Object.entries(stored.stamps ?? {})) columns[column] = { version: v, tiebreak: t };
  return { version, tiebreak, written, columns, parked: (parseJson(fields.parked) as ParkedConflict | null) ?? null };
}

function stateFromRow(plan: WritePlan, row: OdbcRow): RecordState | null {
  const c = plan.state.columns;
  return stateOf({ version: row[c.version], tiebreak: row[c.tiebreak], fingerprint: row[c.fingerprint], written: row[c.written], parked: row[c.parked] },
    plan.columns[0].contractName);
}

// ----- the conflict transaction's statements, per dialect family -----

/** A record's state and destination row, locked for the transaction. */
interface LockedRecord {
  state: RecordState | null;
  current: Record<string, unknown> | null;
  /** PostgreSQL: the state row's check values and the row's version, as KnownRecords keeps them. */
  check?: StateCheck | null;
  rowVersion?: string | null;
}

/** What the law decided for a locked record. */
interface DecidedRecord {
  key: SqlParameter;
  decision: ConflictDecision;
  current: Record<string, unknown> | null;
}

/** A decided record as the transaction left it. */
interface CommittedRow {
  /** The row as it now is. */
  after: Record<string, unknown> | null;
  /** PostgreSQL: the row's version (see KnownRecord) as it now is. */
  rowVersion?: string | null;
  /** The state's parameters as saved (stateParameters()); absent when the state stayed as it was. */
  saved?: SqlParameter[];
}

interface CommittedRecord extends DecidedRecord, CommittedRow {
  locked: LockedRecord;
}

/** A record whose state and row the connector knows, decided from them, for writeKnown. */
interface KnownDecision {
  prepared: PreparedRecord;
  known: KnownRecord;
  decision: ConflictDecision;
}

/**
 * The statements of the conflict transaction for records of different keys, given in key order:
 * `lock` claims and locks their state rows, then their destination rows; `commit` writes what each
 * decision takes and stores each new state, and returns each row as it now is. The baseline of a
 * written column is what the table stored, read back in the same transaction: a column that
 * rounds or truncates (timestamp(0), DECIMAL(10,2)) must not look like a clerk's edit next time.
 */
interface TransactionSteps {
  lock(session: OdbcSession, keys: SqlParameter[]): Promise<LockedRecord[]>;
  commit(session: OdbcSession, records: DecidedRecord[]): Promise<CommittedRow[]>;
  /**
   * PostgreSQL: records decided from what the connector knows, written in one statement that
   * checks that knowledge (ArrayBatchSql.writeKnown). Answers, per record, its committed row, or
   * undefined when the check failed (the record then takes the locked path); throws (and the
   * caller rolls back) when the statement could not keep its records consistent. `alone`: the
   * caller runs it outside a transaction (see oneStatementAlone()).
   */
  writeKnown?(session: OdbcSession, records: KnownDecision[], alone?: boolean): Promise<Array<CommittedRow | undefined>>;
  /** Statements a connection PREPAREs when it opens (the ones a full record's write runs). */
  readonly prepareOnOpen?: readonly string[];
}

function transactionSteps(plan: WritePlan, jobId: string): TransactionSteps {
  const batch = plan.dialect.batch;
  if (!batch) return statementSteps(plan, jobId);
  return batch.binding === 'arrays' ? arraySteps(plan, batch, jobId) : rowSteps(plan, batch, jobId);
}

/** The decisions that write something, grouped by the columns they write (key first, plan order): one statement per group. */
function writeGroups(plan: WritePlan, records: DecidedRecord[]): Array<{ columns: PlannedColumn[]; at: number[] }> {
  const groups = new Map<string, { columns: PlannedColumn[]; at: number[] }>();
  records.forEach(({ decision }, i) => {
    const columns = plan.columns.filter((c) => own(decision.columns, c.contractName) !== undefined);
    if (columns.length === 0) return;
    const shape = columns.map((c) => c.contractName).join('\u0000');
    const group = groups.get(shape);
    if (group) group.at.push(i);
    else groups.set(shape, { columns, at: [i] });
  });
  return [...groups.values()];
}

/**
 * SQL per set of columns a write carries, built on first use: a field the event omits (or the law
 * keeps) leaves its column alone rather than writing NULL over it, and the common full record costs
 * one build per deploy.
 */
function cachedByShape(build: (columns: PlannedColumn[]) => string): (columns: PlannedColumn[]) => string {
  const built = new Map<string, string>();
  return (columns) => {
    const shape = columns.map((c) => c.contractName).join('\u0000');
    let sql = built.get(shape);
    if (sql === undefined) built.set(shape, (sql = build(columns)));
    return sql;
  };
}

const written = (decision: ConflictDecision) => Object.keys(decision.columns).length > 0;

/** The new state of each record that has one: its key and its state's parameters. */
function statesToSave(records: DecidedRecord[], after: Array<Record<string, unknown> | null>): Array<{ at: number; key: string; parameters: SqlParameter[] }> {
  const states: Array<{ at: number; key: string; parameters: SqlParameter[] }> = [];
  const savedAt = new Date().toISOString();
  records.forEach(({ key, decision }, i) => {
    const state = stateAsStored(decision, after[i]);
    if (state) states.push({ at: i, key: String(key), parameters: stateParameters(state, savedAt) });
  });
  return states;
}

/** SQL Server and Db2 (MERGE): statement by statement, record by record. */
function statementSteps(plan: WritePlan, jobId: string): TransactionSteps {
  const { dialect } = plan;
  const lockRowSql = dialect.selectByKeyForUpdate(plan.table, plan.columns[0].info.name, plan.columns.map((c) => c.info.name));
  const claimStateSql = dialect.claimState(plan.state);
  const updateStateSql = dialect.updateState(plan.state);
  const upsertSql = cachedByShape((columns) => dialect.upsert(plan.table, columns[0].info.name, columns.map((c) => c.info)));
  const readRow = async (session: OdbcSession, key: SqlParameter) => {
    const [row] = await session.run(lockRowSql, [key]);
    return row ? fromDatabaseRow(plan, row) : null;
  };
  return {
    async lock(session, keys) {
      const locked: LockedRecord[] = [];
      for (const key of keys) {
        let rows: OdbcRow[] = [];
        for (const sql of claimStateSql) rows = await session.run(sql, [jobId, String(key)]);
        if (!rows[0]) throw new Error(`the state row for key '${String(key)}' could not be claimed in ${plan.state.table}`);
        locked.push({ state: stateFromRow(plan, rows[0]), current: await readRow(session, key) });
      }
      return locked;
    },
    async commit(session, records) {
      const after: CommittedRow[] = [];
      for (const { key, decision, current } of records) {
        let row = current;
        if (written(decision)) {
          const columns = plan.columns.filter((c) => own(decision.columns, c.contractName) !== undefined);
          await session.run(upsertSql(columns), columns.map((c) => own(decision.columns, c.contractName) as SqlParameter));
          row = await readRow(session, key);
        }
        after.push({ after: row });
        const state = stateAsStored(decision, row);
        if (state) await session.run(updateStateSql, [...stateParameters(state, new Date().toISOString()), jobId, String(key)]);
      }
      return after;
    },
  };
}

/** MariaDB/MySQL and SQLite: multi-row statements, one row of parameters per record. */
function rowSteps(plan: WritePlan, batch: RowBatchSql, jobId: string): TransactionSteps {
  const columnNames = plan.columns.map((c) => c.info.name);
  const keyColumn = plan.columns[0].info;
  /** Destination rows by the position of the key they matched, as the database compared them. */
  const rowsOf = async (session: OdbcSession, keys: SqlParameter[]) => {
    const rows = await session.run(batch.lockRows(plan.table, keyColumn, columnNames, keys.length), keys);
    return new Map(rows.map((row) => [Number(row.exs_ord ?? row.EXS_ORD) - 1, fromDatabaseRow(plan, row)]));
  };
  return {
    async lock(session, keys) {
      // The state table keys records by their text; its own column is text, so the rows come back
      // in the spelling bound (a case-insensitive collation may return another case).
      const stateKeys = keys.map((key) => String(key));
      const claim = batch.claimStates(plan.state, keys.length);
      let claimed = await session.run(claim.insert, stateKeys.flatMap((key) => [jobId, key]));
      if (claim.select) claimed = await session.run(claim.select, [jobId, ...stateKeys]);
      const states = new Map(claimed.map((row) => [String(row[plan.state.columns.record_key]).toLowerCase(), row]));
      const current = await rowsOf(session, keys);
      return stateKeys.map((key, i) => {
        const stateRow = states.get(key.toLowerCase());
        if (!stateRow) throw new Error(`the state row for key '${key}' could not be claimed in ${plan.state.table}`);
        return { state: stateFromRow(plan, stateRow), current: current.get(i) ?? null };
      });
    },
    async commit(session, records) {
      for (const { columns, at } of writeGroups(plan, records)) {
        const sql = batch.upsertRows(plan.table, keyColumn.name, columns.map((c) => c.info), at.length);
        await session.run(sql, at.flatMap((i) => columns.map((c) => own(records[i].decision.columns, c.contractName) as SqlParameter)));
      }
      const writtenAt = records.flatMap((r, i) => (written(r.decision) ? [i] : []));
      const stored = writtenAt.length > 0 ? await rowsOf(session, writtenAt.map((i) => records[i].key)) : new Map();
      const after = records.map((r) => r.current);
      writtenAt.forEach((at, j) => { after[at] = stored.get(j) ?? null; });
      const states = statesToSave(records, after);
      if (states.length > 0) {
        await session.run(batch.saveStates(plan.state, states.length), states.flatMap((s) => [jobId, s.key, ...s.parameters]));
      }
      return after.map((row) => ({ after: row }));
    },
  };
}

/** PostgreSQL: three statements whatever the number of records, values bound as arrays, answers as JSON. */
function arraySteps(plan: WritePlan, batch: ArrayBatchSql, jobId: string): TransactionSteps {
  const infos = plan.columns.map((c) => c.info);
  const keyColumn = plan.columns[0].contractName;
  const lockSql = batch.lock(plan.state, plan.table, infos[0], infos, plan.rowVersions);
  const saveSql = batch.saveStates(plan.state);
  const writeKnownSql = cachedByShape((columns) => batch.writeKnown(plan.state, plan.table, columns.map((c) => c.info), infos));
  // Guarded by the table's condition as read at open: the statement holds no record once it fails.
  const faithful = plan.faithful;
  const writeAloneSql = cachedByShape((columns) => batch.writeKnown(plan.state, plan.table, columns.map((c) => c.info), infos, faithful));
  const upsertSql = cachedByShape((columns) => batch.upsertRows(plan.table, columns.map((c) => c.info), infos, plan.rowVersions));
  /** A row as a statement answered it: the plan's columns, in chunks of 90 values. */
  const rowFrom = (chunks: unknown[][]) => {
    const values = chunks.length === 1 ? chunks[0] : chunks.flat();
    const row: Record<string, unknown> = {};
    for (let i = 0; i < plan.columns.length; i++) row[plan.columns[i].contractName] = fromJsonValue(plan.columns[i].info, values[i] ?? null);
    return row;
  };
  const saveStates = async (session: OdbcSession, states: Array<{ key: string; parameters: SqlParameter[] }>) => {
    // `written` and `parked` are JSON texts (stateParameters()) and travel as JSON values, verbatim.
    const text = (value: SqlParameter) => JSON.stringify(value);
    const rows = states.map(({ key, parameters: [v, t, f, w, p, u] }) =>
      `{"k":${text(key)},"v":${text(v)},"t":${text(t)},"f":${text(f)},"w":${w},"p":${p ?? 'null'},"u":${text(u)}}`);
    await session.runPrepared(saveSql, [jobId, `[${rows.join(',')}]`]);
  };
  return {
    prepareOnOpen: [lockSql, upsertSql(plan.columns), saveSql, ...(plan.rowVersions ? [writeKnownSql(plan.columns)] : []),
      ...(plan.rowVersions && faithful ? [writeAloneSql(plan.columns)] : [])],
    async lock(session, keys) {
      const entries = jsonRows(await session.runPrepared(lockSql, [arrayLiteral(keys.map(String)), jobId]));
      const locked: LockedRecord[] = new Array(keys.length);
      for (const [ord, version, tiebreak, fingerprint, writtenText, parked, found, values, rowVersion] of entries) {
        const fields = { version, tiebreak, fingerprint, written: writtenText, parked };
        locked[Number(ord) - 1] = {
          state: stateOf(fields, keyColumn),
          current: found ? rowFrom(values as unknown[][]) : null,
          check: checkOf(fields),
          rowVersion: found ? (rowVersion as string) : null,
        };
      }
      const missing = keys.filter((_, i) => !locked[i]);
      if (missing.length > 0) {
        // Inserted by another runtime after this statement's snapshot: a serialization conflict, retried.
        throw new DbError({ transient: true, sqlState: '40001', message: `state rows for ${missing.map((key) => `'${String(key)}'`).join(', ')} appeared meanwhile in ${plan.state.table}` });
      }
      return locked;
    },
    async commit(session, records) {
      const after = records.map((r) => r.current);
      const versions: Array<string | null | undefined> = new Array(records.length);
      for (const { columns, at } of writeGroups(plan, records)) {
        const rows = at.map((i) => {
          const row: Record<string, unknown> = {};
          for (const c of columns) row[c.info.name] = own(records[i].decision.columns, c.contractName);
          return row;
        });
        const stored = jsonRows(await session.runPrepared(upsertSql(columns), [JSON.stringify(rows)]));
        // A key-only write of an existing row changes nothing and returns nothing: the row stays as
        // read. Any other write returns its row; one that does not (a trigger that changed the key)
        // is read as gone, as a read-back would find it.
        if (columns.length > 1) for (const i of at) [after[i], versions[i]] = [null, null];
        for (const [ord, values, rowVersion] of stored) {
          after[at[Number(ord) - 1]] = rowFrom(values as unknown[][]);
          versions[at[Number(ord) - 1]] = rowVersion as string;
        }
      }
      const states = statesToSave(records, after);
      if (states.length > 0) await saveStates(session, states);
      const committed: CommittedRow[] = after.map((row, i) => ({ after: row, ...(versions[i] !== undefined && { rowVersion: versions[i] }) }));
      for (const state of states) committed[state.at].saved = state.parameters;
      return committed;
    },
    async writeKnown(session, given, alone = false) {
      // Written and saved as the table will store them: numbers for text columns as their text.
      const records = given.map((record) => ({ ...record, decision: withStoredText(plan, record.decision) }));
      const savedAt = new Date().toISOString();
      const assumed = records.map(({ decision }) => stateParameters(decision.state!, savedAt));
      // One statement per set of columns written, as the locked path's upserts; records that write
      // no row (only their state) go with the first.
      const groups = writeGroups(plan, records.map(({ prepared, decision }) => ({ key: prepared.key, decision, current: null })));
      if (groups.length === 0) groups.push({ columns: plan.columns, at: [] });
      records.forEach(({ decision }, i) => { if (!written(decision)) groups[0].at.push(i); });
      const passed: Array<[number, unknown[][] | null, string | null]> = [];
      for (const { columns, at } of groups) {
        const input = at.map((i, ordinal) => {
          const { prepared, known, decision } = records[i];
          let row: Record<string, unknown> | null = null;
          if (written(decision)) {
            row = {};
            for (const c of columns) row[c.info.name] = own(decision.columns, c.contractName);
          }
          const [version, tiebreak, fingerprint, writtenText, , updatedAt] = assumed[i];
          return {
            o: ordinal + 1,
            k: String(prepared.key),
            sf: known.check?.fingerprint ?? null,
            sv: known.check?.version ?? null,
            st: known.check?.tiebreak ?? null,
            rv: known.rowVersion,
            w: row ? 1 : 0,
            r: row,
            nv: version,
            nt: tiebreak,
            nf: fingerprint,
            nw: writtenText,
            nu: updatedAt,
          };
        });
        const [answer] = await session.runPrepared((alone ? writeAloneSql : writeKnownSql)(columns), [JSON.stringify(input), jobId]);
        // A record whose new state row another runtime inserted meanwhile failed the statement (22P02).
        const [, ok, rows, held] = JSON.parse(String(answer.exs_rows)) as [true, number[] | null, Array<[number, unknown[][], string]> | null, boolean?];
        // The table is no longer as it was at open (a trigger, a rule, a column's type): no record
        // passed, and from now on the statement runs in a transaction, which saves states as stored.
        if (alone && held === false) plan.faithful = undefined;
        // A written row that does not come back (a trigger changed its key) is read as gone, as in the locked path.
        const stored = new Map((rows ?? []).map(([ord, values, rowVersion]) => [Number(ord), { values, rowVersion }]));
        for (const ord of ok ?? []) {
          const row = stored.get(Number(ord));
          passed.push([at[Number(ord) - 1] + 1, row?.values ?? null, row?.rowVersion ?? null]);
        }
      }
      const committed: Array<CommittedRow | undefined> = new Array(records.length);
      // The state was saved as if each written column stored the value written; where the table
      // stored another (a rounding column, a trigger), it is saved again from the row as stored.
      const corrections: Array<{ key: string; parameters: SqlParameter[] }> = [];
      for (const [ord, values, rowVersion] of passed) {
        const at = Number(ord) - 1;
        const { prepared, known, decision } = records[at];
        if (!written(decision)) {
          committed[at] = { after: known.current, rowVersion: known.rowVersion, saved: assumed[at] };
          continue;
        }
        const after = values ? rowFrom(values) : null;
        const row: CommittedRow = { after, rowVersion: after ? rowVersion : null, saved: assumed[at] };
        if (!after || Object.keys(decision.columns).some((column) => after[column] !== decision.columns[column])) {
          const parameters = stateParameters(stateAsStored(decision, after)!, savedAt);
          if (parameters[2] !== row.saved![2]) corrections.push({ key: String(prepared.key), parameters: (row.saved = parameters) });
        }
        committed[at] = row;
      }
      if (corrections.length > 0) {
        // Alone, this is a second statement: storesAsWritten() let a value through that the table
        // changed. It is not trusted again.
        if (alone) plan.faithful = undefined;
        await saveStates(session, corrections);
      }
      return committed;
    },
  };
}

/**
 * Whether writeKnown's statement can run outside a transaction: the table stores what EXS binds
 * (WritePlan.faithful), every value written is one it stores as written, and all records write the
 * same columns, so one statement carries them all and each record's row and state commit together.
 */
function oneStatementAlone(plan: WritePlan, records: KnownDecision[]): boolean {
  if (plan.faithful === undefined) return false;
  for (const { decision } of records) {
    for (const c of plan.columns) {
      const value = own(decision.columns, c.contractName);
      if (value !== undefined && !storesAsWritten(c.info, storedText(c.info, value))) return false;
    }
  }
  // Grouped as the writeKnown step groups them: one group is one statement.
  return writeGroups(plan, records.map(({ prepared, decision }) => ({ key: prepared.key, decision, current: null }))).length <= 1;
}

/** Key order, as every runtime locks a batch's rows. */
function byKey(a: PreparedRecord, b: PreparedRecord): number {
  const x = String(a.key);
  const y = String(b.key);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** A state row's check values as the lock statement read them; null for a row claimed just now. */
function checkOf(fields: StateFields): StateCheck | null {
  if (!fields.fingerprint) return null;
  return { fingerprint: String(fields.fingerprint), version: fields.version === null || fields.version === undefined ? null : String(fields.version), tiebreak: String(fields.tiebreak ?? '') };
}

/** The one JSON cell (`exs_rows`) an array statement answers with; null when it touched no row. */
function jsonRows(rows: OdbcRow[]): unknown[][] {
  const cell = rows[0]?.exs_rows;
  return cell === null || cell === undefined ? [] : JSON.parse(String(cell)) as unknown[][];
}

/**
 * A value as a PostgreSQL statement answered it in JSON (see readAs in dialect.ts), typed as the
 * other dialects' rows are: a BIGINT beyond 2^53 stays text, timestamps canonical.
 */
function fromJsonValue(column: ColumnInfo, value: unknown): unknown {
  if (value === null) return null;
  if (column.kind === 'timestamp') return (column.pg?.name === 'timestamp' && typeof value === 'string' && canonicalOfPgJson(value)) || canonicalTimestamp(value);
  if (column.pg?.name === 'int8' && typeof value === 'string') {
    const number = Number(value);
    return Number.isSafeInteger(number) ? number : value;
  }
  return value;
}

/**
 * The state table's `written` text: the values EXS last wrote, and the stamp (version, tiebreak)
 * of each column decided by another event than the record's newest. Named `written` rather than
 * `values` so that a runtime of an earlier version, which expects every column stamped, fails on
 * these rows instead of misreading them.
 */
interface StoredWritten {
  written: Record<string, unknown>;
  stamps?: Record<string, [SourceVersion, string]>;
}

/** The first form: `values`, and a stamp for every column. Still read. */
interface LegacyStoredWritten {
  values: Record<string, unknown>;
  stamps?: Record<string, [SourceVersion, string]>;
}

/**
 * version, tiebreak, fingerprint, written, parked, updated_at: the state's columns as bound. A
 * written column decided by the record's newest event (the usual case: every column of a full
 * event) stores no stamp of its own; stateOf() gives it the record's.
 */
function stateParameters(state: RecordState, savedAt: string): SqlParameter[] {
  const stamps: Record<string, [SourceVersion, string]> = {};
  for (const [column, stamp] of Object.entries(state.columns ?? {})) {
    const recordStamp = stamp.version === state.version && stamp.tiebreak === state.tiebreak;
    if (!recordStamp || !Object.hasOwn(state.written, column)) stamps[column] = [stamp.version, stamp.tiebreak];
  }
  const written: StoredWritten = Object.keys(stamps).length > 0 ? { written: state.written, stamps } : { written: state.written };
  const text = JSON.stringify(written);
  return [state.version, state.tiebreak, fingerprintOf(text), text, state.parked ? JSON.stringify(state.parked) : null, savedAt];
}

function parseJson(value: unknown): unknown {
  if (value === null || value === undefined || value === '') return null;
  return JSON.parse(String(value));
}


/**
 * The record's values as bound (contract names, plan order, key first) for the columns it carries;
 * unknown columns are refused.
 */
function boundRow(plan: WritePlan, record: MappedRecord): Record<string, SqlParameter> {
  const [key, ...others] = plan.columns;
  if (record.keyColumn.toLowerCase() !== key.contractName.toLowerCase()) {
    throw new Error(`record is keyed by '${record.keyColumn}', the connector by '${key.contractName}'`);
  }
  if (record.keyValue === null || record.keyValue === undefined) throw new Error('record has no key value');
  for (const name in record.row) {
    if (Object.hasOwn(record.row, name) && !plan.byName.has(name)) {
      const unknown = Object.keys(record.row).filter((column) => !plan.byName.has(column));
      throw new Error(`record has columns the connector was not opened with: ${unknown.join(', ')}`);
    }
  }
  const row: Record<string, SqlParameter> = { [key.contractName]: toParameter(key, record.keyValue) };
  // A missing value is not written as NULL: that would erase data the event never mentioned.
  for (const column of others) {
    const value = own(record.row, column.contractName);
    if (value !== undefined) row[column.contractName] = toParameter(column, value);
  }
  return row;
}

function toParameter(column: PlannedColumn, value: unknown): SqlParameter {
  if (value === null) return null;
  if (column.info.kind === 'timestamp') {
    try {
      return toSqlTimestampText(value);
    } catch (err) {
      throw new Error(`column '${column.contractName}': ${(err as Error).message}`);
    }
  }
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
      if (Number.isFinite(value)) return value;
      break;
    case 'boolean':
      return value ? 1 : 0;
    case 'bigint':
      return value.toString();
  }
  const shown = typeof value === 'object' ? JSON.stringify(value) : String(value);
  throw new Error(`column '${column.contractName}' cannot store ${shown}`);
}

function fromDatabaseRow(plan: WritePlan, row: OdbcRow): Record<string, unknown> {
  return Object.fromEntries(plan.columns.map((c) => {
    const raw = row[c.info.name] ?? null;
    // BIGINT columns come back as BigInt, which JSON (the change log, the state) cannot hold.
    const value = typeof raw === 'bigint' ? (Number.isSafeInteger(Number(raw)) ? Number(raw) : raw.toString()) : raw;
    return [c.contractName, c.info.kind === 'timestamp' && value !== null ? canonicalTimestamp(value) : value];
  }));
}

/**
 * A `timestamp` (without time zone) as PostgreSQL's JSON renders it, `2026-03-01T10:00:00.5`, as
 * canonical text, by moving characters: PostgreSQL wrote a valid time. Undefined for any other
 * form (a year beyond 9999 or BC, infinity), which canonicalTimestamp() reads.
 */
function canonicalOfPgJson(text: string): string | undefined {
  const length = text.length;
  if (length < 19 || length > 26 || text.charCodeAt(10) !== 84 || text.charCodeAt(4) !== 45 || text.charCodeAt(16) !== 58) return undefined;
  if (length === 19) return `${text.slice(0, 10)} ${text.slice(11)}.000000`;
  if (text.charCodeAt(19) !== 46 || length === 20) return undefined;
  for (let i = 20; i < length; i++) {
    const code = text.charCodeAt(i);
    if (code < 48 || code > 57) return undefined;
  }
  return `${text.slice(0, 10)} ${text.slice(11)}${'000000'.slice(length - 20)}`;
}

/** Drivers render timestamps differently (PostgreSQL trims trailing zeros); compare them canonically. */
function canonicalTimestamp(value: unknown): unknown {
  try {
    return toSqlTimestampText(value);
  } catch {
    return value; // SQLite stores whatever text was written before EXS; keep it as it is
  }
}

/** The law's SameValue over the plan's columns, looked up by contract name once, not per comparison. */
function sameValueIn(columns: PlannedColumn[]): SameValue {
  const kinds = new Map(columns.map((c) => [c.contractName, c.info]));
  return (column, stored, written) => {
    const info = kinds.get(column);
    if (!info) throw new Error(`no column '${column}' among the connector's`);
    return sameValue(info, stored, written);
  };
}

function sameValue(column: ColumnInfo, stored: unknown, written: unknown): boolean {
  if (stored === null || written === null) return stored === written;
  switch (column.kind) {
    case 'number': {
      // DECIMAL reads back as text: '5.50' is 5.5. What is no number (a bit as 'true') compares as text.
      const a = Number(stored);
      const b = Number(written);
      return Number.isNaN(a) || Number.isNaN(b) ? String(stored) === String(written) : a === b;
    }
    case 'fixed-text':
      return String(stored).trimEnd() === String(written).trimEnd(); // CHAR(n) pads with spaces
    default:
      return String(stored) === String(written);
  }
}

// ----- open(): dialect probe and catalog -----

interface Probe {
  sql: string;
  dialects: DialectName[];
  identify(banner: string): DbmsInfo | undefined;
}

const firstVersion = (banner: string) => /\d+\.\d+(\.\d+)*/.exec(banner)?.[0] ?? banner;

const PROBES: Probe[] = [
  {
    sql: 'SELECT version()',
    dialects: ['postgresql', 'mysql'],
    identify: (banner) => {
      if (/PostgreSQL/i.test(banner)) return { dialect: 'postgresql', dbms: 'PostgreSQL', version: firstVersion(banner) };
      if (/^\d+\.\d+/.test(banner)) {
        return { dialect: 'mysql', dbms: /mariadb/i.test(banner) ? 'MariaDB' : 'MySQL', version: firstVersion(banner) };
      }
      return undefined;
    },
  },
  {
    sql: 'SELECT @@VERSION',
    dialects: ['sqlserver'],
    identify: (banner) =>
      /Microsoft SQL Server/i.test(banner) ? { dialect: 'sqlserver', dbms: 'Microsoft SQL Server', version: firstVersion(banner) } : undefined,
  },
  {
    sql: 'SELECT sqlite_version()',
    dialects: ['sqlite'],
    identify: (banner) => ({ dialect: 'sqlite', dbms: 'SQLite', version: banner }),
  },
  {
    sql: 'SELECT service_level FROM sysibmadm.env_inst_info',
    dialects: ['db2'],
    identify: (banner) => ({ dialect: 'db2', dbms: 'Db2', version: firstVersion(banner) }),
  },
];

/**
 * Asks the DBMS who it is. The probe for the dialect the DRIVER attribute suggests goes first,
 * so a known driver costs one query; the others fail harmlessly on the wrong DBMS.
 */
async function probeDbms(connection: OdbcConnection, connectionString: string): Promise<Partial<DbmsInfo>> {
  const driver = driverNameOf(connectionString);
  const hinted = driver ? detectDialect(driver) : undefined;
  const hintedFirst = (probe: Probe) => (hinted && probe.dialects.includes(hinted) ? 0 : 1);
  const ordered = [...PROBES].sort((a, b) => hintedFirst(a) - hintedFirst(b));
  for (const probe of ordered) {
    const banner = await queryScalar(connection, probe.sql).catch(() => undefined);
    const info = banner === undefined ? undefined : probe.identify(banner);
    if (info) return info;
  }
  return { dbms: driver };
}

async function queryScalar(connection: OdbcConnection, sql: string): Promise<string | undefined> {
  const [row] = await connection.query(sql);
  const value = row ? Object.values(row)[0] : undefined;
  return value === null || value === undefined ? undefined : String(value);
}

/** For the editor's "Test connection" button: connects, asks the DBMS who it is, disconnects. */
export async function testOdbcConnection(
  connectionString: string,
  credentials: { user?: string; password?: string; connectTimeoutSeconds?: number } = {},
): Promise<DbmsInfo> {
  const connection = await connectOdbc({ connectionString, ...credentials }).catch((err) => {
    throw toDbError(err, 'cannot connect');
  });
  try {
    const info = await probeDbms(connection, connectionString);
    return { dialect: info.dialect, dbms: info.dbms ?? 'unknown DBMS', version: info.version ?? '' };
  } finally {
    await connection.close().catch(() => undefined);
  }
}

interface CatalogTable {
  TABLE_CAT: string | null;
  TABLE_SCHEM: string | null;
  TABLE_NAME: string;
}

interface CatalogColumn {
  TABLE_NAME: string;
  COLUMN_NAME: string;
  DATA_TYPE: number;
  TYPE_NAME: string;
  COLUMN_SIZE: number | null;
  DECIMAL_DIGITS: number | null;
}

async function buildWritePlan(connection: OdbcConnection, dialect: SqlDialect, options: OdbcConnectorOptions): Promise<WritePlan> {
  const table = await resolveTable(connection, dialect, options.table);
  const wanted = [options.keyColumn, ...options.columns.filter((c) => c.toLowerCase() !== options.keyColumn.toLowerCase())];
  const columns = await withPgTypes(connection, dialect, table.sqlName, await resolveColumns(connection, table, wanted));
  const state = await stateTableFor(connection, dialect, options.stateTable ?? DEFAULT_STATE_TABLE);
  return {
    dialect,
    table: table.sqlName,
    columns,
    state,
    listParkedSql: dialect.listParked(state),
    same: sameValueIn(columns),
    byName: new Map(columns.map((c) => [c.contractName, c])),
    sortedNames: columns.map((c) => c.contractName).sort(),
    rowVersions: dialect.name === 'postgresql' && await hasRowVersions(connection, dialect, table.sqlName),
    faithful: dialect.name === 'postgresql' ? await faithfulTableCondition(connection, dialect, table.sqlName) : undefined,
  };
}

/**
 * PostgreSQL: the SQL condition that the table stores what EXS binds (see WritePlan.faithful) and
 * that its columns have the types they had at open, or undefined when it does not hold now: a
 * partitioned table or a partition, a BEFORE row trigger, a rule, a database not in UTF8, a
 * nondeterministic collation. The column types are compared by number (attnum, type oid, modifier,
 * collation oid): no name of a column EXS does not write reaches the statement's text.
 */
async function faithfulTableCondition(connection: OdbcConnection, dialect: SqlDialect, table: string): Promise<string | undefined> {
  const oid = `CAST(${dollarQuoted(dialect.quoteTable(table))} AS regclass)`;
  // A partition is left out: before PostgreSQL 13 the triggers it inherits from its parent are marked
  // internal. Outside UTF8 (SQL_ASCII) varchar(n) counts bytes, which storesAsWritten() does not.
  // Only a BEFORE row trigger on INSERT or UPDATE (tgtype bits 1, 2 and 4 or 16), enabled or not,
  // can change the row EXS writes before it is stored; an AFTER trigger that writes the row again
  // does so after the statement's answer, in a transaction as well as without one, and the row's
  // new version sends the record's next event through the locked transaction.
  const plain = `c.relkind = 'r' AND NOT c.relispartition AND current_setting('server_encoding') = 'UTF8'`
    + ' AND NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid AND NOT g.tgisinternal AND g.tgtype & 3 = 3 AND g.tgtype & 20 <> 0)'
    + ' AND NOT EXISTS (SELECT 1 FROM pg_rewrite w WHERE w.ev_class = c.oid)';
  // A nondeterministic collation (PostgreSQL 12+, read through JSON so that 11 parses it) lets ON
  // CONFLICT match a key spelt otherwise, which the row then keeps. Checked here only: a
  // collation's determinism never changes, and the statement's guard compares each column's
  // collation as well as its type. (In the guard this check cost 3.5 ms of PostgreSQL's time per
  // statement: its plan read every row of pg_collation.)
  const deterministic = " AND NOT EXISTS (SELECT 1 FROM pg_attribute a JOIN pg_collation l ON l.oid = a.attcollation WHERE a.attrelid = c.oid AND a.attnum > 0"
    + " AND to_jsonb(l) ->> 'collisdeterministic' = 'false')";
  const types = `(SELECT string_agg(a.attnum || ':' || a.atttypid || ':' || a.atttypmod || ':' || a.attcollation, ',' ORDER BY a.attnum) FROM pg_attribute a`
    + ' WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)';
  const [row] = await connection.query(`SELECT CASE WHEN ${plain}${deterministic} THEN 1 ELSE 0 END AS plain, ${types} AS types FROM pg_class c WHERE c.oid = ${oid}`) as unknown as Array<Record<string, unknown>>;
  if (!row || Number(row.plain) !== 1 || typeof row.types !== 'string') return undefined;
  return `(SELECT ${plain} AND ${types} = ${dollarQuoted(row.types)} FROM pg_class c WHERE c.oid = ${oid})`;
}

/**
 * A number for a PostgreSQL text column as the column stores it: its text, which JavaScript spells
 * as JSON does (the statements send rows as JSON). Other values as they are.
 */
function storedText(column: ColumnInfo, value: unknown): unknown {
  const pg = column.pg;
  return typeof value === 'number' && Number.isFinite(value) && pg?.builtin && (pg.name === 'varchar' || pg.name === 'text') ? String(value) : value;
}

/**
 * The decision with its numbers for text columns as their text (storedText()), in the columns it
 * writes and in the new state's written values: the state then holds what the row will, and needs
 * no second save. The event's own row, its tiebreak and the law's reading of it stay as they were.
 */
function withStoredText(plan: WritePlan, decision: ConflictDecision): ConflictDecision {
  let columns = decision.columns;
  let written = decision.state?.written;
  for (const c of plan.columns) {
    const value = columns[c.contractName];
    const text = storedText(c.info, value);
    if (text === value) continue;
    if (columns === decision.columns) columns = { ...columns };
    columns[c.contractName] = text;
    if (written && written[c.contractName] === value) {
      if (written === decision.state!.written) written = { ...written };
      written[c.contractName] = text;
    }
  }
  return columns === decision.columns ? decision : { ...decision, columns, state: decision.state && { ...decision.state, written: written! } };
}

/**
 * Whether PostgreSQL stores this value in the column as written, so that reading it back gives
 * the very value (fromJsonValue): text; a varchar(n) value of at most n characters (a longer one
 * is cut silently when the rest is spaces); a whole number in an integer column; a canonical
 * timestamp (microseconds) in a timestamp of six digits. Anything else may be rounded, padded or
 * respelt (numeric, char(n), floats, timestamptz...), and is written in a transaction that saves
 * its state as stored.
 */
function storesAsWritten(column: ColumnInfo, value: unknown): boolean {
  if (value === null) return true;
  const pg = column.pg;
  // By name only among PostgreSQL's own types: a domain or type called `text` in another schema is not text.
  if (!pg?.builtin) return false;
  switch (pg.name) {
    case 'text':
      return typeof value === 'string';
    case 'varchar':
      // atttypmod is n + 4; -1 for varchar without a length. JavaScript counts UTF-16 units, never
      // fewer than characters (the table's condition asks for a UTF8 database, where n counts characters).
      return typeof value === 'string' && (pg.typmod < 0 || value.length <= pg.typmod - 4);
    case 'int2':
    case 'int4':
    case 'int8':
      return typeof value === 'number' && Number.isSafeInteger(value);
    case 'timestamp':
      return (pg.typmod < 0 || pg.typmod === 6) && typeof value === 'string' && isCanonicalTimestamp(value);
    default:
      return false;
  }
}

/** PostgreSQL: whether the relation stores its rows itself (a table or a partitioned table, not a view). */
async function hasRowVersions(connection: OdbcConnection, dialect: SqlDialect, table: string): Promise<boolean> {
  const [row] = await connection.query('SELECT relkind FROM pg_class WHERE oid = CAST(? AS regclass)', [dialect.quoteTable(table)]) as unknown as Array<Record<string, string>>;
  return row?.relkind === 'r' || row?.relkind === 'p';
}

/** PostgreSQL: each column's type as pg_type knows it, which the batch statements name and read it by. */
async function withPgTypes(connection: OdbcConnection, dialect: SqlDialect, table: string, columns: PlannedColumn[]): Promise<PlannedColumn[]> {
  if (dialect.name !== 'postgresql') return columns;
  const rows = await connection.query(
    'SELECT a.attname AS name, format_type(a.atttypid, NULL) AS base, t.typname AS type_name, t.typcategory AS category, a.atttypmod AS typmod,'
    + " CASE WHEN t.typnamespace = CAST('pg_catalog' AS regnamespace) THEN 1 ELSE 0 END AS builtin"
    + ' FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid WHERE a.attrelid = CAST(? AS regclass) AND a.attnum > 0 AND NOT a.attisdropped',
    [dialect.quoteTable(table)],
  ) as unknown as Array<Record<string, string>>;
  const byName = new Map(rows.map((row) => [row.name, row]));
  return columns.map((column) => {
    const row = byName.get(column.info.name);
    if (!row) throw new Error(`column '${column.info.name}' of ${table} is not in pg_attribute`);
    // format_type() names char(n) `character`, which as a cast means char(1): a key cast to it would be cut to one character.
    const base = row.type_name === 'bpchar' ? 'bpchar' : row.base;
    const pg = { base, name: row.type_name, category: row.category, typmod: Number(row.typmod), builtin: Number(row.builtin) === 1 };
    return { ...column, info: { ...column.info, pg } };
  });
}

/**
 * The state table, created when it is not there yet. A DBA may create it beforehand (the DDL is
 * in the error when EXS may not), in any letter case.
 */
async function stateTableFor(connection: OdbcConnection, dialect: SqlDialect, name: string): Promise<StateTable> {
  let table = await findTable(connection, dialect, name);
  if (!table) {
    const ddl = dialect.createStateTable(name);
    try {
      await connection.query(ddl);
    } catch (err) {
      // Two runtimes opening at once: the other one may have just created it.
      table = await findTable(connection, dialect, name);
      if (!table) throw new Error(`cannot create the EXS state table ${name}: ${classifyDbError(err).message}. Create it with: ${ddl}`);
    }
    table ??= await findTable(connection, dialect, name);
    if (!table) throw new Error(`the EXS state table ${name} was created but the catalog does not list it`);
  }
  const columns = await resolveColumns(connection, table, [...STATE_COLUMNS]);
  return {
    table: table.sqlName,
    columns: Object.fromEntries(columns.map((c) => [c.contractName, c.info.name])) as Record<StateColumn, string>,
  };
}

interface ResolvedTable {
  row: CatalogTable;
  sqlName: string;
}

// ODBC catalog calls (SQLTables, SQLColumns) work on every driver here, SQLite included, which has
// no information_schema. MariaDB's driver rejects a schema argument: it calls databases catalogs.
async function resolveTable(connection: OdbcConnection, dialect: SqlDialect, table: string): Promise<ResolvedTable> {
  const { found, scope, rows } = await lookUpTable(connection, dialect, table);
  if (found) return found;
  throw new Error(`table '${table}' not found in ${scope ?? 'the database'} (tables: ${listNames(rows.map((r) => r.TABLE_NAME))})`);
}

/** The table as the catalog spells it, or undefined when it is not there. */
async function findTable(connection: OdbcConnection, dialect: SqlDialect, table: string): Promise<ResolvedTable | undefined> {
  return (await lookUpTable(connection, dialect, table)).found;
}

async function lookUpTable(
  connection: OdbcConnection,
  dialect: SqlDialect,
  table: string,
): Promise<{ found?: ResolvedTable; scope?: string; rows: CatalogTable[] }> {
  const parts = splitTableName(table);
  const [schemaPart, namePart] = parts.length === 2 ? parts : [undefined, parts[0]];
  const scope = schemaPart ?? (dialect.currentSchemaQuery ? await queryScalar(connection, dialect.currentSchemaQuery) : undefined);
  if (dialect.schemaIsCatalog && scope === undefined) {
    throw new Error(`no database selected for ${table}: name it in the connection string or as DATABASE.TABLE`);
  }

  const scopeOf = (row: CatalogTable) => (dialect.schemaIsCatalog ? row.TABLE_CAT : row.TABLE_SCHEM);
  const listed = (dialect.schemaIsCatalog
    ? await connection.tables(scope ?? null, null, null, null)
    : await connection.tables(null, scope ?? null, null, null)) as unknown as CatalogTable[];
  // Catalog arguments are LIKE patterns on some drivers (`_` matches any character): filter exactly.
  const rows = listed.filter((row) => scope === undefined || scopeOf(row)?.toLowerCase() === scope.toLowerCase());

  const name = matchName(rows.map((row) => row.TABLE_NAME), namePart, 'table');
  if (name === undefined) return { scope, rows };
  const row = rows.find((r) => r.TABLE_NAME === name)!;
  return { found: { row, sqlName: schemaPart ? `${scopeOf(row)}.${name}` : name }, scope, rows };
}

async function resolveColumns(connection: OdbcConnection, table: ResolvedTable, wanted: string[]): Promise<PlannedColumn[]> {
  const { TABLE_CAT, TABLE_SCHEM, TABLE_NAME } = table.row;
  const listed = (await connection.columns(TABLE_CAT, TABLE_SCHEM, TABLE_NAME, null)) as unknown as CatalogColumn[];
  const catalog = listed.filter((c) => c.TABLE_NAME === TABLE_NAME);
  const names = catalog.map((c) => c.COLUMN_NAME);

  const resolved = wanted.map((contractName) => ({ contractName, name: matchName(names, contractName, 'column') }));
  const missing = resolved.filter((c) => c.name === undefined).map((c) => `'${c.contractName}'`);
  if (missing.length > 0) {
    const noun = missing.length === 1 ? 'column' : 'columns';
    throw new Error(`${noun} ${missing.join(', ')} not found in ${table.sqlName} (columns: ${listNames(names)})`);
  }
  return resolved.map(({ contractName, name }) => {
    const c = catalog.find((column) => column.COLUMN_NAME === name)!;
    return {
      contractName,
      info: { name: c.COLUMN_NAME, kind: columnKind(c.DATA_TYPE, c.TYPE_NAME), sqlType: declaredSqlType(c.TYPE_NAME, c.COLUMN_SIZE, c.DECIMAL_DIGITS) },
    };
  });
}

/** The exact spelling if present, else the one name equal without regard to case. */
function matchName(names: string[], wanted: string, what: string): string | undefined {
  if (names.includes(wanted)) return wanted;
  const matches = names.filter((name) => name.toLowerCase() === wanted.toLowerCase());
  if (matches.length > 1) throw new Error(`${what} '${wanted}' is ambiguous: ${matches.join(', ')} differ only in case`);
  return matches[0];
}

function listNames(names: string[], limit = 30): string {
  if (names.length === 0) return 'none';
  const sorted = [...names].sort();
  const shown = sorted.slice(0, limit).join(', ');
  return sorted.length > limit ? `${shown}, ... ${sorted.length - limit} more` : shown;
}
