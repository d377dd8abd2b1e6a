// Writes mapped records into a table through ODBC: PostgreSQL, MariaDB/MySQL and SQLite are tested
// live; SQL Server and Db2 share the code path with MERGE SQL. Names from the contract are matched
// to the catalog without regard to case at open(), and all SQL is built there, once.
import {
  DIALECTS,
  DIALECT_NAMES,
  STATE_COLUMNS,
  columnKind,
  declaredSqlType,
  detectDialect,
  splitTableName,
  toSqlTimestampText,
  type ColumnInfo,
  type DialectName,
  type BatchSql,
  type SqlDialect,
  type StateColumn,
  type StateTable,
} from '../sql/dialect';
import { DbError, classifyDbError, isLockConflict, toDbError } from '../sql/errors';
import {
  OdbcPool,
  connectOdbc,
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
  type ConflictDecision,
  type ConflictPolicy,
  type IncomingRecord,
  type ParkedConflict,
  type RecordState,
  type SameValue,
  type SourceVersion,
} from '../conflict';
import type { ParkedRecord } from '../sync-job';
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
  /** The mapped columns of the record's row, locked until the transaction ends. */
  lockRowSql: string;
  state: StateTable;
  claimStateSql: string[];
  updateStateSql: string;
  listParkedSql: string;
  /**
   * Upsert text per set of columns a write carries: a field the event omits (or the conflict law
   * keeps) leaves its column alone rather than writing NULL over it. Built on first use, so the
   * common full record costs one build per deploy.
   */
  upserts: Map<string, string>;
  /** How the law compares a stored and a written value of a column (by contract name), per column kind. */
  same: SameValue;
}

/** One record of a batch and the law it is written under. */
export interface BatchItem {
  record: MappedRecord;
  policy?: ConflictPolicy;
}

/** What became of one record of a batch. */
export type BatchOutcome = { result: ApplyResult; error?: undefined } | { error: Error; result?: undefined };

/** A record of a batch, bound and ready for the law. */
interface PreparedRecord {
  index: number;
  key: SqlParameter;
  law: ConflictPolicy;
  incoming: IncomingRecord;
}

const DEFAULT_POOL_SIZE = 4;
const DEFAULT_STATE_TABLE = 'EXS_SYNC_STATE';
const DEFAULT_QUERY_TIMEOUT_SECONDS = 30;
/** Most parameters in one statement (node-odbc 2.6 aborts beyond 32,767), and a state row's. */
const MAX_PARAMETERS = 30_000;
const STATE_PARAMETERS = 8;
/** Deadlocks and serialization failures are retried at once this many times before the job hears of them. */
const LOCK_RETRIES = 5;

export class OdbcConnector implements SyncConnector {
  readonly kind = 'odbc';
  private plan?: WritePlan;
  private pool?: OdbcPool;

  constructor(private readonly options: OdbcConnectorOptions) {}

  async open(): Promise<void> {
    if (this.pool) throw new Error(`${this.describe()} is already open`);
    const connection = await connectOdbc(this.options).catch((err) => {
      throw toDbError(err, `cannot connect for ${this.options.table}`);
    });
    try {
      const dialectName = this.options.dialect ?? (await this.detectDialectOf(connection));
      this.plan = await buildWritePlan(connection, DIALECTS[dialectName], this.options);
    } finally {
      await connection.close().catch(() => undefined);
    }
    this.pool = new OdbcPool({
      ...this.options,
      queryTimeoutSeconds: this.options.queryTimeoutSeconds ?? DEFAULT_QUERY_TIMEOUT_SECONDS,
      maxSize: this.options.poolSize ?? DEFAULT_POOL_SIZE,
      sessionSetup: this.plan.dialect.sessionSetup,
      pingSql: this.plan.dialect.name === 'db2' ? 'SELECT 1 FROM SYSIBM.SYSDUMMY1' : 'SELECT 1',
    });
  }

  /**
   * Writes the record as the conflict law decides (nodes/core/conflict.ts), in one transaction at
   * the destination: the record's state row is locked first, so two runtimes applying events of
   * the same record queue up there; the destination row is read with a lock, so a clerk's edit
   * either lands before the decision (and is seen) or waits for the write. The decision, the row's
   * write and the new state commit together.
   */
  async apply(record: MappedRecord, policy?: ConflictPolicy): Promise<ApplyResult> {
    const plan = this.openPlan();
    const context = `${this.describe()}, key ${JSON.stringify(record.keyValue)}`;
    let prepared: PreparedRecord;
    try {
      prepared = prepareRecord(plan, record, policy, 0);
    } catch (err) {
      throw new DbError({ transient: false, message: (err as Error).message }, context, err);
    }
    return this.inTransaction(context, prepared.key, async (session, state, current) => {
      const decision = decideConflict(prepared.law, state, current, prepared.incoming, plan.same);
      const after = await commitDecision(plan, session, this.options.jobId, prepared.key, decision, current);
      return resultOf(decision, current, after);
    });
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
    if (items.length < 2) return this.oneByOne(items);
    // node-odbc 2.6 aborts the process (not an error) beyond ~32,767 parameters in one statement.
    const perStatement = Math.max(1, Math.floor(MAX_PARAMETERS / Math.max(plan.columns.length + 1, STATE_PARAMETERS)));
    if (items.length > perStatement) {
      const outcomes: BatchOutcome[] = [];
      for (let at = 0; at < items.length; at += perStatement) outcomes.push(...await this.applyBatch(items.slice(at, at + perStatement)));
      return outcomes;
    }
    const keyText = (record: MappedRecord) => String(record.keyValue).toLowerCase();
    if (new Set(items.map((item) => keyText(item.record))).size !== items.length) {
      throw new Error('applyBatch needs records of different keys: two events of one record are applied in turn');
    }

    const outcomes: BatchOutcome[] = new Array(items.length);
    const prepared: PreparedRecord[] = [];
    items.forEach((item, index) => {
      try {
        prepared.push(prepareRecord(plan, item.record, item.policy, index));
      } catch (err) {
        outcomes[index] = { error: new DbError({ transient: false, message: (err as Error).message }, `${this.describe()}, key ${JSON.stringify(item.record.keyValue)}`, err) };
      }
    });
    // Every runtime locks a batch's rows in the same (key) order, so two batches cannot deadlock.
    prepared.sort((a, b) => (String(a.key) < String(b.key) ? -1 : String(a.key) > String(b.key) ? 1 : 0));
    if (prepared.length === 0) return outcomes;

    try {
      const results = await this.withLockRetries(`${this.describe()}, ${prepared.length} records`, () =>
        this.pool!.withSession((session) => session.transaction(() => applyPrepared(plan, batch, session, this.options.jobId, prepared))));
      prepared.forEach((p, i) => { outcomes[p.index] = { result: results[i] }; });
    } catch (err) {
      if (classifyDbError(err).transient) {
        for (const p of prepared) outcomes[p.index] = { error: err instanceof DbError ? err : toDbError(err, this.describe()) };
        return outcomes;
      }
      // A record the database refused: find it by writing them one by one, in arrival order.
      const inOrder = [...prepared].sort((a, b) => a.index - b.index);
      const single = await this.oneByOne(inOrder.map((p) => items[p.index]));
      inOrder.forEach((p, i) => { outcomes[p.index] = single[i]; });
    }
    return outcomes;
  }

  /** Record after record; once the destination is down, the rest fail with that error untried. */
  private async oneByOne(items: BatchItem[]): Promise<BatchOutcome[]> {
    const outcomes: BatchOutcome[] = [];
    let down: Error | undefined;
    for (const item of items) {
      if (down) {
        outcomes.push({ error: down });
        continue;
      }
      try {
        outcomes.push({ result: await this.apply(item.record, item.policy) });
      } catch (err) {
        outcomes.push({ error: err as Error });
        if (classifyDbError(err).transient) down = err as Error;
      }
    }
    return outcomes;
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
    const context = `${this.describe()}, key ${JSON.stringify(key)}`;
    return this.inTransaction(context, key, async (session, state, current) => {
      const parked = state?.parked;
      if (!state || !parked) throw new DbError({ transient: false, message: `no parked conflict for key '${key}'` }, context);
      const columns: Record<string, unknown> = { [plan.columns[0].contractName]: key };
      const baseline: Record<string, unknown> = {};
      for (const [column, field] of Object.entries(parked.fields)) {
        if (take === 'hms') columns[column] = field.new;
        baseline[column] = take === 'hms' ? field.new : current?.[column] ?? null;
      }
      const decision: ConflictDecision = {
        outcome: take === 'hms' ? 'write' : 'skipped',
        columns: take === 'hms' ? columns : {},
        reason: `MANUAL: resolved, ${take === 'hms' ? 'HMS' : 'destination'} taken for ${Object.keys(parked.fields).join(', ')}`,
        conflicts: Object.keys(parked.fields).map((column) => ({ column, rule: 'MANUAL' as ConflictRule, winner: take })),
        state: { ...state, written: { ...state.written, ...baseline }, parked: null },
      };
      const after = await commitDecision(plan, session, this.options.jobId, key, decision, current);
      return { outcome: take === 'hms' ? 'applied' : 'unchanged', before: current, after: after ?? {}, reason: decision.reason, conflicts: decision.conflicts };
    });
  }

  private openPlan(): WritePlan {
    // Transient: a write racing a close (a redeploy) must not burn the event into the dead letter.
    if (!this.plan || !this.pool) throw new DbError({ transient: true, message: `${this.describe()} is not open` });
    return this.plan;
  }

  /**
   * One transaction on the record: its state row claimed and locked, its destination row read
   * with a lock, then `work`. Deadlocks and serialization failures are retried here a few times,
   * since they say nothing about the destination's health.
   */
  private async inTransaction<T>(
    context: string,
    key: SqlParameter,
    work: (session: OdbcSession, state: RecordState | null, current: Record<string, unknown> | null) => Promise<T>,
  ): Promise<T> {
    const plan = this.openPlan();
    return this.withLockRetries(context, () => this.pool!.withSession((session) => session.transaction(async () => {
      const state = await claimState(plan, session, this.options.jobId, String(key));
      const [found] = await session.run(plan.lockRowSql, [key]);
      return work(session, state, found ? fromDatabaseRow(plan, found) : null);
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

interface BoundRecord {
  /** Key first, then the mapped columns the record carries, in plan order. */
  columns: PlannedColumn[];
  parameters: SqlParameter[];
  /** Which of the plan's columns are present (their indexes), for the upsert cache. */
  shape: string;
}

function upsertFor(plan: WritePlan, bound: BoundRecord): string {
  let sql = plan.upserts.get(bound.shape);
  if (sql === undefined) {
    sql = plan.dialect.upsert(plan.table, bound.columns[0].info.name, bound.columns.map((c) => c.info));
    plan.upserts.set(bound.shape, sql);
  }
  return sql;
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

/**
 * The conflict transaction for many records: claim and lock their state rows and their rows,
 * decide each, write each shape of row in one statement, read the written rows back (the
 * baseline), store the new states in one statement. `prepared` is in key order.
 */
async function applyPrepared(plan: WritePlan, batch: BatchSql, session: OdbcSession, jobId: string, prepared: PreparedRecord[]): Promise<ApplyResult[]> {
  const keys = prepared.map((p) => p.key);
  // The state table keys records by their text, as apply() does; its own column is text, so the
  // rows come back in the spelling bound (a case-insensitive collation may return another case).
  const stateKeys = keys.map((key) => String(key));
  const claim = batch.claimStates(plan.state, keys.length);
  let claimed = await session.run(claim.insert, stateKeys.flatMap((key) => [jobId, key]));
  if (claim.select) claimed = await session.run(claim.select, [jobId, ...stateKeys]);
  const states = new Map(claimed.map((row) => [String(row[plan.state.columns.record_key]).toLowerCase(), row]));
  const columnNames = plan.columns.map((c) => c.info.name);
  const keyColumn = plan.columns[0].info;
  /** Destination rows by the position of the key they matched, as the database compared them. */
  const rowsOf = async (wanted: SqlParameter[]) => {
    const rows = await session.run(batch.lockRows(plan.table, keyColumn, columnNames, wanted.length), wanted);
    return new Map(rows.map((row) => [Number(row.exs_ord ?? row.EXS_ORD) - 1, row]));
  };
  const currentRows = await rowsOf(keys);

  const decided = prepared.map((p, i) => {
    const stateRow = states.get(stateKeys[i].toLowerCase());
    if (!stateRow) throw new Error(`the state row for key '${String(p.key)}' could not be claimed in ${plan.state.table}`);
    const found = currentRows.get(i);
    const current = found ? fromDatabaseRow(plan, found) : null;
    const decision = decideConflict(p.law, stateFromRow(plan, stateRow), current, p.incoming, plan.same);
    return { p, current, decision };
  });

  // Rows of one shape (the same columns written) go in one statement.
  const shapes = new Map<string, Array<typeof decided[number]>>();
  for (const d of decided) {
    const names = Object.keys(d.decision.columns);
    if (names.length === 0) continue;
    const shape = plan.columns.filter((c) => names.includes(c.contractName)).map((c) => plan.columns.indexOf(c)).join(',');
    shapes.set(shape, [...(shapes.get(shape) ?? []), d]);
  }
  for (const [shape, group] of shapes) {
    const columns = shape.split(',').map((i) => plan.columns[Number(i)]);
    const sql = batch.upsertRows(plan.table, keyColumn.name, columns.map((c) => c.info), group.length);
    await session.run(sql, group.flatMap((d) => columns.map((c) => d.decision.columns[c.contractName] as SqlParameter)));
  }
  const writtenAt = decided.flatMap((d, i) => (Object.keys(d.decision.columns).length > 0 ? [i] : []));
  const readBack = writtenAt.length > 0 ? await rowsOf(writtenAt.map((i) => keys[i])) : new Map<number, OdbcRow>();
  const stored = new Map(writtenAt.map((at, j) => [at, readBack.get(j)]));

  const results: ApplyResult[] = [];
  const stateParams: SqlParameter[] = [];
  let stateCount = 0;
  for (const [i, { current, decision }] of decided.entries()) {
    let after = current;
    if (Object.keys(decision.columns).length > 0) {
      const row = stored.get(i);
      after = row ? fromDatabaseRow(plan, row) : null;
    }
    const state = stateAsStored(decision, after);
    if (state) {
      stateParams.push(jobId, stateKeys[i], ...stateParameters(state));
      stateCount++;
    }
    results.push(resultOf(decision, current, after));
  }
  if (stateCount > 0) await session.run(batch.saveStates(plan.state, stateCount), stateParams);
  return results;
}

/**
 * Writes what the decision takes and stores the record's new state. The baseline of a written
 * column is what the destination kept, read back in the same transaction: a column that rounds or
 * truncates (timestamp(0), DECIMAL(10,2)) must not look like a clerk's edit next time.
 * Returns the row as it now is.
 */
async function commitDecision(
  plan: WritePlan,
  session: OdbcSession,
  jobId: string,
  key: SqlParameter,
  decision: ConflictDecision,
  current: Record<string, unknown> | null,
): Promise<Record<string, unknown> | null> {
  let after = current;
  if (Object.keys(decision.columns).length > 0) {
    await writeDecision(plan, session, decision);
    const [stored] = await session.run(plan.lockRowSql, [key]);
    after = stored ? fromDatabaseRow(plan, stored) : null;
  }
  const state = stateAsStored(decision, after);
  if (state) await saveState(plan, session, jobId, String(key), state);
  return after;
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
  const bound = recordParameters(plan, record);
  const row = Object.fromEntries(bound.columns.map((c, i) => [c.contractName, bound.parameters[i]]));
  return {
    index,
    key: bound.parameters[0],
    law: lawFor(plan, policy),
    incoming: { row, keyColumn: plan.columns[0].contractName, version: record.version ?? null, tiebreak: contentHash(row) },
  };
}

/** Writes the columns the decision takes (key first), already bound parameters. */
async function writeDecision(plan: WritePlan, session: OdbcSession, decision: ConflictDecision): Promise<void> {
  const names = Object.keys(decision.columns);
  if (names.length === 0) return;
  const columns = plan.columns.filter((c) => names.includes(c.contractName));
  const bound: BoundRecord = {
    columns,
    parameters: columns.map((c) => decision.columns[c.contractName] as SqlParameter),
    shape: columns.map((c) => plan.columns.indexOf(c)).join(','),
  };
  await session.run(upsertFor(plan, bound), bound.parameters);
}

/** Locks the record's state row (creating it if new) and reads it; null when EXS never wrote the record. */
async function claimState(plan: WritePlan, session: OdbcSession, jobId: string, key: string): Promise<RecordState | null> {
  let rows: OdbcRow[] = [];
  for (const sql of plan.claimStateSql) rows = await session.run(sql, [jobId, key]);
  const [row] = rows;
  if (!row) throw new Error(`the state row for key '${key}' could not be claimed in ${plan.state.table}`);
  return stateFromRow(plan, row);
}

/** A claimed state row as the law reads it; null when EXS has not written the record yet. */
function stateFromRow(plan: WritePlan, row: OdbcRow): RecordState | null {
  const c = plan.state.columns;
  if (!row[c.fingerprint]) return null; // claimed just now: nothing written yet
  const version = row[c.version];
  const { values, stamps } = parseJson(row[c.written]) as StoredWritten;
  return {
    version: version === null || version === undefined ? null : String(version),
    tiebreak: String(row[c.tiebreak] ?? ''),
    written: values,
    columns: Object.fromEntries(Object.entries(stamps ?? {}).map(([column, [v, tiebreak]]) => [column, { version: v, tiebreak }])),
    parked: (parseJson(row[c.parked]) as ParkedConflict | null) ?? null,
  };
}

/** The state table's `written` text: the values EXS last wrote, and which event decided each column. */
interface StoredWritten {
  values: Record<string, unknown>;
  stamps?: Record<string, [SourceVersion, string]>;
}

/** version, tiebreak, fingerprint, written, parked, updated_at: the state's columns as bound. */
function stateParameters(state: RecordState): SqlParameter[] {
  const written: StoredWritten = {
    values: state.written,
    stamps: Object.fromEntries(Object.entries(state.columns ?? {}).map(([column, stamp]) => [column, [stamp.version, stamp.tiebreak]])),
  };
  return [state.version, state.tiebreak, fingerprintOf(state.written), JSON.stringify(written),
    state.parked ? JSON.stringify(state.parked) : null, new Date().toISOString()];
}

async function saveState(plan: WritePlan, session: OdbcSession, jobId: string, key: string, state: RecordState): Promise<void> {
  await session.run(plan.updateStateSql, [...stateParameters(state), jobId, key]);
}

function parseJson(value: unknown): unknown {
  if (value === null || value === undefined || value === '') return null;
  return JSON.parse(String(value));
}


/** Parameters in plan order for the columns the record carries; unknown columns are refused. */
function recordParameters(plan: WritePlan, record: MappedRecord): BoundRecord {
  const [key, ...others] = plan.columns;
  if (record.keyColumn.toLowerCase() !== key.contractName.toLowerCase()) {
    throw new Error(`record is keyed by '${record.keyColumn}', the connector by '${key.contractName}'`);
  }
  if (record.keyValue === null || record.keyValue === undefined) throw new Error('record has no key value');

  const unknown = Object.keys(record.row).filter((name) => !plan.columns.some((c) => c.contractName === name));
  if (unknown.length > 0) throw new Error(`record has columns the connector was not opened with: ${unknown.join(', ')}`);
  // A missing value is not written as NULL: that would erase data the event never mentioned.
  const present = [key];
  const indexes = ['0'];
  others.forEach((column, i) => {
    if (record.row[column.contractName] === undefined) return;
    present.push(column);
    indexes.push(String(i + 1));
  });
  const parameters = present.map((column, i) => toParameter(column, i === 0 ? record.keyValue : record.row[column.contractName]));
  return { columns: present, parameters, shape: indexes.join(',') };
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
    case 'number':
      return Number(stored) === Number(written); // DECIMAL reads back as text: '5.50' is 5.5
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
  const columns = await resolveColumns(connection, table, wanted);
  const [key] = columns;
  const state = await stateTableFor(connection, dialect, options.stateTable ?? DEFAULT_STATE_TABLE);
  return {
    dialect,
    table: table.sqlName,
    columns,
    lockRowSql: dialect.selectByKeyForUpdate(table.sqlName, key.info.name, columns.map((c) => c.info.name)),
    state,
    claimStateSql: dialect.claimState(state),
    updateStateSql: dialect.updateState(state),
    listParkedSql: dialect.listParked(state),
    upserts: new Map(),
    same: sameValueIn(columns),
  };
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
