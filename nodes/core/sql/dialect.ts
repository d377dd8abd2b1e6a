// SQL text for each destination family. Builders only ever emit `?` placeholders: values are
// bound by the driver, never spliced into the text, and every identifier is validated first.
import { CANONICAL_TIMESTAMP, TIMESTAMP_FORMS, formatInstant, parseInstant } from '../time';

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
}

export interface SqlDialect {
  readonly name: DialectName;
  quoteIdent(name: string): string;
  /** `TABLE` or `SCHEMA.TABLE`, each part validated and quoted. */
  quoteTable(table: string): string;
  /** `SELECT <columns> FROM <table> WHERE <key> = ?`. */
  selectByKey(table: string, keyColumn: string, columns: string[]): string;
  /**
   * Insert-or-update of one row; parameters in the order of `columns`, which must include the key.
   * With a `guard`, an existing row is only updated when the event is not older than it, decided by
   * the database inside this one statement (LAST_WRITE_WINS); without one, the event always wins.
   */
  upsert(table: string, keyColumn: string, columns: ColumnInfo[], guard?: UpsertGuard): string;
  /**
   * Run once on every new connection so timestamps travel as UTC both ways: PostgreSQL `timestamptz`
   * and MySQL `TIMESTAMP` otherwise convert through the server's local zone.
   */
  readonly sessionSetup?: string;
  /** Names the schema (or, on MySQL, the database) that unqualified table names resolve in. */
  readonly currentSchemaQuery?: string;
  /** MySQL calls its databases catalogs in ODBC and has no schemas: `SCHEMA.TABLE` means database.table. */
  readonly schemaIsCatalog: boolean;
}

/**
 * LAST_WRITE_WINS at the destination: the row is updated only when it has no timestamp, or the
 * event's is equal or newer. The same law as resolveConflict (nodes/core/conflict.ts): an event
 * without a timestamp is the oldest (it only updates a row that has none either), and equal
 * timestamps write, so a redelivered event is idempotent. A new key is always inserted.
 */
export interface UpsertGuard {
  /**
   * The destination column holding the record's last-change time. When it is not among the
   * upsert's columns (the event carries no time), only a row without a time is updated.
   * Compared in the column's own type: instants for timestamp columns, and as numbers or text
   * otherwise, which orders a compact legacy stamp (YYYYMMDDHHmmss) correctly when every value
   * of the column has the same width. SQLite stores timestamps as text: canonical
   * `YYYY-MM-DD HH:MM:SS.ffffff` text (what EXS writes) compares in time order.
   */
  timestampColumn: string;
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
  sessionSetup?: string;
  currentSchemaQuery?: string;
  schemaIsCatalog?: boolean;
}

// Timestamps arrive as canonical UTC text (toSqlTimestampText) and the server casts it, so no driver
// converts them: psqlODBC turns `2026-03-01T10:00:00.123Z` into midnight and ignores offsets, and
// FIELD-NOTES saw it drop fractions.
const castTimestampText = (type: string) => `CAST(CAST(? AS VARCHAR(40)) AS ${type})`;

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
    sessionSetup: "SET TIME ZONE 'UTC'",
    currentSchemaQuery: 'SELECT current_schema()',
  },
  mysql: {
    name: 'mysql', open: '`', close: '`', upsert: 'on-duplicate-key',
    parameter: (c) => (c.kind === 'timestamp' ? 'CAST(? AS DATETIME(6))' : '?'),
    sessionSetup: "SET time_zone = '+00:00'",
    currentSchemaQuery: 'SELECT DATABASE()',
    schemaIsCatalog: true,
  },
  sqlite: {
    // SQLite has no timestamp type: the canonical text is stored as it is and sorts in time order.
    name: 'sqlite', open: '"', close: '"', upsert: 'on-conflict',
    parameter: () => '?',
  },
  sqlserver: {
    name: 'sqlserver', open: '[', close: ']', upsert: 'merge',
    parameter: (c) => castToDeclaredType(c, 'DATETIME2(7)'),
    currentSchemaQuery: 'SELECT SCHEMA_NAME()',
  },
  db2: {
    name: 'db2', open: '"', close: '"', upsert: 'merge',
    parameter: (c) => castToDeclaredType(c, 'TIMESTAMP(6)'),
    currentSchemaQuery: 'SELECT CURRENT SCHEMA FROM SYSIBM.SYSDUMMY1',
  },
};

function buildDialect(syntax: DialectSyntax): SqlDialect {
  const quoteIdent = (name: string): string => {
    assertIdentifier(name);
    return `${syntax.open}${name}${syntax.close}`;
  };
  const quoteTable = (table: string): string => splitTableName(table).map(quoteIdent).join('.');

  function upsert(table: string, keyColumn: string, columns: ColumnInfo[], guard?: UpsertGuard): string {
    const key = quoteIdent(keyColumn);
    if (!columns.some((c) => c.name === keyColumn)) {
      throw new Error(`upsert into ${table}: the columns must include the key column '${keyColumn}'`);
    }
    const names = columns.map((c) => quoteIdent(c.name));
    let updatedColumns = columns.filter((c) => c.name !== keyColumn);
    if (updatedColumns.length === 0) throw new Error(`upsert into ${table}: no column to write besides the key '${keyColumn}'`);
    const target = quoteTable(table);
    const parameters = columns.map(syntax.parameter).join(', ');

    const ts = guard ? quoteIdent(guard.timestampColumn) : undefined;
    if (guard && guard.timestampColumn === keyColumn) {
      throw new Error(`upsert into ${table}: the key '${keyColumn}' cannot be the LAST_WRITE_WINS timestamp column`);
    }
    const eventHasTime = guard !== undefined && columns.some((c) => c.name === guard.timestampColumn);
    if (guard && eventHasTime) {
      // The time column last, for MariaDB (below).
      const isTime = (c: ColumnInfo) => c.name === guard.timestampColumn;
      updatedColumns = [...updatedColumns.filter((c) => !isTime(c)), ...updatedColumns.filter(isTime)];
    }
    const updated = updatedColumns.map((c) => quoteIdent(c.name));
    /** `row` and `event` name the existing row's and the incoming row's time. */
    const newerOrEqual = (row: string, event: string) => (eventHasTime ? `${row} IS NULL OR ${event} >= ${row}` : `${row} IS NULL`);

    switch (syntax.upsert) {
      case 'on-conflict': {
        // The alias names the existing row in the WHERE; `excluded` is the row the event brings.
        const alias = guard ? ' AS t' : '';
        const where = ts ? ` WHERE ${newerOrEqual(`t.${ts}`, `excluded.${ts}`)}` : '';
        return `INSERT INTO ${target}${alias} (${names.join(', ')}) VALUES (${parameters})`
          + ` ON CONFLICT (${key}) DO UPDATE SET ${updated.map((c) => `${c} = excluded.${c}`).join(', ')}${where}`;
      }
      case 'on-duplicate-key': {
        // No WHERE here: each column keeps its own value unless the guard holds. MariaDB and MySQL
        // assign left to right and a later IF sees earlier assignments, so the time column is
        // assigned last (above) and every IF reads the row's old time.
        const assign = ts
          ? (c: string) => `${c} = IF(${newerOrEqual(ts, `VALUES(${ts})`)}, VALUES(${c}), ${c})`
          : (c: string) => `${c} = VALUES(${c})`;
        return `INSERT INTO ${target} (${names.join(', ')}) VALUES (${parameters})`
          + ` ON DUPLICATE KEY UPDATE ${updated.map(assign).join(', ')}`;
      }
      case 'merge': {
        // HOLDLOCK: without it two concurrent MERGEs on a new key can both take the insert branch.
        const hint = syntax.name === 'sqlserver' ? ' WITH (HOLDLOCK)' : '';
        const end = syntax.name === 'sqlserver' ? ';' : '';
        const matched = ts ? `WHEN MATCHED AND (${newerOrEqual(`t.${ts}`, `s.${ts}`)})` : 'WHEN MATCHED';
        return `MERGE INTO ${target}${hint} AS t USING (VALUES (${parameters})) AS s (${names.join(', ')})`
          + ` ON t.${key} = s.${key}`
          + ` ${matched} THEN UPDATE SET ${updated.map((c) => `${c} = s.${c}`).join(', ')}`
          + ` WHEN NOT MATCHED THEN INSERT (${names.join(', ')}) VALUES (${names.map((c) => `s.${c}`).join(', ')})${end}`;
      }
    }
  }

  return {
    name: syntax.name,
    quoteIdent,
    quoteTable,
    selectByKey: (table, keyColumn, columns) =>
      `SELECT ${columns.map(quoteIdent).join(', ')} FROM ${quoteTable(table)} WHERE ${quoteIdent(keyColumn)} = ?`,
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
  const instant = parseInstant(value);
  if (!instant) throw invalidTimestamp(value);
  return formatInstant(instant, CANONICAL_TIMESTAMP);
}
