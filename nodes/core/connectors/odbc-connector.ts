// Writes mapped records into a table through ODBC: PostgreSQL, MariaDB/MySQL and SQLite are tested
// live; SQL Server and Db2 share the code path with MERGE SQL. Names from the contract are matched
// to the catalog without regard to case at open(), and all SQL is built there, once.
import {
  DIALECTS,
  DIALECT_NAMES,
  columnKind,
  declaredSqlType,
  detectDialect,
  splitTableName,
  toSqlTimestampText,
  type ColumnInfo,
  type DialectName,
  type SqlDialect,
  type UpsertGuard,
} from '../sql/dialect';
import { DbError, toDbError } from '../sql/errors';
import {
  OdbcPool,
  connectOdbc,
  driverNameOf,
  type OdbcConnection,
  type OdbcRow,
  type OdbcSession,
  type SqlParameter,
} from '../sql/odbc-pool';
import { resolveConflict, type ConflictPolicy } from '../conflict';
import type { ApplyResult, MappedRecord, SyncConnector } from '../types';

export interface OdbcConnectorOptions {
  connectionString: string;
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
  queryTimeoutSeconds?: number;
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
  selectSql: string;
  /**
   * Upsert text per set of columns an event carries and guard (none, or LAST_WRITE_WINS on a
   * column): a field the event omits leaves its column alone rather than writing NULL over it.
   * Built on first use, so the common full record costs one build per deploy.
   */
  upserts: Map<string, string>;
}

const DEFAULT_POOL_SIZE = 4;

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
      maxSize: this.options.poolSize ?? DEFAULT_POOL_SIZE,
      sessionSetup: this.plan.dialect.sessionSetup,
    });
  }

  /**
   * Writes the record. Under LAST_WRITE_WINS the decision is taken by the destination inside the
   * one upsert statement (UpsertGuard), so two runtimes applying events for the same key at the
   * same time cannot regress the row between a read and a write. The read before it only supplies
   * `before` for the change log and spots a row that already holds exactly these values.
   */
  async apply(record: MappedRecord, policy?: ConflictPolicy): Promise<ApplyResult> {
    const { plan, pool } = this;
    if (!plan || !pool) throw new Error(`${this.describe()} is not open`);
    const context = `${this.describe()}, key ${JSON.stringify(record.keyValue)}`;

    let bound: BoundRecord;
    let guard: PlannedGuard | undefined;
    try {
      bound = recordParameters(plan, record);
      guard = guardFor(plan, policy);
    } catch (err) {
      throw new DbError({ transient: false, message: (err as Error).message }, context, err);
    }
    const written = Object.fromEntries(bound.columns.map((c, i) => [c.contractName, bound.parameters[i]]));

    try {
      return await pool.withSession(async (session): Promise<ApplyResult> => {
        const before = await readRow(plan, session, bound);
        const after = { ...before, ...written };
        // The row already holds exactly what the event brings, its time included. Safe to leave under
        // LAST_WRITE_WINS too: the guarded write could only rewrite the same values, or be refused
        // because a newer version has landed since.
        if (before && sameRow(bound, before, written)) return { outcome: 'unchanged', before, after };
        if (!guard) {
          await session.run(upsertFor(plan, bound), bound.parameters);
          return { outcome: 'applied', before, after };
        }

        if (await runGuardedUpsert(plan, session, bound, guard, before !== null)) return { outcome: 'applied', before, after };
        // Not written (or, on MariaDB, possibly already equal): the row as it is now tells which,
        // and is what the change log shows as kept. Another runtime may have written it meanwhile.
        const current = await readRow(plan, session, bound);
        if (!current) {
          throw new DbError({ transient: true, message: 'the row was deleted while the event was being written; retry' }, context);
        }
        if (sameRow(bound, current, written)) return { outcome: 'unchanged', before, after: current };
        const model = resolveConflict(guard.policy, current, written);
        const reason = model.write ? 'destination kept: the guarded write found a row no older than the event' : model.reason;
        return { outcome: 'skipped', before, after: current, reason };
      });
    } catch (err) {
      throw toDbError(err, context);
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

function upsertFor(plan: WritePlan, bound: BoundRecord, guard?: PlannedGuard): string {
  const cacheKey = guard ? `${bound.shape}|${guard.column.info.name}` : bound.shape;
  let sql = plan.upserts.get(cacheKey);
  if (sql === undefined) {
    sql = plan.dialect.upsert(plan.table, bound.columns[0].info.name, bound.columns.map((c) => c.info), guard?.sql);
    plan.upserts.set(cacheKey, sql);
  }
  return sql;
}

/** LAST_WRITE_WINS with its time column found among the connector's columns. */
interface PlannedGuard {
  policy: ConflictPolicy;
  column: PlannedColumn;
  sql: UpsertGuard;
}

/**
 * The guard the policy asks for, or none when the event simply wins: no policy, HMS_WINS, or
 * LAST_WRITE_WINS without a timestamp column (resolveConflict lets HMS win there too).
 */
function guardFor(plan: WritePlan, policy: ConflictPolicy | undefined): PlannedGuard | undefined {
  if (!policy || policy.rule !== 'LAST_WRITE_WINS' || !policy.timestampColumn) return undefined;
  const wanted = policy.timestampColumn;
  const column = plan.columns.find((c) => c.contractName === wanted)
    ?? plan.columns.find((c) => c.contractName.toLowerCase() === wanted.toLowerCase());
  if (!column) {
    throw new Error(`LAST_WRITE_WINS compares column '${wanted}', which this connector does not write`
      + ` (columns: ${plan.columns.map((c) => c.contractName).join(', ')})`);
  }
  if (column === plan.columns[0]) throw new Error(`LAST_WRITE_WINS cannot compare the key column '${wanted}'`);
  // resolveConflict reads the rows by contract names; the guard's policy names the column the same way.
  return { policy: { ...policy, timestampColumn: column.contractName }, column, sql: { timestampColumn: column.info.name } };
}

/**
 * Runs the guarded upsert and says whether it certainly wrote the event's row (inserted or
 * updated). False when the guard kept the row, or when the driver's count cannot tell a kept row
 * from one that already held these values; the caller reads the row then. Counts per driver:
 * - psqlODBC: 1 inserted or updated, 0 when the DO UPDATE's WHERE turned the event down.
 * - sqliteodbc: sqlite3_changes(), likewise 1 or 0 (0 comes back as SQL_NO_DATA, see above).
 * - MariaDB Connector/ODBC: 1 inserted, 2 updated, 0 when no value changed (the guard kept the row,
 *   or it already held these values). With the FOUND_ROWS client option (OPTION=2) a found row
 *   that did not change counts 1, so a 1 for a row that existed when read is checked by reading
 *   it. (Left: with FOUND_ROWS, a key first inserted by another runtime between the read and the
 *   write, then kept by the guard, is reported applied.)
 * - SQL Server and Db2 MERGE: 1 inserted or updated, 0 when WHEN MATCHED AND ... turned it down.
 */
async function runGuardedUpsert(
  plan: WritePlan,
  session: OdbcSession,
  bound: BoundRecord,
  guard: PlannedGuard,
  rowWasRead: boolean,
): Promise<boolean> {
  const sql = upsertFor(plan, bound, guard);
  // Through query(), which also accepts the SQL_NO_DATA that sqliteodbc (and, by the ODBC spec,
  // SQL Server and Db2) return for a guarded upsert that changed no row.
  const result = await session.run(sql, bound.parameters);
  const count = Number(result.count);
  if (plan.dialect.name !== 'mysql') return count > 0;
  return count === 2 || (count === 1 && !rowWasRead);
}

/** The row as the destination holds it now, keyed by contract names; null when there is none. */
async function readRow(plan: WritePlan, session: OdbcSession, bound: BoundRecord): Promise<Record<string, unknown> | null> {
  const [row] = await session.run(plan.selectSql, [bound.parameters[0]]);
  return row ? fromDatabaseRow(plan, row) : null;
}

function sameRow(bound: BoundRecord, row: Record<string, unknown>, written: Record<string, unknown>): boolean {
  return bound.columns.every((c) => sameValue(c.info, row[c.contractName], written[c.contractName]));
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
    const value = row[c.info.name] ?? null;
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
  return {
    dialect,
    table: table.sqlName,
    columns,
    selectSql: dialect.selectByKey(table.sqlName, key.info.name, columns.map((c) => c.info.name)),
    upserts: new Map(),
  };
}

interface ResolvedTable {
  row: CatalogTable;
  sqlName: string;
}

// ODBC catalog calls (SQLTables, SQLColumns) work on every driver here, SQLite included, which has
// no information_schema. MariaDB's driver rejects a schema argument: it calls databases catalogs.
async function resolveTable(connection: OdbcConnection, dialect: SqlDialect, table: string): Promise<ResolvedTable> {
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
  const inScope = listed.filter((row) => scope === undefined || scopeOf(row)?.toLowerCase() === scope.toLowerCase());

  const name = matchName(inScope.map((row) => row.TABLE_NAME), namePart, 'table');
  if (name === undefined) {
    throw new Error(`table '${table}' not found in ${scope ?? 'the database'} (tables: ${listNames(inScope.map((r) => r.TABLE_NAME))})`);
  }
  const row = inScope.find((r) => r.TABLE_NAME === name)!;
  return { row, sqlName: schemaPart ? `${scopeOf(row)}.${name}` : name };
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
