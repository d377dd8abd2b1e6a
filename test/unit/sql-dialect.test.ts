// SQL text per dialect, timestamp text, driver error classification and connection strings:
// everything about the ODBC destination that needs no database.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  DIALECTS,
  columnKind,
  declaredSqlType,
  detectDialect,
  toSqlTimestampText,
  type ColumnInfo,
  type DialectName,
} from '../../nodes/core/sql/dialect';
import { DbError, classifyDbError, toDbError } from '../../nodes/core/sql/errors';
import { driverNameOf, withCredentials } from '../../nodes/core/sql/odbc-pool';

const PERMIT_COLUMNS: ColumnInfo[] = [
  { name: 'PERMIT_ID', kind: 'text', sqlType: 'varchar(20)' },
  { name: 'PERMIT_STAT', kind: 'text', sqlType: 'varchar(8)' },
  { name: 'LAST_CHG_TS', kind: 'timestamp', sqlType: 'timestamp' },
];

describe('upsert SQL', () => {
  const golden: Record<DialectName, string> = {
    postgresql:
      'INSERT INTO "PERMIT_TABLE" ("PERMIT_ID", "PERMIT_STAT", "LAST_CHG_TS") VALUES (?, ?, CAST(CAST(? AS VARCHAR(40)) AS TIMESTAMP))'
      + ' ON CONFLICT ("PERMIT_ID") DO UPDATE SET "PERMIT_STAT" = excluded."PERMIT_STAT", "LAST_CHG_TS" = excluded."LAST_CHG_TS"',
    mysql:
      'INSERT INTO `PERMIT_TABLE` (`PERMIT_ID`, `PERMIT_STAT`, `LAST_CHG_TS`) VALUES (?, ?, CAST(? AS DATETIME(6)))'
      + ' ON DUPLICATE KEY UPDATE `PERMIT_STAT` = VALUES(`PERMIT_STAT`), `LAST_CHG_TS` = VALUES(`LAST_CHG_TS`)',
    sqlite:
      'INSERT INTO "PERMIT_TABLE" ("PERMIT_ID", "PERMIT_STAT", "LAST_CHG_TS") VALUES (?, ?, ?)'
      + ' ON CONFLICT ("PERMIT_ID") DO UPDATE SET "PERMIT_STAT" = excluded."PERMIT_STAT", "LAST_CHG_TS" = excluded."LAST_CHG_TS"',
    sqlserver:
      'MERGE INTO [PERMIT_TABLE] WITH (HOLDLOCK) AS t USING (VALUES (CAST(? AS varchar(20)), CAST(? AS varchar(8)),'
      + ' CAST(CAST(? AS VARCHAR(40)) AS DATETIME2(7)))) AS s ([PERMIT_ID], [PERMIT_STAT], [LAST_CHG_TS])'
      + ' ON t.[PERMIT_ID] = s.[PERMIT_ID]'
      + ' WHEN MATCHED THEN UPDATE SET [PERMIT_STAT] = s.[PERMIT_STAT], [LAST_CHG_TS] = s.[LAST_CHG_TS]'
      + ' WHEN NOT MATCHED THEN INSERT ([PERMIT_ID], [PERMIT_STAT], [LAST_CHG_TS]) VALUES (s.[PERMIT_ID], s.[PERMIT_STAT], s.[LAST_CHG_TS]);',
    db2:
      'MERGE INTO "PERMIT_TABLE" AS t USING (VALUES (CAST(? AS varchar(20)), CAST(? AS varchar(8)),'
      + ' CAST(CAST(? AS VARCHAR(40)) AS TIMESTAMP(6)))) AS s ("PERMIT_ID", "PERMIT_STAT", "LAST_CHG_TS")'
      + ' ON t."PERMIT_ID" = s."PERMIT_ID"'
      + ' WHEN MATCHED THEN UPDATE SET "PERMIT_STAT" = s."PERMIT_STAT", "LAST_CHG_TS" = s."LAST_CHG_TS"'
      + ' WHEN NOT MATCHED THEN INSERT ("PERMIT_ID", "PERMIT_STAT", "LAST_CHG_TS") VALUES (s."PERMIT_ID", s."PERMIT_STAT", s."LAST_CHG_TS")',
  };
  for (const [name, sql] of Object.entries(golden)) {
    it(`${name}, HMS_WINS: insert-or-update with a timestamp cast that keeps microseconds`, () => {
      assert.equal(DIALECTS[name as DialectName].upsert('PERMIT_TABLE', 'PERMIT_ID', PERMIT_COLUMNS), sql);
    });
  }

  // LAST_WRITE_WINS: the destination decides in the same statement. The guard is the law of
  // resolveConflict: a row without a time takes any event, an event without one is the oldest,
  // equal times write.
  const guarded: Record<DialectName, string> = {
    postgresql:
      'INSERT INTO "PERMIT_TABLE" AS t ("PERMIT_ID", "PERMIT_STAT", "LAST_CHG_TS") VALUES (?, ?, CAST(CAST(? AS VARCHAR(40)) AS TIMESTAMP))'
      + ' ON CONFLICT ("PERMIT_ID") DO UPDATE SET "PERMIT_STAT" = excluded."PERMIT_STAT", "LAST_CHG_TS" = excluded."LAST_CHG_TS"'
      + ' WHERE t."LAST_CHG_TS" IS NULL OR excluded."LAST_CHG_TS" >= t."LAST_CHG_TS"',
    mysql:
      'INSERT INTO `PERMIT_TABLE` (`PERMIT_ID`, `PERMIT_STAT`, `LAST_CHG_TS`) VALUES (?, ?, CAST(? AS DATETIME(6)))'
      + ' ON DUPLICATE KEY UPDATE'
      + ' `PERMIT_STAT` = IF(`LAST_CHG_TS` IS NULL OR VALUES(`LAST_CHG_TS`) >= `LAST_CHG_TS`, VALUES(`PERMIT_STAT`), `PERMIT_STAT`),'
      + ' `LAST_CHG_TS` = IF(`LAST_CHG_TS` IS NULL OR VALUES(`LAST_CHG_TS`) >= `LAST_CHG_TS`, VALUES(`LAST_CHG_TS`), `LAST_CHG_TS`)',
    sqlite:
      'INSERT INTO "PERMIT_TABLE" AS t ("PERMIT_ID", "PERMIT_STAT", "LAST_CHG_TS") VALUES (?, ?, ?)'
      + ' ON CONFLICT ("PERMIT_ID") DO UPDATE SET "PERMIT_STAT" = excluded."PERMIT_STAT", "LAST_CHG_TS" = excluded."LAST_CHG_TS"'
      + ' WHERE t."LAST_CHG_TS" IS NULL OR excluded."LAST_CHG_TS" >= t."LAST_CHG_TS"',
    sqlserver:
      'MERGE INTO [PERMIT_TABLE] WITH (HOLDLOCK) AS t USING (VALUES (CAST(? AS varchar(20)), CAST(? AS varchar(8)),'
      + ' CAST(CAST(? AS VARCHAR(40)) AS DATETIME2(7)))) AS s ([PERMIT_ID], [PERMIT_STAT], [LAST_CHG_TS])'
      + ' ON t.[PERMIT_ID] = s.[PERMIT_ID]'
      + ' WHEN MATCHED AND (t.[LAST_CHG_TS] IS NULL OR s.[LAST_CHG_TS] >= t.[LAST_CHG_TS])'
      + ' THEN UPDATE SET [PERMIT_STAT] = s.[PERMIT_STAT], [LAST_CHG_TS] = s.[LAST_CHG_TS]'
      + ' WHEN NOT MATCHED THEN INSERT ([PERMIT_ID], [PERMIT_STAT], [LAST_CHG_TS]) VALUES (s.[PERMIT_ID], s.[PERMIT_STAT], s.[LAST_CHG_TS]);',
    db2:
      'MERGE INTO "PERMIT_TABLE" AS t USING (VALUES (CAST(? AS varchar(20)), CAST(? AS varchar(8)),'
      + ' CAST(CAST(? AS VARCHAR(40)) AS TIMESTAMP(6)))) AS s ("PERMIT_ID", "PERMIT_STAT", "LAST_CHG_TS")'
      + ' ON t."PERMIT_ID" = s."PERMIT_ID"'
      + ' WHEN MATCHED AND (t."LAST_CHG_TS" IS NULL OR s."LAST_CHG_TS" >= t."LAST_CHG_TS")'
      + ' THEN UPDATE SET "PERMIT_STAT" = s."PERMIT_STAT", "LAST_CHG_TS" = s."LAST_CHG_TS"'
      + ' WHEN NOT MATCHED THEN INSERT ("PERMIT_ID", "PERMIT_STAT", "LAST_CHG_TS") VALUES (s."PERMIT_ID", s."PERMIT_STAT", s."LAST_CHG_TS")',
  };
  const lww = { timestampColumn: 'LAST_CHG_TS' };
  for (const [name, sql] of Object.entries(guarded)) {
    it(`${name}, LAST_WRITE_WINS: the update is guarded by the row's timestamp in the same statement`, () => {
      assert.equal(DIALECTS[name as DialectName].upsert('PERMIT_TABLE', 'PERMIT_ID', PERMIT_COLUMNS, lww), sql);
    });
  }

  it('MariaDB assigns the timestamp column last, so every IF compares against the old time', () => {
    const tsFirst = [PERMIT_COLUMNS[0], PERMIT_COLUMNS[2], PERMIT_COLUMNS[1]];
    const sql = DIALECTS.mysql.upsert('PERMIT_TABLE', 'PERMIT_ID', tsFirst, lww);
    assert.match(sql, /^INSERT INTO `PERMIT_TABLE` \(`PERMIT_ID`, `LAST_CHG_TS`, `PERMIT_STAT`\) VALUES \(\?, CAST\(\? AS DATETIME\(6\)\), \?\)/);
    assert.match(sql, /ON DUPLICATE KEY UPDATE `PERMIT_STAT` = IF\(.*\), `LAST_CHG_TS` = IF\([^,]*, VALUES\(`LAST_CHG_TS`\), `LAST_CHG_TS`\)$/);
    // The other dialects read the old row whatever the order; they keep the same one for one cache entry per shape.
    assert.match(DIALECTS.postgresql.upsert('T', 'PERMIT_ID', tsFirst, lww), /SET "PERMIT_STAT" = excluded."PERMIT_STAT", "LAST_CHG_TS" = excluded."LAST_CHG_TS" WHERE/);
  });

  it('LAST_WRITE_WINS for an event without the timestamp column only updates a row that has no time either', () => {
    const noTime = PERMIT_COLUMNS.slice(0, 2);
    assert.equal(
      DIALECTS.postgresql.upsert('PERMIT_TABLE', 'PERMIT_ID', noTime, lww),
      'INSERT INTO "PERMIT_TABLE" AS t ("PERMIT_ID", "PERMIT_STAT") VALUES (?, ?)'
      + ' ON CONFLICT ("PERMIT_ID") DO UPDATE SET "PERMIT_STAT" = excluded."PERMIT_STAT" WHERE t."LAST_CHG_TS" IS NULL',
    );
    assert.equal(
      DIALECTS.mysql.upsert('PERMIT_TABLE', 'PERMIT_ID', noTime, lww),
      'INSERT INTO `PERMIT_TABLE` (`PERMIT_ID`, `PERMIT_STAT`) VALUES (?, ?)'
      + ' ON DUPLICATE KEY UPDATE `PERMIT_STAT` = IF(`LAST_CHG_TS` IS NULL, VALUES(`PERMIT_STAT`), `PERMIT_STAT`)',
    );
    assert.match(DIALECTS.sqlite.upsert('PERMIT_TABLE', 'PERMIT_ID', noTime, lww), / WHERE t\."LAST_CHG_TS" IS NULL$/);
    assert.match(DIALECTS.sqlserver.upsert('PERMIT_TABLE', 'PERMIT_ID', noTime, lww), / WHEN MATCHED AND \(t\.\[LAST_CHG_TS\] IS NULL\) THEN /);
    assert.match(DIALECTS.db2.upsert('PERMIT_TABLE', 'PERMIT_ID', noTime, lww), / WHEN MATCHED AND \(t\."LAST_CHG_TS" IS NULL\) THEN /);
  });

  it('qualifies a guarded SCHEMA.TABLE and refuses a guard on the key or an invalid column name', () => {
    assert.match(DIALECTS.postgresql.upsert('legacy.permit_table', 'PERMIT_ID', PERMIT_COLUMNS, lww), /^INSERT INTO "legacy"\."permit_table" AS t /);
    assert.throws(() => DIALECTS.postgresql.upsert('T', 'PERMIT_ID', PERMIT_COLUMNS, { timestampColumn: 'PERMIT_ID' }), /cannot be the LAST_WRITE_WINS timestamp column/);
    for (const dialect of Object.values(DIALECTS)) {
      assert.throws(() => dialect.upsert('T', 'PERMIT_ID', PERMIT_COLUMNS, { timestampColumn: 'TS) OR (1=1' }), /invalid SQL identifier/);
    }
  });

  it('qualifies a SCHEMA.TABLE name part by part', () => {
    assert.match(DIALECTS.postgresql.upsert('legacy.permit_table', 'PERMIT_ID', PERMIT_COLUMNS), /^INSERT INTO "legacy"\."permit_table" /);
    assert.match(DIALECTS.sqlserver.upsert('dbo.PERMIT_TABLE', 'PERMIT_ID', PERMIT_COLUMNS), /^MERGE INTO \[dbo\]\.\[PERMIT_TABLE\] /);
  });

  it('needs the key among the columns and something to write besides it', () => {
    assert.throws(() => DIALECTS.postgresql.upsert('T', 'ID', PERMIT_COLUMNS), /must include the key column 'ID'/);
    assert.throws(() => DIALECTS.postgresql.upsert('T', 'PERMIT_ID', PERMIT_COLUMNS.slice(0, 1)), /no column to write besides the key/);
  });

  it('refuses to splice a catalog type that is not a plain type name into a MERGE', () => {
    const odd: ColumnInfo[] = [PERMIT_COLUMNS[0], { name: 'NOTE', kind: 'other', sqlType: 'int); DROP TABLE x; --' }];
    assert.throws(() => DIALECTS.db2.upsert('T', 'PERMIT_ID', odd), /column 'NOTE' has a type the MERGE cannot cast to/);
  });
});

describe('select by key SQL', () => {
  const golden: Record<DialectName, string> = {
    postgresql: 'SELECT "PERMIT_ID", "PERMIT_STAT" FROM "LEGACY"."PERMIT_TABLE" WHERE "PERMIT_ID" = ?',
    mysql: 'SELECT `PERMIT_ID`, `PERMIT_STAT` FROM `LEGACY`.`PERMIT_TABLE` WHERE `PERMIT_ID` = ?',
    sqlite: 'SELECT "PERMIT_ID", "PERMIT_STAT" FROM "LEGACY"."PERMIT_TABLE" WHERE "PERMIT_ID" = ?',
    sqlserver: 'SELECT [PERMIT_ID], [PERMIT_STAT] FROM [LEGACY].[PERMIT_TABLE] WHERE [PERMIT_ID] = ?',
    db2: 'SELECT "PERMIT_ID", "PERMIT_STAT" FROM "LEGACY"."PERMIT_TABLE" WHERE "PERMIT_ID" = ?',
  };
  for (const [name, sql] of Object.entries(golden)) {
    it(name, () => {
      assert.equal(DIALECTS[name as DialectName].selectByKey('LEGACY.PERMIT_TABLE', 'PERMIT_ID', ['PERMIT_ID', 'PERMIT_STAT']), sql);
    });
  }
});

describe('identifiers', () => {
  it('quotes valid names in each dialect style', () => {
    assert.equal(DIALECTS.postgresql.quoteIdent('permit_table'), '"permit_table"');
    assert.equal(DIALECTS.mysql.quoteIdent('PERMIT$NO#'), '`PERMIT$NO#`');
    assert.equal(DIALECTS.sqlserver.quoteIdent('_x1'), '[_x1]');
  });

  it('rejects injection and anything else outside letters, digits, _, $ and #', () => {
    for (const dialect of Object.values(DIALECTS)) {
      assert.throws(() => dialect.quoteIdent('A; DROP TABLE x'), /invalid SQL identifier 'A; DROP TABLE x'/);
      assert.throws(() => dialect.quoteIdent('x"y'), /invalid SQL identifier/);
      assert.throws(() => dialect.quoteIdent('1ABC'), /invalid SQL identifier/);
      assert.throws(() => dialect.quoteIdent(''), /invalid SQL identifier/);
      assert.throws(() => dialect.selectByKey('T', 'ID', ['ID', 'X] FROM y; --']), /invalid SQL identifier/);
    }
  });

  it('accepts TABLE and SCHEMA.TABLE only', () => {
    assert.throws(() => DIALECTS.postgresql.quoteTable('a.b.c'), /expected TABLE or SCHEMA\.TABLE/);
    assert.throws(() => DIALECTS.postgresql.quoteTable('a.'), /invalid SQL identifier ''/);
  });
});

describe('detectDialect', () => {
  const cases: Array<[string, DialectName | undefined]> = [
    ['PostgreSQL Unicode', 'postgresql'],
    ['psqlodbcw.so', 'postgresql'],
    ['PostgreSQL 15.20 (Debian 15.20-0+deb12u1) on x86_64-pc-linux-gnu', 'postgresql'],
    ['MariaDB Unicode', 'mysql'],
    ['MySQL ODBC 8.0 Unicode Driver', 'mysql'],
    ['10.11.19-MariaDB-0+deb12u1', 'mysql'],
    ['SQLite3', 'sqlite'],
    ['ODBC Driver 18 for SQL Server', 'sqlserver'],
    ['libmsodbcsql-18.3.so.2.1', 'sqlserver'],
    ['IBM DB2 ODBC DRIVER', 'db2'],
    ['IBM i Access ODBC Driver', 'db2'],
    ['Oracle 19c', undefined],
  ];
  for (const [name, dialect] of cases) {
    it(`${name} -> ${dialect}`, () => assert.equal(detectDialect(name), dialect));
  }
});

describe('catalog types', () => {
  it('sorts ODBC type codes into the kinds that bind and compare differently', () => {
    assert.equal(columnKind(93, 'timestamp'), 'timestamp');
    assert.equal(columnKind(-1, 'datetime'), 'timestamp'); // SQLite reports what was declared
    assert.equal(columnKind(-155, 'datetimeoffset'), 'timestamp');
    assert.equal(columnKind(4, 'int4'), 'number');
    assert.equal(columnKind(3, 'DECIMAL'), 'number');
    assert.equal(columnKind(1, 'CHAR'), 'fixed-text');
    assert.equal(columnKind(-9, 'VARCHAR'), 'text');
    assert.equal(columnKind(91, 'date'), 'other');
  });

  it('rebuilds the declared type from TYPE_NAME, COLUMN_SIZE and DECIMAL_DIGITS', () => {
    assert.equal(declaredSqlType('VARCHAR', 20, null), 'VARCHAR(20)');
    assert.equal(declaredSqlType('nvarchar', 0, null), 'nvarchar(max)');
    assert.equal(declaredSqlType('DECIMAL', 10, 2), 'DECIMAL(10, 2)');
    assert.equal(declaredSqlType('INTEGER', 10, 0), 'INTEGER');
    assert.equal(declaredSqlType('varchar(20)', 20, 10), 'varchar(20)');
  });
});

describe('toSqlTimestampText', () => {
  const cases: Array<[unknown, string]> = [
    ['2026-03-01T10:00:00.123456Z', '2026-03-01 10:00:00.123456'],
    ['2026-03-01T10:00:00Z', '2026-03-01 10:00:00.000000'],
    ['2026-03-01T11:00:00.5+01:00', '2026-03-01 10:00:00.500000'],
    ['2026-03-01T00:30:00-0530', '2026-03-01 06:00:00.000000'],
    ['2026-03-01T00:30:00.000001+02', '2026-02-28 22:30:00.000001'],
    ['2026-03-01 10:00:00.5', '2026-03-01 10:00:00.500000'], // as PostgreSQL reads it back
    ['2026-03-01', '2026-03-01 00:00:00.000000'],
    ['2026-03-01T10:00:00.123456789Z', '2026-03-01 10:00:00.123456'],
    ['0001-01-01T00:00:00Z', '0001-01-01 00:00:00.000000'],
    [1772359200123, '2026-03-01 10:00:00.123000'],
    [-1, '1969-12-31 23:59:59.999000'],
    [new Date('2026-03-01T10:00:00.123Z'), '2026-03-01 10:00:00.123000'],
  ];
  for (const [input, expected] of cases) {
    it(`${JSON.stringify(input)} -> ${expected}`, () => assert.equal(toSqlTimestampText(input), expected));
  }

  it('rejects what is not a timestamp, saying what it expected', () => {
    for (const bad of ['2026-02-30', '2026-13-01', '2026-03-01T24:00:00Z', 'yesterday', '', NaN, true, {}]) {
      assert.throws(() => toSqlTimestampText(bad), /not a timestamp: .* \(expected ISO-8601/, String(bad));
    }
  });
});

/** node-odbc's shape: an Error with `odbcErrors`. */
function odbcError(...odbcErrors: Array<{ state: string; code: number; message: string }>): Error {
  return Object.assign(new Error('[odbc] Error executing the sql statement'), { odbcErrors });
}

describe('classifyDbError', () => {
  it('calls lost connections, timeouts and deadlocks transient', () => {
    const transient = [
      odbcError({ state: '08S01', code: 35, message: 'server closed the connection unexpectedly\n\tThis probably means...\n;\nThe connection has been lost' }),
      odbcError({ state: '08001', code: 101, message: 'connection to server at "127.0.0.1", port 5432 failed: Connection refused' }),
      odbcError({ state: 'HYT00', code: 0, message: '[Microsoft][ODBC Driver 18 for SQL Server]Query timeout expired' }),
      odbcError({ state: '40001', code: 1213, message: '[ma-3.1.15][10.11.19-MariaDB]Deadlock found when trying to get lock' }),
      odbcError({ state: '40P01', code: 1, message: 'ERROR: deadlock detected' }),
      odbcError({ state: 'HY000', code: 5, message: '[SQLite]database is locked (5)' }),
      new Error('Connection has already been closed!'),
      new Error('connection pool is closed'),
    ];
    for (const err of transient) assert.equal(classifyDbError(err).transient, true, err.message);
  });

  it('calls data, constraint and syntax errors permanent, and keeps their SQLSTATE', () => {
    const tooLong = classifyDbError(odbcError({
      state: '22001', code: 1, message: 'ERROR: value too long for type character varying(8);\nError while executing the query',
    }));
    assert.deepEqual(tooLong, { transient: false, sqlState: '22001', message: 'value too long for type character varying(8)' });

    const duplicate = classifyDbError(odbcError({ state: '23505', code: 1, message: 'ERROR: duplicate key value violates unique constraint "d1_pkey"\nDETAIL: ...' }));
    assert.equal(duplicate.transient, false);
    assert.equal(duplicate.message, 'duplicate key value violates unique constraint "d1_pkey"');

    // A deadlock word in a syntax error's text does not make it worth retrying.
    assert.equal(classifyDbError(odbcError({ state: '42601', code: 1, message: 'syntax error at or near "deadlock"' })).transient, false);
    assert.equal(classifyDbError(odbcError({ state: 'HY000', code: 19, message: '[SQLite]CHECK constraint failed: length(S) <= 8 (19)' })).transient, false);
    assert.equal(classifyDbError(odbcError({ state: '28000', code: 1045, message: "[ma-3.1.15]Access denied for user 'root'" })).transient, false);
  });

  it('strips driver brackets and reads past leading warnings', () => {
    const missingDriver = classifyDbError(odbcError({ state: '01000', code: 0, message: "[unixODBC][Driver Manager]Can't open lib 'Nope' : file not found" }));
    assert.deepEqual(missingDriver, { transient: false, sqlState: '01000', message: "Can't open lib 'Nope' : file not found" });

    const afterWarning = classifyDbError(odbcError(
      { state: '01S02', code: 0, message: '[unixODBC][Driver]Option value changed' },
      { state: '08001', code: 0, message: '[unixODBC][Driver]Could not connect to the server' },
    ));
    assert.deepEqual(afterWarning, { transient: true, sqlState: '08001', message: 'Could not connect to the server' });
  });

  it('keeps the classification through a DbError wrapper', () => {
    const wrapped = toDbError(odbcError({ state: '22001', code: 1406, message: "[ma-3.1.15][10.11.19-MariaDB]Data too long for column 'PERMIT_STAT' at row 1" }), 'mysql PERMIT_TABLE');
    assert.ok(wrapped instanceof DbError);
    assert.equal(wrapped.message, "mysql PERMIT_TABLE: Data too long for column 'PERMIT_STAT' at row 1 (SQLSTATE 22001)");
    assert.deepEqual(classifyDbError(wrapped), { transient: false, sqlState: '22001', message: "Data too long for column 'PERMIT_STAT' at row 1" });
  });
});

describe('connection strings', () => {
  it('finds the driver name, braced or not', () => {
    assert.equal(driverNameOf('DRIVER={PostgreSQL Unicode};SERVER=db'), 'PostgreSQL Unicode');
    assert.equal(driverNameOf('Server=db;Driver=SQLite3'), 'SQLite3');
    assert.equal(driverNameOf('DSN=mainframe'), undefined);
  });

  it('puts credentials in, replacing any already there and bracing what needs it', () => {
    assert.equal(withCredentials('DSN=mainframe', 'exs', 'p;w}d'), 'DSN=mainframe;UID=exs;PWD={p;w}}d}');
    assert.equal(withCredentials('UID=old;DSN=x;PWD={a;b};', 'new', 'secret'), 'DSN=x;UID=new;PWD=secret');
    assert.equal(withCredentials('DSN=x;PWD=keep'), 'DSN=x;PWD=keep');
  });
});
