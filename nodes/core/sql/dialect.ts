// SQL text for each destination family. Builders only ever emit `?` placeholders: values are
// bound by the driver, never spliced into the text, and every identifier is validated first.
import { CANONICAL_TIMESTAMP, TIMESTAMP_FORMS, formatInstant, isCanonicalTimestamp, parseInstant } from '../time';

export const DIALECT_NAMES = ['postgresql', 'mysql', 'sqlite', 'sqlserver', 'db2'] as const;
export type DialectName = (typeof DIALECT_NAMES)[number];

/** How a column's values are converted for binding and compared to detect an unchanged row. */
export type ColumnKind = 'text' | 'fixed-text' | 'number' | 'timestamp' | 'other';

/** A destination column as the catalog describes it. */
export interface ColumnInfo {
  /** The column's real spelling in the database. */
  name: string;
  kind: ColumnKind;
  /** Declared type, e.g. `varchar(20)`; MERGE dialects cast their source parameters to it. */
  sqlType: string;
  /** PostgreSQL only, from its own catalog: how its statements name and read the column's type. */
  pg?: PgType;
}

/** A PostgreSQL column type as pg_type knows it. */
export interface PgType {
  /**
   * format_type() without modifiers, what a cast that must not cut a value names: `character
   * varying`, `integer`, `"Mood"`, `legacy.status`, `integer[]`; `bpchar` for char(n).
   */
  base: string;
  /** pg_type.typname: `int8`, `bool`, `money`, `jsonb`, `_int4`. */
  name: string;
  /** pg_type.typcategory: `B` boolean, `N` numeric, `A` array, `S` string, `D` date/time, ... */
  category: string;
  /** pg_attribute.atttypmod: varchar(n) n + 4, timestamp(p) p, -1 for none. */
  typmod: number;
  /** Whether the type is one of PostgreSQL's own (in pg_catalog). */
  builtin?: boolean;
}

export interface SqlDialect {
  readonly name: DialectName;
  quoteIdent(name: string): string;
  /** `TABLE` or `SCHEMA.TABLE`, each part validated and quoted. */
  quoteTable(table: string): string;
  /**
   * `SELECT <columns> FROM <table> WHERE <key> = ?`, locking the row until the transaction ends, so
   * a clerk's edit waits for the write.
   */
  selectByKeyForUpdate(table: string, keyColumn: string, columns: string[]): string;
  /** The record-state table (what EXS last wrote per record), created at open() when it is missing. */
  createStateTable(table: string): string;
  /**
   * Makes sure the record's state row exists and locks it for the transaction: every runtime of
   * the job queues up here per record. Parameters: job id, record key (each statement). The last
   * statement returns the row's state columns.
   */
  claimState(state: StateTable): string[];
  /** Parameters: version, tiebreak, fingerprint, written, parked, updated_at, job id, record key. */
  updateState(state: StateTable): string;
  /** The job's records with a parked conflict. Parameter: job id. */
  listParked(state: StateTable): string;
  /**
   * The same transaction for many records at once (multi-row statements), where the dialect has
   * multi-row upserts; SQL Server and Db2 (MERGE) write record by record.
   */
  readonly batch?: BatchSql;
  /**
   * Insert-or-update of one row; parameters in the order of `columns`, which must include the key.
   * The decision whether to write was taken before, under the record's lock (nodes/core/conflict.ts).
   */
  upsert(table: string, keyColumn: string, columns: ColumnInfo[]): string;
  /**
   * Run once on every new connection so timestamps travel as UTC both ways: PostgreSQL `timestamptz`
   * and MySQL `TIMESTAMP` otherwise convert through the server's local zone.
   */
  readonly sessionSetup?: readonly string[];
  /** Names the schema (or, on MySQL, the database) that unqualified table names resolve in. */
  readonly currentSchemaQuery?: string;
  /** MySQL calls its databases catalogs in ODBC and has no schemas: `SCHEMA.TABLE` means database.table. */
  readonly schemaIsCatalog: boolean;
}

/**
 * Statements of the conflict transaction over many records, with one row of parameters per record
 * (multi-row VALUES); keys are bound in the order given. MariaDB/MySQL and SQLite.
 */
export interface RowBatchSql {
  readonly binding: 'rows';
  /**
   * Claims and locks `n` state rows. `insert` takes (job id, key) pairs; `select`, when present,
   * takes the job id then the keys and returns the rows (else `insert` returns them). Both return
   * `record_key` first, then the state columns.
   */
  claimStates(state: StateTable, n: number): { insert: string; select?: string };
  /**
   * The rows of `n` keys, locked, each with `exs_ord` (1-based) naming the key it matched: the
   * database compares the keys, by the key column's own type and collation (a CHAR key pads, an
   * INTEGER key reads '007' as 7). Parameters: the keys.
   */
  lockRows(table: string, key: ColumnInfo, columns: string[], n: number): string;
  /** Multi-row insert-or-update of rows of one shape; parameters row after row in `columns` order. */
  upsertRows(table: string, keyColumn: string, columns: ColumnInfo[], n: number): string;
  /** Writes `n` states. Parameters per row: job id, key, version, tiebreak, fingerprint, written, parked, updated_at. */
  saveStates(state: StateTable, n: number): string;
}

/**
 * PostgreSQL's form of the same transaction, in three statements whose text does not depend on
 * the number of records: values travel as one array or JSON parameter, so the server plans a batch
 * of 500 as fast as a batch of one (a 500-row VALUES list or UNION took ~100 ms to plan), and each
 * statement answers with one JSON text cell, which node-odbc hands over about four times faster
 * than the same values as rows of cells. Columns need their `pg` type (read from pg_type at open).
 */
export interface ArrayBatchSql {
  readonly binding: 'arrays';
  /**
   * Locks the keys' existing state rows and inserts the missing ones (each in key order, so
   * runtimes queue rather than deadlock), then locks their destination rows. Parameters: the keys (a text array), the job id. Answers
   * `exs_rows`: a JSON array with, per key, [ordinal (1-based), version, tiebreak, fingerprint,
   * written, parked, destination row found, [[`columns`]], the row's version] (values in chunks of
   * 90; the version is what writeKnown checks, null when `rowVersions` is false: a view has none).
   */
  lock(state: StateTable, table: string, key: ColumnInfo, columns: ColumnInfo[], rowVersions?: boolean): string;
  /**
   * Insert-or-update of rows of one shape. Parameter: the rows, a JSON array of objects keyed by
   * column name (`columns`, key first), read by json_populate_record with each column's own type.
   * Answers `exs_rows`: per row written, [ordinal, [[`returned` as the table stored them]], the
   * row's version (as lock())] (values in chunks of 90); `returned` starts with the key.
   */
  upsertRows(table: string, columns: ColumnInfo[], returned: ColumnInfo[], rowVersions?: boolean): string;
  /**
   * The whole transaction in one statement, for records whose state and destination row the
   * caller believes it knows (it wrote them last): each record's state row must still have the
   * fingerprint, version and tiebreak given (or be missing, when none is given) and no parked
   * conflict, and its destination row the version given (or be missing); for the records where both
   * hold, the row's `columns` (key first) are written as upsertRows() writes them, when asked, and
   * the new state saved. Existing state rows are locked in key order before the rows, as lock()
   * does; a new key's state row is inserted after the rows are locked. The others are left
   * untouched. Rows are checked and answered by their `returned` columns.
   * Parameters: the records, a JSON array of objects {o: ordinal, k: key text, sf, sv, st: expected
   * state fingerprint (null: no state row), version, tiebreak; rv: expected row version (null: no
   * row); w: 1 to write the row; r: the row, keyed by column name; nv, nt, nf, nw, nu: the new
   * state's version, tiebreak, fingerprint, written and updated_at}; the job id. Answers `exs_rows`:
   * [true, ordinals of the records that passed, [[ordinal, [[`returned` as stored]], version]] of the
   * rows written (matched to their records by the key as the table stores it)], null for none. When
   * a passed record's state could not be saved (a state row inserted meanwhile by another runtime)
   * the statement fails instead (22P02, "exs: state rows appeared meanwhile"), so that none of it
   * stays whatever the caller does next.
   * With a `guard` (a SQL condition, see tableUnchanged()) no record passes unless it holds, and the
   * answer has a fourth element, whether it held: the statement can then run on its own, outside a
   * transaction, for a table the caller knows stores what it binds.
   */
  writeKnown(state: StateTable, table: string, columns: ColumnInfo[], returned: ColumnInfo[], guard?: string): string;
  /**
   * Parameters: the job id, then the states, a JSON array of objects {k: key, v: version, t:
   * tiebreak, f: fingerprint, w: written, p: parked, u: updated_at}, each read once by
   * json_to_recordset. `written` and `parked` are JSON themselves and go in as JSON values, not
   * strings: a json value's text is kept as written, so their fingerprints still hold, and nothing
   * has to escape their quotes.
   */
  saveStates(state: StateTable): string;
}

export type BatchSql = RowBatchSql | ArrayBatchSql;

/**
 * A PostgreSQL array literal of text elements, `{"a","b\"c",NULL}`: what an array parameter binds.
 * Every element is quoted, so spaces, commas and braces in values are data, never syntax.
 */
export function arrayLiteral(values: ReadonlyArray<string | number | null>): string {
  let text = '{';
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (i > 0) text += ',';
    if (value === null) {
      text += 'NULL';
      continue;
    }
    const element = String(value);
    text += element.includes('"') || element.includes('\\') ? `"${element.replace(/[\\"]/g, '\\$&')}"` : `"${element}"`;
  }
  return `${text}}`;
}

/** The state table's columns, by role; the catalog's spelling is looked up at open(). */
export const STATE_COLUMNS = ['job_id', 'record_key', 'version', 'tiebreak', 'fingerprint', 'written', 'parked', 'updated_at'] as const;
export type StateColumn = (typeof STATE_COLUMNS)[number];

export interface StateTable {
  /** As the SQL names it (real spelling, schema-qualified when configured so). */
  table: string;
  /** Each role's column as the catalog spells it. */
  columns: Record<StateColumn, string>;
}

/** The state table's columns as EXS creates them. */
export function defaultStateTable(table: string): StateTable {
  return { table, columns: Object.fromEntries(STATE_COLUMNS.map((c) => [c, c])) as Record<StateColumn, string> };
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$#]*$/;

export function assertIdentifier(name: string): void {
  if (!IDENTIFIER.test(name)) {
    throw new Error(`invalid SQL identifier '${name}': use letters, digits, _, $ and #, starting with a letter or _`);
  }
}

/** `varchar(20)`, `decimal(10, 2)`, `int`, `nvarchar(max)`, `character varying(8)`: catalog text we splice into CASTs. */
const SQL_TYPE = /^[A-Za-z][A-Za-z0-9_ ]*(\(\s*(\d+|max)\s*(,\s*\d+\s*)?\))?$/i;

interface DialectSyntax {
  name: DialectName;
  open: string;
  close: string;
  /** The parameter expression for a column in VALUES / USING. */
  parameter(column: ColumnInfo): string;
  upsert: 'on-conflict' | 'on-duplicate-key' | 'merge';
  sessionSetup?: string[];
  currentSchemaQuery?: string;
  schemaIsCatalog?: boolean;
  /** Column types of the state table: a bounded text (keys), and text of any length (JSON). */
  stateTypes: { text: (size: number) => string; long: string };
  /** How a SELECT locks the rows it reads until the transaction ends. */
  lockRows: { tableHint?: string; suffix?: string };
  /** How the state row is made to exist: `insert-ignore` text, or a MERGE (SQL Server, Db2). */
  ensureRow: 'on-conflict-returning' | 'on-duplicate-key' | 'insert-or-ignore' | 'merge';
}

// Timestamps arrive as canonical UTC text (toSqlTimestampText) and the server casts it, so no driver
// converts them: psqlODBC turns `2026-03-01T10:00:00.123Z` into midnight and ignores offsets, and
// FIELD-NOTES saw it drop fractions.
const castTimestampText = (type: string) => `CAST(CAST(? AS VARCHAR(40)) AS ${type})`;

/** The key column's declared type, checked before it is spliced into a CAST. */
function sqlTypeOf(column: ColumnInfo): string {
  if (!SQL_TYPE.test(column.sqlType)) throw new Error(`column '${column.name}' has a type EXS cannot cast to: '${column.sqlType}'`);
  return column.sqlType;
}

function castToDeclaredType(column: ColumnInfo, timestampType: string): string {
  if (column.kind === 'timestamp') return castTimestampText(timestampType);
  // Db2 rejects untyped parameter markers in a VALUES row, and SQL Server cannot infer their type there.
  if (!SQL_TYPE.test(column.sqlType)) {
    throw new Error(`column '${column.name}' has a type the MERGE cannot cast to: '${column.sqlType}'`);
  }
  return `CAST(? AS ${column.sqlType})`;
}

const SYNTAX: Record<DialectName, DialectSyntax> = {
  postgresql: {
    name: 'postgresql', open: '"', close: '"', upsert: 'on-conflict',
    parameter: (c) => (c.kind === 'timestamp' ? castTimestampText('TIMESTAMP') : '?'),
    // Generic plans for the statements EXS PREPAREs: they look records up by key, which a generic
    // plan does with index scans whatever the batch size, while a custom plan was made again on
    // every execution (0.4 ms of planning for the lock statement: about half its time). PostgreSQL
    // 12 and newer; older servers keep their default.
    // No sequential scans: a plan is made for as long as the connection lives, often while a new
    // job's tables are still nearly empty, and a plan made then scans them whole for each key once
    // they have grown (426 ms instead of 9 for a batch of 500 keys of a 20,000-record job; until
    // autovacuum's next ANALYZE invalidates it, never where autovacuum is off). Every statement
    // these connections run reads rows by key or by job, which the state table's and the
    // destination's key indexes answer; a large table only read key by key (see batchSql()).
    sessionSetup: [
      "SET TIME ZONE 'UTC'",
      "SELECT set_config('plan_cache_mode', 'force_generic_plan', false) WHERE current_setting('server_version_num')::int >= 120000",
      'SET enable_seqscan = off',
    ],
    currentSchemaQuery: 'SELECT current_schema()',
    stateTypes: { text: (n) => `varchar(${n})`, long: 'text' },
    lockRows: { suffix: ' FOR UPDATE' },
    ensureRow: 'on-conflict-returning',
  },
  mysql: {
    name: 'mysql', open: '`', close: '`', upsert: 'on-duplicate-key',
    parameter: (c) => (c.kind === 'timestamp' ? 'CAST(? AS DATETIME(6))' : '?'),
    // READ COMMITTED: REPEATABLE READ's gap locks would make two runtimes inserting different new
    // keys into the same gap deadlock each other.
    sessionSetup: ["SET time_zone = '+00:00'", 'SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED'],
    currentSchemaQuery: 'SELECT DATABASE()',
    schemaIsCatalog: true,
    stateTypes: { text: (n) => `varchar(${n})`, long: 'longtext' },
    lockRows: { suffix: ' FOR UPDATE' },
    ensureRow: 'on-duplicate-key',
  },
  sqlite: {
    // SQLite has no timestamp type: the canonical text is stored as it is and sorts in time order.
    name: 'sqlite', open: '"', close: '"', upsert: 'on-conflict',
    parameter: () => '?',
    stateTypes: { text: (n) => `varchar(${n})`, long: 'text' },
    // The first write of a transaction (the state row's INSERT) takes the database's write lock.
    lockRows: {},
    ensureRow: 'insert-or-ignore',
  },
  sqlserver: {
    name: 'sqlserver', open: '[', close: ']', upsert: 'merge',
    parameter: (c) => castToDeclaredType(c, 'DATETIME2(7)'),
    currentSchemaQuery: 'SELECT SCHEMA_NAME()',
    stateTypes: { text: (n) => `nvarchar(${n})`, long: 'nvarchar(max)' },
    lockRows: { tableHint: ' WITH (UPDLOCK, HOLDLOCK)' },
    ensureRow: 'merge',
  },
  db2: {
    name: 'db2', open: '"', close: '"', upsert: 'merge',
    parameter: (c) => castToDeclaredType(c, 'TIMESTAMP(6)'),
    currentSchemaQuery: 'SELECT CURRENT SCHEMA FROM SYSIBM.SYSDUMMY1',
    stateTypes: { text: (n) => `varchar(${n})`, long: 'clob(16M)' },
    lockRows: { suffix: ' WITH RS USE AND KEEP UPDATE LOCKS' },
    ensureRow: 'merge',
  },
};

function buildDialect(syntax: DialectSyntax): SqlDialect {
  const quoteIdent = (name: string): string => {
    assertIdentifier(name);
    return `${syntax.open}${name}${syntax.close}`;
  };
  const quoteTable = (table: string): string => splitTableName(table).map(quoteIdent).join('.');

  // HOLDLOCK: without it two concurrent MERGEs on a new key can both take the insert branch.
  // SQL Server also wants a MERGE ended with a semicolon.
  const mergeParts = syntax.name === 'sqlserver' ? { hint: ' WITH (HOLDLOCK)', end: ';' } : { hint: '', end: '' };

  function upsert(table: string, keyColumn: string, columns: ColumnInfo[]): string {
    const key = quoteIdent(keyColumn);
    if (!columns.some((c) => c.name === keyColumn)) {
      throw new Error(`upsert into ${table}: the columns must include the key column '${keyColumn}'`);
    }
    const names = columns.map((c) => quoteIdent(c.name));
    const updated = columns.filter((c) => c.name !== keyColumn).map((c) => quoteIdent(c.name));
    const target = quoteTable(table);
    const parameters = columns.map(syntax.parameter).join(', ');
    if (updated.length === 0) {
      // Only the key: insert the record if it is new, leave an existing one as it is.
      switch (syntax.upsert) {
        case 'on-conflict':
          return `INSERT INTO ${target} (${key}) VALUES (${parameters}) ON CONFLICT (${key}) DO NOTHING`;
        case 'on-duplicate-key':
          return `INSERT INTO ${target} (${key}) VALUES (${parameters}) ON DUPLICATE KEY UPDATE ${key} = ${key}`;
        case 'merge': break;
      }
    }

    switch (syntax.upsert) {
      case 'on-conflict':
        return `INSERT INTO ${target} (${names.join(', ')}) VALUES (${parameters})`
          + ` ON CONFLICT (${key}) DO UPDATE SET ${updated.map((c) => `${c} = excluded.${c}`).join(', ')}`;
      case 'on-duplicate-key':
        return `INSERT INTO ${target} (${names.join(', ')}) VALUES (${parameters})`
          + ` ON DUPLICATE KEY UPDATE ${updated.map((c) => `${c} = VALUES(${c})`).join(', ')}`;
      case 'merge': {
        const { hint, end } = mergeParts;
        const matched = updated.length > 0 ? ` WHEN MATCHED THEN UPDATE SET ${updated.map((c) => `${c} = s.${c}`).join(', ')}` : '';
        return `MERGE INTO ${target}${hint} AS t USING (VALUES (${parameters})) AS s (${names.join(', ')})`
          + ` ON t.${key} = s.${key}${matched}`
          + ` WHEN NOT MATCHED THEN INSERT (${names.join(', ')}) VALUES (${names.map((c) => `s.${c}`).join(', ')})${end}`;
      }
    }
  }

  const selectByKeyForUpdate = (table: string, keyColumn: string, columns: string[]) =>
    `SELECT ${columns.map(quoteIdent).join(', ')} FROM ${quoteTable(table)}${syntax.lockRows.tableHint ?? ''}`
    + ` WHERE ${quoteIdent(keyColumn)} = ?${syntax.lockRows.suffix ?? ''}`;

  const stateParts = (state: StateTable) => {
    const c = Object.fromEntries(STATE_COLUMNS.map((role) => [role, quoteIdent(state.columns[role])])) as Record<StateColumn, string>;
    return { c, table: quoteTable(state.table), where: `${c.job_id} = ? AND ${c.record_key} = ?` };
  };

  function createStateTable(table: string): string {
    const { c } = stateParts(defaultStateTable(table));
    const { text, long } = syntax.stateTypes;
    // Key parts 100 + 300 characters: within SQL Server's 900-byte clustered key as nvarchar.
    return `CREATE TABLE ${quoteTable(table)} (${c.job_id} ${text(100)} NOT NULL, ${c.record_key} ${text(300)} NOT NULL,`
      + ` ${c.version} ${text(40)}, ${c.tiebreak} ${text(64)} NOT NULL, ${c.fingerprint} ${text(64)} NOT NULL,`
      + ` ${c.written} ${long} NOT NULL, ${c.parked} ${long}, ${c.updated_at} ${text(32)} NOT NULL,`
      + ` PRIMARY KEY (${c.job_id}, ${c.record_key}))`;
  }

  function claimState(state: StateTable): string[] {
    const { c, table, where } = stateParts(state);
    const read = [c.version, c.tiebreak, c.fingerprint, c.written, c.parked];
    // A new state row is written with an empty fingerprint: "nothing written yet".
    const insertColumns = `(${c.job_id}, ${c.record_key}, ${c.tiebreak}, ${c.fingerprint}, ${c.written}, ${c.updated_at})`;
    const select = `SELECT ${read.join(', ')} FROM ${table}${syntax.lockRows.tableHint ?? ''} WHERE ${where}${syntax.lockRows.suffix ?? ''}`;
    switch (syntax.ensureRow) {
      case 'on-conflict-returning':
        // DO UPDATE (not DO NOTHING) so the existing row is locked and returned in one statement.
        return [`INSERT INTO ${table} ${insertColumns} VALUES (?, ?, '', '', '{}', '')`
          + ` ON CONFLICT (${c.job_id}, ${c.record_key}) DO UPDATE SET ${c.job_id} = excluded.${c.job_id}`
          + ` RETURNING ${read.join(', ')}`];
      case 'on-duplicate-key':
        // The duplicate-key branch takes an exclusive lock at once: no shared lock to upgrade, no deadlock.
        return [`INSERT INTO ${table} ${insertColumns} VALUES (?, ?, '', '', '{}', '')`
          + ` ON DUPLICATE KEY UPDATE ${c.job_id} = ${c.job_id}`, select];
      case 'insert-or-ignore':
        return [`INSERT OR IGNORE INTO ${table} ${insertColumns} VALUES (?, ?, '', '', '{}', '')`, select];
      case 'merge': {
        const { hint, end } = mergeParts;
        const { text } = syntax.stateTypes;
        return [`MERGE INTO ${table}${hint} AS t USING (VALUES (CAST(? AS ${text(100)}), CAST(? AS ${text(300)}))) AS s (${c.job_id}, ${c.record_key})`
          + ` ON t.${c.job_id} = s.${c.job_id} AND t.${c.record_key} = s.${c.record_key}`
          + ` WHEN NOT MATCHED THEN INSERT ${insertColumns} VALUES (s.${c.job_id}, s.${c.record_key}, '', '', '{}', '')${end}`, select];
      }
    }
  }

  function updateState(state: StateTable): string {
    const { c, table, where } = stateParts(state);
    const set = [c.version, c.tiebreak, c.fingerprint, c.written, c.parked, c.updated_at].map((col) => `${col} = ?`).join(', ');
    return `UPDATE ${table} SET ${set} WHERE ${where}`;
  }

  function listParked(state: StateTable): string {
    const { c, table } = stateParts(state);
    return `SELECT ${c.record_key}, ${c.version}, ${c.written}, ${c.parked}, ${c.updated_at} FROM ${table}`
      + ` WHERE ${c.job_id} = ? AND ${c.parked} IS NOT NULL ORDER BY ${c.updated_at}, ${c.record_key}`;
  }

  /** job id, record key, then what a state save writes. */
  const stateRowColumns = (c: Record<StateColumn, string>) => [c.job_id, c.record_key, c.version, c.tiebreak, c.fingerprint, c.written, c.parked, c.updated_at];

  const placeholders = (n: number, row: string) => Array.from({ length: n }, () => row).join(', ');

  function batchSql(): BatchSql | undefined {
    if (syntax.upsert === 'merge') return undefined;
    if (syntax.name === 'postgresql') return arrayBatchSql();
    const lockSuffix = syntax.lockRows.suffix ?? '';
    return {
      binding: 'rows',
      claimStates(state, n) {
        const { c, table } = stateParts(state);
        const read = [c.record_key, c.version, c.tiebreak, c.fingerprint, c.written, c.parked].join(', ');
        const insertColumns = `(${c.job_id}, ${c.record_key}, ${c.tiebreak}, ${c.fingerprint}, ${c.written}, ${c.updated_at})`;
        const values = placeholders(n, "(?, ?, '', '', '{}', '')");
        const select = `SELECT ${read} FROM ${table} WHERE ${c.job_id} = ? AND ${c.record_key} IN (${placeholders(n, '?')})${lockSuffix}`;
        return syntax.ensureRow === 'on-duplicate-key'
          ? { insert: `INSERT INTO ${table} ${insertColumns} VALUES ${values} ON DUPLICATE KEY UPDATE ${c.job_id} = ${c.job_id}`, select }
          : { insert: `INSERT OR IGNORE INTO ${table} ${insertColumns} VALUES ${values}`, select };
      },
      lockRows(table, key, columns, n) {
        const keys = Array.from({ length: n }, (_, i) => `SELECT ${i + 1} AS exs_ord, ? AS exs_key`).join(' UNION ALL ');
        return `SELECT k.exs_ord, ${columns.map((c) => `t.${quoteIdent(c)}`).join(', ')} FROM (${keys}) k`
          + ` JOIN ${quoteTable(table)} t ON t.${quoteIdent(key.name)} = k.exs_key${lockSuffix}`;
      },
      upsertRows(table, keyColumn, columns, n) {
        const single = upsert(table, keyColumn, columns);
        const row = `(${columns.map(syntax.parameter).join(', ')})`;
        // The one-row statement with its VALUES row repeated: the same conflict clause applies to every row.
        return single.replace(`VALUES ${row}`, `VALUES ${placeholders(n, row)}`);
      },
      saveStates(state, n) {
        const { c, table } = stateParts(state);
        const columns = stateRowColumns(c);
        const values = placeholders(n, `(${columns.map(() => '?').join(', ')})`);
        const insert = `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${values}`;
        return syntax.upsert === 'on-duplicate-key'
          ? `${insert} ON DUPLICATE KEY UPDATE ${columns.slice(2).map((col) => `${col} = VALUES(${col})`).join(', ')}`
          : `${insert} ON CONFLICT (${c.job_id}, ${c.record_key}) DO UPDATE SET ${columns.slice(2).map((col) => `${col} = excluded.${col}`).join(', ')}`;
      },
    };
  }

  /**
   * The column's type for a cast that cannot truncate (no length: a too-long value fails on
   * assignment instead), as PostgreSQL's catalog names it (schema and quotes where needed).
   */
  const baseTypeOf = (column: ColumnInfo) => column.pg?.base ?? sqlTypeOf(column).replace(/\s*\(.*\)$/, '');
  const asText = (expression: string) => `CAST(${expression} AS text)`;
  /**
   * A column's value as the statements answer it in JSON, the same as the other dialects' drivers
   * hand values over: a boolean as 1 or 0, money as a number, a BIGINT, JSON or array as text
   * (JSON numbers would lose a BIGINT's digits), everything else as json_build_array renders it.
   */
  const readAs = (column: ColumnInfo, ref: string): string => {
    const pg = column.pg;
    if (!pg) return asText(ref);
    if (pg.category === 'B') return `CASE WHEN ${ref} THEN 1 WHEN NOT ${ref} THEN 0 END`;
    if (pg.name === 'money') return `CAST(${ref} AS numeric)`;
    if (pg.name === 'int8' || pg.name === 'json' || pg.name === 'jsonb' || pg.category === 'A') return asText(ref);
    return ref;
  };
  // PostgreSQL functions take at most 100 arguments: a wide row is answered in chunks of 90 values
  // (read back flattened), and state arrays are unnested side by side with ROWS FROM.
  const jsonValues = (expressions: string[]) => {
    const chunks: string[] = [];
    for (let at = 0; at < expressions.length; at += 90) chunks.push(`json_build_array(${expressions.slice(at, at + 90).join(', ')})`);
    return `json_build_array(${chunks.join(', ')})`;
  };
  /**
   * Which version of row `alias` this is: the transaction that wrote it (xmin) and where it lies
   * (its table or partition, and ctid). Any later write, in another transaction or the same (a
   * trigger), makes a new version with a new place: what writeKnown compares to tell a row
   * unchanged since EXS read or wrote it, far cheaper than hashing its values. A VACUUM FULL moves
   * rows: they then just miss the check.
   */
  const rowVersion = (alias: string) => `CAST(${alias}.tableoid AS text) || ':' || CAST(${alias}.xmin AS text) || ':' || CAST(${alias}.ctid AS text)`;

  function arrayBatchSql(): ArrayBatchSql {
    return {
      binding: 'arrays',
      lock(state, table, key, columns, rowVersions = true) {
        const { c, table: stateTable } = stateParts(state);
        const claimed = [c.version, c.tiebreak, c.fingerprint, c.written, c.parked];
        // Destination columns under positional names, so none can clash with the statement's own.
        const values = columns.map((_, i) => `exs_v${i}`);
        const read = claimed.join(', ');
        // Existing state rows are read key by key (a LATERAL subquery that OFFSET 0 keeps a loop),
        // one index lookup per key, even in a plan made before the state table had statistics
        // (prepared at open, before autovacuum's first ANALYZE): as a semi-join such a plan read
        // every state row of the job per batch and compared each with every key (57 ms for 500
        // keys of a 1,000-record job). They are locked as the loop reaches them, and the loop runs
        // in the database's key order, as the inserts below and older runtimes do. All of them are
        // locked before any insert (the hashed NOT IN reads them all first: one lookup per key,
        // where `<> ALL (array)` compared every pair); new ones are inserted in key order. The
        // destination rows are read key by key too: joined, a plan made while the destination was
        // small read all of its index per batch once it had grown.
        // Nothing is written to a state row that exists: its save later in the transaction is its
        // one new version. A key another runtime inserted after this statement's snapshot comes
        // back from neither: the caller retries.
        return `WITH exs_k AS (SELECT * FROM unnest(CAST(? AS text[])) WITH ORDINALITY AS k (exs_key, exs_ord)),`
          + ` exs_j AS (SELECT CAST(? AS text) AS exs_job),`
          + ` exs_e AS (SELECT s.${c.record_key} AS exs_key, ${claimed.map((col) => `s.${col}`).join(', ')} FROM (SELECT * FROM exs_k ORDER BY exs_key) k CROSS JOIN LATERAL`
          + ` (SELECT * FROM ${stateTable} s WHERE s.${c.job_id} = (SELECT exs_job FROM exs_j) AND s.${c.record_key} = k.exs_key OFFSET 0) s`
          + ` ORDER BY s.${c.record_key} FOR UPDATE OF s),`
          + ` exs_n AS (INSERT INTO ${stateTable} (${c.job_id}, ${c.record_key}, ${c.tiebreak}, ${c.fingerprint}, ${c.written}, ${c.updated_at})`
          + ` SELECT j.exs_job, k.exs_key, '', '', '{}', '' FROM exs_k k, exs_j j WHERE k.exs_key NOT IN (SELECT exs_key FROM exs_e)`
          + ` ORDER BY k.exs_key ON CONFLICT (${c.job_id}, ${c.record_key}) DO NOTHING RETURNING ${c.record_key} AS exs_key, ${read}),`
          + ` exs_c AS (SELECT * FROM exs_e UNION ALL SELECT * FROM exs_n),`
          // Joined to the claimed state rows: a destination row is locked only once its state row is.
          + ` exs_r AS (SELECT s.exs_key, t.* FROM (SELECT exs_key FROM exs_c ORDER BY exs_key) s CROSS JOIN LATERAL`
          + ` (SELECT ${columns.map((col, i) => `t.${quoteIdent(col.name)} AS ${values[i]}`).join(', ')}, ${rowVersions ? rowVersion('t') : 'NULL'} AS exs_rv`
          + ` FROM ${quoteTable(table)} t WHERE t.${quoteIdent(key.name)} = CAST(s.exs_key AS ${baseTypeOf(key)}) OFFSET 0) t FOR UPDATE OF t)`
          + ` SELECT json_agg(json_build_array(k.exs_ord, ${claimed.map((col) => asText(`s.${col}`)).join(', ')}, r.exs_key IS NOT NULL,`
          + ` ${jsonValues(columns.map((col, i) => readAs(col, `r.${values[i]}`)))}, r.exs_rv) ORDER BY k.exs_ord) AS exs_rows`
          + ` FROM exs_k k JOIN exs_c s ON s.exs_key = k.exs_key LEFT JOIN exs_r r ON r.exs_key = k.exs_key`;
      },
      upsertRows(table, columns, returned, rowVersions = true) {
        const [key] = columns;
        const names = columns.map((col) => quoteIdent(col.name));
        const updated = names.slice(1);
        const conflict = updated.length > 0 ? `DO UPDATE SET ${updated.map((col) => `${col} = excluded.${col}`).join(', ')}` : 'DO NOTHING';
        const values = returned.map((_, i) => `exs_v${i}`);
        // Rows travel as one JSON array of objects; json_populate_record reads each value with its
        // column's own type, so no type is named here (enums, domains, arrays, bit(n) included).
        return `WITH exs_in AS (SELECT e.exs_ord, r.* FROM json_array_elements(CAST(? AS json)) WITH ORDINALITY AS e (exs_value, exs_ord),`
          + ` LATERAL json_populate_record(NULL::${quoteTable(table)}, e.exs_value) AS r),`
          + ` exs_w AS (INSERT INTO ${quoteTable(table)} AS t (${names.join(', ')}) SELECT ${names.join(', ')} FROM exs_in ORDER BY exs_ord`
          + ` ON CONFLICT (${quoteIdent(key.name)}) ${conflict}`
          + ` RETURNING ${returned.map((col, i) => `t.${quoteIdent(col.name)} AS ${values[i]}`).join(', ')}, ${rowVersions ? rowVersion('t') : 'NULL'} AS exs_rv)`
          + ` SELECT json_agg(json_build_array(i.exs_ord, ${jsonValues(returned.map((col, n) => readAs(col, `w.${values[n]}`)))}, w.exs_rv)) AS exs_rows`
          + ` FROM exs_w w JOIN exs_in i ON w.${values[0]} = i.${quoteIdent(key.name)}`;
      },
      writeKnown(state, table, columns, returned, guard) {
        const { c, table: stateTable } = stateParts(state);
        const [key] = columns;
        const target = quoteTable(table);
        const names = columns.map((col) => quoteIdent(col.name));
        const keyName = names[0];
        const typedKey = (ref: string) => `CAST(${ref} AS ${baseTypeOf(key)})`;
        const updated = names.slice(1);
        const conflict = updated.length > 0 ? `DO UPDATE SET ${updated.map((col) => `${col} = excluded.${col}`).join(', ')}` : 'DO NOTHING';
        const values = returned.map((_, i) => `exs_v${i}`);
        const [version, tiebreak, fingerprint, writtenText, updatedAt] = ['o.nv', 'o.nt', 'o.nf', 'o.nw', 'o.nu'];
        /** The new state rows of the passed records whose state row existed (`IS NOT NULL`) or not, in key order. */
        const saveState = (known: string, onConflict: string) => `INSERT INTO ${stateTable} (${c.job_id}, ${c.record_key}, ${c.version}, ${c.tiebreak}, ${c.fingerprint}, ${c.written}, ${c.updated_at})`
          + ` SELECT j.exs_job, o.exs_key, ${version}, ${tiebreak}, ${fingerprint}, ${writtenText}, ${updatedAt} FROM exs_ok o, exs_j j`
          + ` WHERE o.exs_sf ${known} ORDER BY o.exs_key ON CONFLICT (${c.job_id}, ${c.record_key}) ${onConflict} RETURNING ${c.record_key}`;
        // In lock()'s order: existing state rows in key order, then destination rows, each locked
        // only once its record's state row is. A missing state row is inserted after the locks, in
        // key order (the answer's count reads it before the rows are written); one that another
        // runtime inserted meanwhile is not overwritten (ON CONFLICT DO NOTHING), and fails the
        // statement.
        // json_to_recordset reads each record's text once (each ->> would parse it again).
        return `WITH exs_in AS (SELECT e.o AS exs_ord, e.k AS exs_key, e.sf AS exs_sf, e.sv AS exs_sv, e.st AS exs_st, e.rv AS exs_was, e.w = 1 AS exs_w,`
          + ` e.r AS exs_r, e.nv, e.nt, e.nf, e.nw, e.nu FROM json_to_recordset(CAST(? AS json))`
          + ` AS e (o bigint, k text, sf text, sv text, st text, rv text, w integer, r json, nv text, nt text, nf text, nw text, nu text)),`
          + ` exs_j AS (SELECT CAST(? AS text) AS exs_job),`
          // Key by key, as in the lock statement: a plan made before the state table had statistics
          // read every state row of the job otherwise. The rows are locked as the loop reaches them,
          // so the loop runs in key order (the records come grouped by the columns they write).
          // Every other read of the state table or the destination here is by key too: a LATERAL
          // or an EXISTS that OFFSET 0 keeps a loop (not a join, nor a hash of the whole table).
          + ` exs_s AS (SELECT i.* FROM (SELECT * FROM exs_in WHERE exs_sf IS NOT NULL ORDER BY exs_key) i CROSS JOIN LATERAL (SELECT * FROM ${stateTable} s WHERE s.${c.job_id} = (SELECT exs_job FROM exs_j)`
          + ` AND s.${c.record_key} = i.exs_key AND s.${c.fingerprint} = i.exs_sf AND s.${c.tiebreak} = i.exs_st AND s.${c.version} IS NOT DISTINCT FROM i.exs_sv`
          + ` AND s.${c.parked} IS NULL OFFSET 0) s ORDER BY s.${c.record_key} FOR UPDATE OF s),`
          + ` exs_a AS (SELECT i.* FROM exs_in i, exs_j j WHERE i.exs_sf IS NULL`
          + ` AND NOT EXISTS (SELECT 1 FROM ${stateTable} s WHERE s.${c.job_id} = j.exs_job AND s.${c.record_key} = i.exs_key OFFSET 0)),`
          + ` exs_c AS (SELECT * FROM exs_s UNION ALL SELECT * FROM exs_a),`
          + (guard ? ` exs_g AS (SELECT ${guard} AS exs_held),` : '')
          + ` exs_t AS (SELECT s.exs_ord FROM (SELECT * FROM exs_c ORDER BY exs_key) s CROSS JOIN LATERAL (SELECT 1 FROM ${target} t`
          + ` WHERE t.${keyName} = ${typedKey('s.exs_key')} AND ${rowVersion('t')} = s.exs_was OFFSET 0) t FOR UPDATE OF t),`
          // Joins of these CTEs are planned blind (no statistics) and became nested loops over all
          // pairs: the statement filters by hashed subplans instead.
          + ` exs_ok AS (SELECT s.* FROM exs_c s WHERE (s.exs_ord IN (SELECT exs_ord FROM exs_t)`
          + ` OR (s.exs_was IS NULL AND NOT EXISTS (SELECT 1 FROM ${target} t WHERE t.${keyName} = ${typedKey('s.exs_key')} OFFSET 0)))`
          + `${guard ? ' AND (SELECT exs_held FROM exs_g)' : ''}),`
          // The rows to write, each read by its columns' own types (upsertRows()), the key among them.
          + ` exs_r AS (SELECT o.exs_ord, r.* FROM exs_ok o, LATERAL json_populate_record(NULL::${target}, o.exs_r) AS r WHERE o.exs_w),`
          + ` exs_w AS (INSERT INTO ${target} AS t (${names.join(', ')}) SELECT ${names.map((n) => `r.${n}`).join(', ')}`
          + ` FROM exs_r r ORDER BY r.exs_ord`
          + ` ON CONFLICT (${keyName}) ${conflict}`
          + ` RETURNING ${returned.map((col, i) => `t.${quoteIdent(col.name)} AS ${values[i]}`).join(', ')}, ${rowVersion('t')} AS exs_rv),`
          // The state rows locked above are written over as an insert that meets them (its arbiter
          // index finds each by key, whatever the plan), not an UPDATE joined to them.
          + ` exs_su AS (${saveState('IS NOT NULL', `DO UPDATE SET ${[c.version, c.tiebreak, c.fingerprint, c.written, c.updated_at].map((col) => `${col} = excluded.${col}`).join(', ')}`)}),`
          + ` exs_si AS (${saveState('IS NULL', 'DO NOTHING')})`
          // Written rows are matched to their records by the key as the table stores and compares it,
          // as upsertRows() does (a batch here is small: the caller sends at most a few dozen).
          // A passed record whose new state row another runtime inserted meanwhile would have its row
          // written without its state: the statement then fails (an impossible cast, evaluated only
          // then), so that nothing of it stays.
          + ` SELECT json_build_array(CASE WHEN (SELECT count(*) FROM exs_ok) = (SELECT count(*) FROM exs_su) + (SELECT count(*) FROM exs_si) THEN true`
          + ` ELSE CAST('exs: state rows appeared meanwhile: ' || CAST((SELECT count(*) FROM exs_ok) AS text) AS boolean) END,`
          + ` (SELECT json_agg(o.exs_ord) FROM exs_ok o),`
          + ` (SELECT json_agg(json_build_array(r.exs_ord, ${jsonValues(returned.map((col, n) => readAs(col, `w.${values[n]}`)))}, w.exs_rv))`
          + ` FROM exs_w w JOIN exs_r r ON w.${values[0]} = r.${keyName})${guard ? ', (SELECT exs_held FROM exs_g)' : ''})`
          + ` AS exs_rows`;
      },
      saveStates(state) {
        const { c, table } = stateParts(state);
        const columns = stateRowColumns(c);
        return `INSERT INTO ${table} (${columns.join(', ')}) SELECT CAST(? AS text), s.k, s.v, s.t, s.f, CAST(s.w AS text), CAST(s.p AS text), s.u`
          + ' FROM json_to_recordset(CAST(? AS json)) AS s (k text, v text, t text, f text, w json, p json, u text)'
          + ` ON CONFLICT (${c.job_id}, ${c.record_key}) DO UPDATE SET ${columns.slice(2).map((col) => `${col} = excluded.${col}`).join(', ')}`;
      },
    };
  }

  return {
    name: syntax.name,
    quoteIdent,
    quoteTable,
    selectByKeyForUpdate,
    createStateTable,
    claimState,
    updateState,
    listParked,
    batch: batchSql(),
    upsert,
    sessionSetup: syntax.sessionSetup,
    currentSchemaQuery: syntax.currentSchemaQuery,
    schemaIsCatalog: syntax.schemaIsCatalog ?? false,
  };
}

export const DIALECTS: Readonly<Record<DialectName, SqlDialect>> = {
  postgresql: buildDialect(SYNTAX.postgresql),
  mysql: buildDialect(SYNTAX.mysql),
  sqlite: buildDialect(SYNTAX.sqlite),
  sqlserver: buildDialect(SYNTAX.sqlserver),
  db2: buildDialect(SYNTAX.db2),
};

/** `PERMIT_TABLE` -> [`PERMIT_TABLE`]; `LEGACY.PERMIT_TABLE` -> [`LEGACY`, `PERMIT_TABLE`]. */
export function splitTableName(table: string): string[] {
  const parts = table.split('.');
  if (parts.length > 2) throw new Error(`invalid table name '${table}': expected TABLE or SCHEMA.TABLE`);
  parts.forEach(assertIdentifier);
  return parts;
}

// Matched against driver names (`PostgreSQL Unicode`, `libmsodbcsql-18.so`), DBMS names and version
// banners (`10.11.6-MariaDB`, `Microsoft SQL Server 2019`, `DB2 v11.5`).
const DIALECT_PATTERNS: Array<[RegExp, DialectName]> = [
  [/postgres|psqlodbc/i, 'postgresql'],
  [/mariadb|mysql|maodbc|myodbc/i, 'mysql'],
  [/sqlite/i, 'sqlite'],
  [/sql ?server|msodbcsql|freetds|tdsodbc/i, 'sqlserver'],
  [/db2|\bibm\b/i, 'db2'],
];

export function detectDialect(dbmsOrDriverName: string): DialectName | undefined {
  return DIALECT_PATTERNS.find(([pattern]) => pattern.test(dbmsOrDriverName))?.[1];
}

// ODBC SQL type codes (sql.h / sqlext.h) as SQLColumns reports them in DATA_TYPE.
const NUMBER_TYPES = new Set([-7 /* BIT */, -6 /* TINYINT */, -5 /* BIGINT */, 2 /* NUMERIC */, 3 /* DECIMAL */,
  4 /* INTEGER */, 5 /* SMALLINT */, 6 /* FLOAT */, 7 /* REAL */, 8 /* DOUBLE */]);
const FIXED_TEXT_TYPES = new Set([1 /* CHAR */, -8 /* WCHAR */]);
const TEXT_TYPES = new Set([12 /* VARCHAR */, -1 /* LONGVARCHAR */, -9 /* WVARCHAR */, -10 /* WLONGVARCHAR */]);
const TIMESTAMP_TYPES = new Set([93 /* TYPE_TIMESTAMP */, 11 /* ODBC 2 TIMESTAMP */]);

export function columnKind(odbcDataType: number, typeName: string): ColumnKind {
  // By name too: SQL Server's datetimeoffset has a driver-specific code, SQLite reports what was declared.
  if (TIMESTAMP_TYPES.has(odbcDataType) || /timestamp|datetime/i.test(typeName)) return 'timestamp';
  if (NUMBER_TYPES.has(odbcDataType)) return 'number';
  if (FIXED_TEXT_TYPES.has(odbcDataType)) return 'fixed-text';
  if (TEXT_TYPES.has(odbcDataType)) return 'text';
  return 'other';
}

const SIZED_TYPES = /^(n?char|n?varchar|varchar2|character|character varying|varbinary|binary|graphic|vargraphic)$/i;
const PRECISION_TYPES = /^(decimal|numeric|dec)$/i;

/** The declared type in SQL, from SQLColumns' TYPE_NAME, COLUMN_SIZE and DECIMAL_DIGITS. */
export function declaredSqlType(typeName: string, columnSize: number | null, decimalDigits: number | null): string {
  if (typeName.includes('(')) return typeName; // SQLite reports the declaration itself
  if (SIZED_TYPES.test(typeName)) return `${typeName}(${columnSize || 'max'})`;
  if (PRECISION_TYPES.test(typeName) && columnSize) return `${typeName}(${columnSize}, ${decimalDigits ?? 0})`;
  return typeName;
}

function invalidTimestamp(value: unknown): Error {
  const shown = typeof value === 'string' ? `'${value}'` : typeof value === 'object' ? JSON.stringify(value) : String(value);
  return new Error(`not a timestamp: ${shown} (expected ${TIMESTAMP_FORMS})`);
}

/**
 * Canonical UTC text `YYYY-MM-DD HH:MM:SS.ffffff`, which every dialect casts without losing
 * microseconds. Reads what the mapping's `timestamp` transform reads (nodes/core/time.ts), so the
 * connector, the mapper and the conflict law agree on what a time is.
 */
export function toSqlTimestampText(value: unknown): string {
  if (typeof value === 'string' && isCanonicalTimestamp(value)) return value; // already as bound
  const instant = parseInstant(value);
  if (!instant) throw invalidTimestamp(value);
  return formatInstant(instant, CANONICAL_TIMESTAMP);
}
