// SQL text per dialect, timestamp text, driver error classification and connection strings:
// everything about the ODBC destination that needs no database.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  DIALECTS,
  arrayLiteral,
  columnKind,
  declaredSqlType,
  defaultStateTable,
  detectDialect,
  toSqlTimestampText,
  type ColumnInfo,
  type DialectName,
} from '../../nodes/core/sql/dialect';
import { DbError, classifyDbError, toDbError } from '../../nodes/core/sql/errors';
import { contentHash, decideConflict } from '../../nodes/core/conflict';
import { CONFLICT_RULES, type ConflictRule } from '../../nodes/core/types';
import { dollarQuoted, driverNameOf, withCredentials } from '../../nodes/core/sql/odbc-pool';

const PERMIT_COLUMNS: ColumnInfo[] = [
  { name: 'PERMIT_ID', kind: 'text', sqlType: 'varchar(20)' },
  { name: 'PERMIT_STAT', kind: 'text', sqlType: 'varchar(8)' },
  { name: 'LAST_CHG_TS', kind: 'timestamp', sqlType: 'timestamp' },
];

// Every rule (HMS_WINS, LAST_WRITE_WINS, DESTINATION_WINS, MANUAL) runs the same transaction: claim
// and lock the record's state row, read the destination row with a lock, decide (nodes/core/conflict.ts),
// write the columns the decision takes with the upsert above, store the new state. These are its
// statements, per dialect.
describe('conflict transaction SQL', () => {
  const state = defaultStateTable('EXS_SYNC_STATE');
  const golden: Record<DialectName, { create: string; claim: string[]; lockRow: string; update: string; parked: string }> = {
    postgresql: {
      create: 'CREATE TABLE "EXS_SYNC_STATE" ("job_id" varchar(100) NOT NULL, "record_key" varchar(300) NOT NULL, "version" varchar(40),'
        + ' "tiebreak" varchar(64) NOT NULL, "fingerprint" varchar(64) NOT NULL, "written" text NOT NULL, "parked" text,'
        + ' "updated_at" varchar(32) NOT NULL, PRIMARY KEY ("job_id", "record_key"))',
      claim: ['INSERT INTO "EXS_SYNC_STATE" ("job_id", "record_key", "tiebreak", "fingerprint", "written", "updated_at") VALUES (?, ?, \'\', \'\', \'{}\', \'\')'
        + ' ON CONFLICT ("job_id", "record_key") DO UPDATE SET "job_id" = excluded."job_id"'
        + ' RETURNING "version", "tiebreak", "fingerprint", "written", "parked"'],
      lockRow: 'SELECT "PERMIT_ID", "PERMIT_STAT", "LAST_CHG_TS" FROM "PERMIT_TABLE" WHERE "PERMIT_ID" = ? FOR UPDATE',
      update: 'UPDATE "EXS_SYNC_STATE" SET "version" = ?, "tiebreak" = ?, "fingerprint" = ?, "written" = ?, "parked" = ?, "updated_at" = ?'
        + ' WHERE "job_id" = ? AND "record_key" = ?',
      parked: 'SELECT "record_key", "version", "written", "parked", "updated_at" FROM "EXS_SYNC_STATE"'
        + ' WHERE "job_id" = ? AND "parked" IS NOT NULL ORDER BY "updated_at", "record_key"',
    },
    mysql: {
      create: 'CREATE TABLE `EXS_SYNC_STATE` (`job_id` varchar(100) NOT NULL, `record_key` varchar(300) NOT NULL, `version` varchar(40),'
        + ' `tiebreak` varchar(64) NOT NULL, `fingerprint` varchar(64) NOT NULL, `written` longtext NOT NULL, `parked` longtext,'
        + ' `updated_at` varchar(32) NOT NULL, PRIMARY KEY (`job_id`, `record_key`))',
      claim: [
        'INSERT INTO `EXS_SYNC_STATE` (`job_id`, `record_key`, `tiebreak`, `fingerprint`, `written`, `updated_at`) VALUES (?, ?, \'\', \'\', \'{}\', \'\')'
          + ' ON DUPLICATE KEY UPDATE `job_id` = `job_id`',
        'SELECT `version`, `tiebreak`, `fingerprint`, `written`, `parked` FROM `EXS_SYNC_STATE` WHERE `job_id` = ? AND `record_key` = ? FOR UPDATE',
      ],
      lockRow: 'SELECT `PERMIT_ID`, `PERMIT_STAT`, `LAST_CHG_TS` FROM `PERMIT_TABLE` WHERE `PERMIT_ID` = ? FOR UPDATE',
      update: 'UPDATE `EXS_SYNC_STATE` SET `version` = ?, `tiebreak` = ?, `fingerprint` = ?, `written` = ?, `parked` = ?, `updated_at` = ?'
        + ' WHERE `job_id` = ? AND `record_key` = ?',
      parked: 'SELECT `record_key`, `version`, `written`, `parked`, `updated_at` FROM `EXS_SYNC_STATE`'
        + ' WHERE `job_id` = ? AND `parked` IS NOT NULL ORDER BY `updated_at`, `record_key`',
    },
    sqlite: {
      create: 'CREATE TABLE "EXS_SYNC_STATE" ("job_id" varchar(100) NOT NULL, "record_key" varchar(300) NOT NULL, "version" varchar(40),'
        + ' "tiebreak" varchar(64) NOT NULL, "fingerprint" varchar(64) NOT NULL, "written" text NOT NULL, "parked" text,'
        + ' "updated_at" varchar(32) NOT NULL, PRIMARY KEY ("job_id", "record_key"))',
      claim: [
        'INSERT OR IGNORE INTO "EXS_SYNC_STATE" ("job_id", "record_key", "tiebreak", "fingerprint", "written", "updated_at") VALUES (?, ?, \'\', \'\', \'{}\', \'\')',
        'SELECT "version", "tiebreak", "fingerprint", "written", "parked" FROM "EXS_SYNC_STATE" WHERE "job_id" = ? AND "record_key" = ?',
      ],
      lockRow: 'SELECT "PERMIT_ID", "PERMIT_STAT", "LAST_CHG_TS" FROM "PERMIT_TABLE" WHERE "PERMIT_ID" = ?',
      update: 'UPDATE "EXS_SYNC_STATE" SET "version" = ?, "tiebreak" = ?, "fingerprint" = ?, "written" = ?, "parked" = ?, "updated_at" = ?'
        + ' WHERE "job_id" = ? AND "record_key" = ?',
      parked: 'SELECT "record_key", "version", "written", "parked", "updated_at" FROM "EXS_SYNC_STATE"'
        + ' WHERE "job_id" = ? AND "parked" IS NOT NULL ORDER BY "updated_at", "record_key"',
    },
    sqlserver: {
      create: 'CREATE TABLE [EXS_SYNC_STATE] ([job_id] nvarchar(100) NOT NULL, [record_key] nvarchar(300) NOT NULL, [version] nvarchar(40),'
        + ' [tiebreak] nvarchar(64) NOT NULL, [fingerprint] nvarchar(64) NOT NULL, [written] nvarchar(max) NOT NULL, [parked] nvarchar(max),'
        + ' [updated_at] nvarchar(32) NOT NULL, PRIMARY KEY ([job_id], [record_key]))',
      claim: [
        'MERGE INTO [EXS_SYNC_STATE] WITH (HOLDLOCK) AS t USING (VALUES (CAST(? AS nvarchar(100)), CAST(? AS nvarchar(300)))) AS s ([job_id], [record_key])'
          + ' ON t.[job_id] = s.[job_id] AND t.[record_key] = s.[record_key]'
          + ' WHEN NOT MATCHED THEN INSERT ([job_id], [record_key], [tiebreak], [fingerprint], [written], [updated_at]) VALUES (s.[job_id], s.[record_key], \'\', \'\', \'{}\', \'\');',
        'SELECT [version], [tiebreak], [fingerprint], [written], [parked] FROM [EXS_SYNC_STATE] WITH (UPDLOCK, HOLDLOCK) WHERE [job_id] = ? AND [record_key] = ?',
      ],
      lockRow: 'SELECT [PERMIT_ID], [PERMIT_STAT], [LAST_CHG_TS] FROM [PERMIT_TABLE] WITH (UPDLOCK, HOLDLOCK) WHERE [PERMIT_ID] = ?',
      update: 'UPDATE [EXS_SYNC_STATE] SET [version] = ?, [tiebreak] = ?, [fingerprint] = ?, [written] = ?, [parked] = ?, [updated_at] = ?'
        + ' WHERE [job_id] = ? AND [record_key] = ?',
      parked: 'SELECT [record_key], [version], [written], [parked], [updated_at] FROM [EXS_SYNC_STATE]'
        + ' WHERE [job_id] = ? AND [parked] IS NOT NULL ORDER BY [updated_at], [record_key]',
    },
    db2: {
      create: 'CREATE TABLE "EXS_SYNC_STATE" ("job_id" varchar(100) NOT NULL, "record_key" varchar(300) NOT NULL, "version" varchar(40),'
        + ' "tiebreak" varchar(64) NOT NULL, "fingerprint" varchar(64) NOT NULL, "written" clob(16M) NOT NULL, "parked" clob(16M),'
        + ' "updated_at" varchar(32) NOT NULL, PRIMARY KEY ("job_id", "record_key"))',
      claim: [
        'MERGE INTO "EXS_SYNC_STATE" AS t USING (VALUES (CAST(? AS varchar(100)), CAST(? AS varchar(300)))) AS s ("job_id", "record_key")'
          + ' ON t."job_id" = s."job_id" AND t."record_key" = s."record_key"'
          + ' WHEN NOT MATCHED THEN INSERT ("job_id", "record_key", "tiebreak", "fingerprint", "written", "updated_at") VALUES (s."job_id", s."record_key", \'\', \'\', \'{}\', \'\')',
        'SELECT "version", "tiebreak", "fingerprint", "written", "parked" FROM "EXS_SYNC_STATE" WHERE "job_id" = ? AND "record_key" = ? WITH RS USE AND KEEP UPDATE LOCKS',
      ],
      lockRow: 'SELECT "PERMIT_ID", "PERMIT_STAT", "LAST_CHG_TS" FROM "PERMIT_TABLE" WHERE "PERMIT_ID" = ? WITH RS USE AND KEEP UPDATE LOCKS',
      update: 'UPDATE "EXS_SYNC_STATE" SET "version" = ?, "tiebreak" = ?, "fingerprint" = ?, "written" = ?, "parked" = ?, "updated_at" = ?'
        + ' WHERE "job_id" = ? AND "record_key" = ?',
      parked: 'SELECT "record_key", "version", "written", "parked", "updated_at" FROM "EXS_SYNC_STATE"'
        + ' WHERE "job_id" = ? AND "parked" IS NOT NULL ORDER BY "updated_at", "record_key"',
    },
  };
  for (const [name, want] of Object.entries(golden)) {
    const dialect = DIALECTS[name as DialectName];
    it(`${name}: state table, claim and lock, locked row read, state update, parked list`, () => {
      assert.equal(dialect.createStateTable('EXS_SYNC_STATE'), want.create);
      assert.deepEqual(dialect.claimState(state), want.claim);
      assert.equal(dialect.selectByKeyForUpdate('PERMIT_TABLE', 'PERMIT_ID', PERMIT_COLUMNS.map((c) => c.name)), want.lockRow);
      assert.equal(dialect.updateState(state), want.update);
      assert.equal(dialect.listParked(state), want.parked);
    });
  }

  it('uses the state columns as the catalog spells them, and refuses unsafe names', () => {
    const upper = { table: 'legacy.EXS_STATE', columns: Object.fromEntries(Object.keys(state.columns).map((c) => [c, c.toUpperCase()])) } as typeof state;
    assert.match(DIALECTS.postgresql.updateState(upper), /^UPDATE "legacy"\."EXS_STATE" SET "VERSION" = \?, .* WHERE "JOB_ID" = \? AND "RECORD_KEY" = \?$/);
    assert.throws(() => DIALECTS.postgresql.createStateTable('x; DROP TABLE y'), /invalid SQL identifier/);
  });

  it('MariaDB sessions read committed: no gap locks for two runtimes inserting new keys to deadlock on', () => {
    assert.deepEqual(DIALECTS.mysql.sessionSetup, ["SET time_zone = '+00:00'", 'SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED']);
  });
});

// The same transaction over many records at once. PostgreSQL binds each column's values as one
// array, so its statements read the same for one record or five hundred; MariaDB and SQLite repeat
// a VALUES row per record.
describe('batch conflict transaction SQL', () => {
  const state = defaultStateTable('EXS_SYNC_STATE');
  const pg = DIALECTS.postgresql.batch;
  if (pg?.binding !== 'arrays') throw new Error('PostgreSQL batches bind arrays');

  // Columns as open() reads them from pg_type: the statements name and read types by it.
  const PG_COLUMNS: ColumnInfo[] = [
    { name: 'PERMIT_ID', kind: 'text', sqlType: 'varchar(20)', pg: { base: 'character varying', name: 'varchar', category: 'S', typmod: 24 } },
    { name: 'PERMIT_STAT', kind: 'text', sqlType: 'varchar(8)', pg: { base: 'character varying', name: 'varchar', category: 'S', typmod: 12 } },
    { name: 'LAST_CHG_TS', kind: 'timestamp', sqlType: 'timestamp', pg: { base: 'timestamp without time zone', name: 'timestamp', category: 'D', typmod: -1 } },
    { name: 'ACTIVE', kind: 'number', sqlType: 'bool', pg: { base: 'boolean', name: 'bool', category: 'B', typmod: -1 } },
    { name: 'BIG', kind: 'number', sqlType: 'int8', pg: { base: 'bigint', name: 'int8', category: 'N', typmod: -1 } },
    { name: 'PRICE', kind: 'number', sqlType: 'money', pg: { base: 'money', name: 'money', category: 'N', typmod: -1 } },
  ];
  // A boolean answers 1 or 0, a BIGINT text (all its digits), money a number, as the other drivers hand them over.
  const PG_READ = 'json_build_array(json_build_array(%.exs_v0, %.exs_v1, %.exs_v2, CASE WHEN %.exs_v3 THEN 1 WHEN NOT %.exs_v3 THEN 0 END,'
    + ' CAST(%.exs_v4 AS text), CAST(%.exs_v5 AS numeric)))';
  /** The row's version, as writeKnown compares it: the same expression wherever a row is read or written. */
  const PG_ROW_VERSION = (alias: string) => `CAST(${alias}.tableoid AS text) || ':' || CAST(${alias}.xmin AS text) || ':' || CAST(${alias}.ctid AS text)`;

  it('postgresql: lock existing state rows, insert new ones, each in key order, then lock the rows, in one statement answering JSON', () => {
    assert.equal(pg.lock(state, 'PERMIT_TABLE', PG_COLUMNS[0], PG_COLUMNS),
      'WITH exs_k AS (SELECT * FROM unnest(CAST(? AS text[])) WITH ORDINALITY AS k (exs_key, exs_ord)),'
      + ' exs_j AS (SELECT CAST(? AS text) AS exs_job),'
      + ' exs_e AS (SELECT s."record_key" AS exs_key, s."version", s."tiebreak", s."fingerprint", s."written", s."parked" FROM (SELECT * FROM exs_k ORDER BY exs_key) k CROSS JOIN LATERAL'
      + ' (SELECT * FROM "EXS_SYNC_STATE" s WHERE s."job_id" = (SELECT exs_job FROM exs_j) AND s."record_key" = k.exs_key OFFSET 0) s'
      + ' ORDER BY s."record_key" FOR UPDATE OF s),'
      + ' exs_n AS (INSERT INTO "EXS_SYNC_STATE" ("job_id", "record_key", "tiebreak", "fingerprint", "written", "updated_at")'
      + ' SELECT j.exs_job, k.exs_key, \'\', \'\', \'{}\', \'\' FROM exs_k k, exs_j j WHERE k.exs_key NOT IN (SELECT exs_key FROM exs_e)'
      + ' ORDER BY k.exs_key ON CONFLICT ("job_id", "record_key") DO NOTHING'
      + ' RETURNING "record_key" AS exs_key, "version", "tiebreak", "fingerprint", "written", "parked"),'
      + ' exs_c AS (SELECT * FROM exs_e UNION ALL SELECT * FROM exs_n),'
      // Destination rows too, key by key in key order, locked once their state rows are.
      + ' exs_r AS (SELECT s.exs_key, t.* FROM (SELECT exs_key FROM exs_c ORDER BY exs_key) s CROSS JOIN LATERAL'
      + ' (SELECT t."PERMIT_ID" AS exs_v0, t."PERMIT_STAT" AS exs_v1, t."LAST_CHG_TS" AS exs_v2, t."ACTIVE" AS exs_v3,'
      + ` t."BIG" AS exs_v4, t."PRICE" AS exs_v5, ${PG_ROW_VERSION('t')} AS exs_rv FROM "PERMIT_TABLE" t WHERE t."PERMIT_ID" = CAST(s.exs_key AS character varying) OFFSET 0) t FOR UPDATE OF t)`
      + ' SELECT json_agg(json_build_array(k.exs_ord, CAST(s."version" AS text), CAST(s."tiebreak" AS text), CAST(s."fingerprint" AS text),'
      + ` CAST(s."written" AS text), CAST(s."parked" AS text), r.exs_key IS NOT NULL, ${PG_READ.replaceAll('%', 'r')}, r.exs_rv) ORDER BY k.exs_ord) AS exs_rows`
      + ' FROM exs_k k JOIN exs_c s ON s.exs_key = k.exs_key LEFT JOIN exs_r r ON r.exs_key = k.exs_key');
  });

  it('postgresql: upsert of rows bound as JSON, each value read by its column\'s own type, answering the rows as stored', () => {
    assert.equal(pg.upsertRows('PERMIT_TABLE', PG_COLUMNS, PG_COLUMNS),
      'WITH exs_in AS (SELECT e.exs_ord, r.* FROM json_array_elements(CAST(? AS json)) WITH ORDINALITY AS e (exs_value, exs_ord),'
      + ' LATERAL json_populate_record(NULL::"PERMIT_TABLE", e.exs_value) AS r),'
      + ' exs_w AS (INSERT INTO "PERMIT_TABLE" AS t ("PERMIT_ID", "PERMIT_STAT", "LAST_CHG_TS", "ACTIVE", "BIG", "PRICE")'
      + ' SELECT "PERMIT_ID", "PERMIT_STAT", "LAST_CHG_TS", "ACTIVE", "BIG", "PRICE" FROM exs_in ORDER BY exs_ord'
      + ' ON CONFLICT ("PERMIT_ID") DO UPDATE SET "PERMIT_STAT" = excluded."PERMIT_STAT", "LAST_CHG_TS" = excluded."LAST_CHG_TS",'
      + ' "ACTIVE" = excluded."ACTIVE", "BIG" = excluded."BIG", "PRICE" = excluded."PRICE"'
      + ` RETURNING t."PERMIT_ID" AS exs_v0, t."PERMIT_STAT" AS exs_v1, t."LAST_CHG_TS" AS exs_v2, t."ACTIVE" AS exs_v3, t."BIG" AS exs_v4, t."PRICE" AS exs_v5, ${PG_ROW_VERSION('t')} AS exs_rv)`
      + ` SELECT json_agg(json_build_array(i.exs_ord, ${PG_READ.replaceAll('%', 'w')}, w.exs_rv)) AS exs_rows`
      + ' FROM exs_w w JOIN exs_in i ON w.exs_v0 = i."PERMIT_ID"');
    assert.match(pg.upsertRows('PERMIT_TABLE', [PG_COLUMNS[0]], PG_COLUMNS), /ON CONFLICT \("PERMIT_ID"\) DO NOTHING RETURNING/);
    // A view has no row versions: the statements answer none.
    assert.ok(pg.upsertRows('PERMIT_TABLE', PG_COLUMNS, PG_COLUMNS, false).includes('t."PRICE" AS exs_v5, NULL AS exs_rv)'));
    assert.ok(pg.lock(state, 'PERMIT_TABLE', PG_COLUMNS[0], PG_COLUMNS, false).includes('t."PRICE" AS exs_v5, NULL AS exs_rv FROM'));
  });

  it('postgresql: the one-statement write of known records checks state and row under lock before it writes either', () => {
    const sql = pg.writeKnown(state, 'PERMIT_TABLE', PG_COLUMNS.slice(0, 2), PG_COLUMNS);
    // Existing state rows checked and locked key by key, in key order, before the destination rows.
    assert.ok(sql.includes('exs_s AS (SELECT i.* FROM (SELECT * FROM exs_in WHERE exs_sf IS NOT NULL ORDER BY exs_key) i CROSS JOIN LATERAL'
      + ' (SELECT * FROM "EXS_SYNC_STATE" s WHERE s."job_id" = (SELECT exs_job FROM exs_j)'
      + ' AND s."record_key" = i.exs_key AND s."fingerprint" = i.exs_sf AND s."tiebreak" = i.exs_st AND s."version" IS NOT DISTINCT FROM i.exs_sv'
      + ' AND s."parked" IS NULL OFFSET 0) s ORDER BY s."record_key" FOR UPDATE OF s)'), sql);
    assert.ok(sql.includes('exs_t AS (SELECT s.exs_ord FROM (SELECT * FROM exs_c ORDER BY exs_key) s CROSS JOIN LATERAL (SELECT 1 FROM "PERMIT_TABLE" t'
      + ` WHERE t."PERMIT_ID" = CAST(s.exs_key AS character varying) AND ${PG_ROW_VERSION('t')} = s.exs_was OFFSET 0) t FOR UPDATE OF t)`), sql);
    // Every other read of either table is by key, in a loop: EXISTS kept a loop by OFFSET 0, and the
    // state rows checked above written over by an insert that meets them on its arbiter index.
    assert.ok(sql.includes('NOT EXISTS (SELECT 1 FROM "EXS_SYNC_STATE" s WHERE s."job_id" = j.exs_job AND s."record_key" = i.exs_key OFFSET 0)'), sql);
    assert.ok(sql.includes('NOT EXISTS (SELECT 1 FROM "PERMIT_TABLE" t WHERE t."PERMIT_ID" = CAST(s.exs_key AS character varying) OFFSET 0)'), sql);
    assert.match(sql, /exs_su AS \(INSERT INTO "EXS_SYNC_STATE" .* FROM exs_ok o, exs_j j WHERE o\.exs_sf IS NOT NULL ORDER BY o\.exs_key ON CONFLICT \("job_id", "record_key"\) DO UPDATE SET "version" = excluded\."version",/);
    assert.ok(!/\bUPDATE "EXS_SYNC_STATE"/.test(sql), sql);
    // Only the shape's columns are written, as the locked path's upsert; every column answered, with the row's version.
    assert.ok(sql.includes('INSERT INTO "PERMIT_TABLE" AS t ("PERMIT_ID", "PERMIT_STAT") SELECT r."PERMIT_ID", r."PERMIT_STAT" FROM exs_r r ORDER BY r.exs_ord'));
    assert.ok(sql.includes('ON CONFLICT ("PERMIT_ID") DO UPDATE SET "PERMIT_STAT" = excluded."PERMIT_STAT" RETURNING'));
    assert.ok(sql.includes(`t."PRICE" AS exs_v5, ${PG_ROW_VERSION('t')} AS exs_rv)`));
    // A new state row another runtime inserted meanwhile is not overwritten ...
    assert.match(sql, /exs_si AS \(INSERT INTO "EXS_SYNC_STATE" .* WHERE o\.exs_sf IS NULL ORDER BY o\.exs_key ON CONFLICT \("job_id", "record_key"\) DO NOTHING/);
    // ... and the statement fails then, so that nothing of it stays even outside a transaction.
    assert.ok(sql.includes("SELECT json_build_array(CASE WHEN (SELECT count(*) FROM exs_ok) = (SELECT count(*) FROM exs_su) + (SELECT count(*) FROM exs_si) THEN true"
      + " ELSE CAST('exs: state rows appeared meanwhile: ' || CAST((SELECT count(*) FROM exs_ok) AS text) AS boolean) END,"));
    // Each record reads its JSON once (json_to_recordset), and the CTEs are filtered by hashed subplans, not joined.
    assert.ok(sql.startsWith('WITH exs_in AS (SELECT e.o AS exs_ord, e.k AS exs_key'));
    assert.ok(sql.includes('exs_ok AS (SELECT s.* FROM exs_c s WHERE (s.exs_ord IN (SELECT exs_ord FROM exs_t)'));
    // Written rows are matched to their records by the key as the table stores it, as upsertRows() does.
    assert.ok(sql.includes('FROM exs_w w JOIN exs_r r ON w.exs_v0 = r."PERMIT_ID")) AS exs_rows'));
    assert.ok(!sql.includes('exs_g'), 'no guard unless asked');
  });

  it('postgresql: with a guard, the one-statement write passes no record unless it holds, and answers whether it held', () => {
    const sql = pg.writeKnown(state, 'PERMIT_TABLE', PG_COLUMNS.slice(0, 2), PG_COLUMNS, '(SELECT true)');
    assert.ok(sql.includes('exs_g AS (SELECT (SELECT true) AS exs_held),'));
    // Computed once, after the state rows' CTEs, and read by the filter and by the answer only.
    assert.equal(sql.split('exs_g AS (').length, 2);
    assert.equal(sql.split('FROM exs_g').length, 3);
    // Every record that would pass (row checked, or new) passes only while the guard holds.
    assert.match(sql, /exs_ok AS \(SELECT s\.\* FROM exs_c s WHERE \(s\.exs_ord IN \(SELECT exs_ord FROM exs_t\) OR \(.*\)\) AND \(SELECT exs_held FROM exs_g\)\),/);
    assert.ok(sql.endsWith('FROM exs_w w JOIN exs_r r ON w.exs_v0 = r."PERMIT_ID"), (SELECT exs_held FROM exs_g)) AS exs_rows'));
  });

  it('postgresql: states saved from one JSON array, each read once', () => {
    assert.equal(pg.saveStates(state),
      'INSERT INTO "EXS_SYNC_STATE" ("job_id", "record_key", "version", "tiebreak", "fingerprint", "written", "parked", "updated_at")'
      + ' SELECT CAST(? AS text), s.k, s.v, s.t, s.f, CAST(s.w AS text), CAST(s.p AS text), s.u'
      + ' FROM json_to_recordset(CAST(? AS json)) AS s (k text, v text, t text, f text, w json, p json, u text)'
      + ' ON CONFLICT ("job_id", "record_key") DO UPDATE SET "version" = excluded."version", "tiebreak" = excluded."tiebreak",'
      + ' "fingerprint" = excluded."fingerprint", "written" = excluded."written", "parked" = excluded."parked", "updated_at" = excluded."updated_at"');
  });

  it('postgresql: array literals quote every element, so commas, braces, quotes and the word NULL stay data', () => {
    assert.equal(arrayLiteral(['P-1', 'a,b', '{x}', 'say "hi"', 'back\\slash', 'NULL', null, 7, '']),
      '{"P-1","a,b","{x}","say \\"hi\\"","back\\\\slash","NULL",NULL,"7",""}');
    assert.equal(arrayLiteral([]), '{}');
  });

  it('mariadb and sqlite: a VALUES row per record, rows matched to keys by position', () => {
    const mysql = DIALECTS.mysql.batch;
    if (mysql?.binding !== 'rows') throw new Error('MariaDB batches bind rows');
    assert.equal(mysql.lockRows('PERMIT_TABLE', PERMIT_COLUMNS[0], PERMIT_COLUMNS.map((c) => c.name), 2),
      'SELECT k.exs_ord, t.`PERMIT_ID`, t.`PERMIT_STAT`, t.`LAST_CHG_TS` FROM (SELECT 1 AS exs_ord, ? AS exs_key UNION ALL SELECT 2 AS exs_ord, ? AS exs_key) k'
      + ' JOIN `PERMIT_TABLE` t ON t.`PERMIT_ID` = k.exs_key FOR UPDATE');
    assert.equal(mysql.upsertRows('PERMIT_TABLE', 'PERMIT_ID', PERMIT_COLUMNS, 2),
      'INSERT INTO `PERMIT_TABLE` (`PERMIT_ID`, `PERMIT_STAT`, `LAST_CHG_TS`) VALUES (?, ?, CAST(? AS DATETIME(6))), (?, ?, CAST(? AS DATETIME(6)))'
      + ' ON DUPLICATE KEY UPDATE `PERMIT_STAT` = VALUES(`PERMIT_STAT`), `LAST_CHG_TS` = VALUES(`LAST_CHG_TS`)');
    assert.equal(DIALECTS.sqlite.batch?.binding, 'rows');
    assert.equal(DIALECTS.sqlserver.batch, undefined);
    assert.equal(DIALECTS.db2.batch, undefined);
  });
});

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
    it(`${name}: insert-or-update with a timestamp cast that keeps microseconds`, () => {
      assert.equal(DIALECTS[name as DialectName].upsert('PERMIT_TABLE', 'PERMIT_ID', PERMIT_COLUMNS), sql);
    });
  }

  // A clerk changed PERMIT_STAT; a newer HMS event brings PERMIT_STAT and LAST_CHG_TS. What each rule
  // writes, in each dialect: the whole row, only the time (the clerk's status kept or parked), or nothing.
  const timeOnly: Record<DialectName, string> = {
    postgresql: 'INSERT INTO "PERMIT_TABLE" ("PERMIT_ID", "LAST_CHG_TS") VALUES (?, CAST(CAST(? AS VARCHAR(40)) AS TIMESTAMP))'
      + ' ON CONFLICT ("PERMIT_ID") DO UPDATE SET "LAST_CHG_TS" = excluded."LAST_CHG_TS"',
    mysql: 'INSERT INTO `PERMIT_TABLE` (`PERMIT_ID`, `LAST_CHG_TS`) VALUES (?, CAST(? AS DATETIME(6))) ON DUPLICATE KEY UPDATE `LAST_CHG_TS` = VALUES(`LAST_CHG_TS`)',
    sqlite: 'INSERT INTO "PERMIT_TABLE" ("PERMIT_ID", "LAST_CHG_TS") VALUES (?, ?) ON CONFLICT ("PERMIT_ID") DO UPDATE SET "LAST_CHG_TS" = excluded."LAST_CHG_TS"',
    sqlserver: 'MERGE INTO [PERMIT_TABLE] WITH (HOLDLOCK) AS t USING (VALUES (CAST(? AS varchar(20)), CAST(CAST(? AS VARCHAR(40)) AS DATETIME2(7))))'
      + ' AS s ([PERMIT_ID], [LAST_CHG_TS]) ON t.[PERMIT_ID] = s.[PERMIT_ID] WHEN MATCHED THEN UPDATE SET [LAST_CHG_TS] = s.[LAST_CHG_TS]'
      + ' WHEN NOT MATCHED THEN INSERT ([PERMIT_ID], [LAST_CHG_TS]) VALUES (s.[PERMIT_ID], s.[LAST_CHG_TS]);',
    db2: 'MERGE INTO "PERMIT_TABLE" AS t USING (VALUES (CAST(? AS varchar(20)), CAST(CAST(? AS VARCHAR(40)) AS TIMESTAMP(6))))'
      + ' AS s ("PERMIT_ID", "LAST_CHG_TS") ON t."PERMIT_ID" = s."PERMIT_ID" WHEN MATCHED THEN UPDATE SET "LAST_CHG_TS" = s."LAST_CHG_TS"'
      + ' WHEN NOT MATCHED THEN INSERT ("PERMIT_ID", "LAST_CHG_TS") VALUES (s."PERMIT_ID", s."LAST_CHG_TS")',
  };
  const writes: Record<ConflictRule, 'row' | 'time'> = { HMS_WINS: 'row', LAST_WRITE_WINS: 'row', DESTINATION_WINS: 'time', MANUAL: 'time' };
  for (const name of Object.keys(golden) as DialectName[]) {
    for (const rule of CONFLICT_RULES) {
      it(`${name}, ${rule}: the write after a clerk's edit`, () => {
        const state = { version: '2026-03-01 10:00:10.000000', tiebreak: 'x', written: { PERMIT_ID: 'P-1', PERMIT_STAT: 'PEND', LAST_CHG_TS: '2026-03-01 10:00:10.000000' } };
        const current = { ...state.written, PERMIT_STAT: 'HOLD' };
        const row = { PERMIT_ID: 'P-1', PERMIT_STAT: 'APPR', LAST_CHG_TS: '2026-03-01 10:00:30.000000' };
        const decision = decideConflict({ rule, timestampColumn: 'LAST_CHG_TS' }, state, current, { row, keyColumn: 'PERMIT_ID', version: row.LAST_CHG_TS, tiebreak: contentHash(row) });
        const columns = PERMIT_COLUMNS.filter((c) => Object.hasOwn(decision.columns, c.name));
        assert.equal(DIALECTS[name].upsert('PERMIT_TABLE', 'PERMIT_ID', columns), writes[rule] === 'row' ? golden[name] : timeOnly[name]);
      });
    }
  }

  it('writes only the columns the conflict law takes: a partial row leaves the others alone', () => {
    // DESTINATION_WINS kept PERMIT_STAT: only the time is written.
    const partial = [PERMIT_COLUMNS[0], PERMIT_COLUMNS[2]];
    assert.equal(DIALECTS.postgresql.upsert('PERMIT_TABLE', 'PERMIT_ID', partial),
      'INSERT INTO "PERMIT_TABLE" ("PERMIT_ID", "LAST_CHG_TS") VALUES (?, CAST(CAST(? AS VARCHAR(40)) AS TIMESTAMP))'
      + ' ON CONFLICT ("PERMIT_ID") DO UPDATE SET "LAST_CHG_TS" = excluded."LAST_CHG_TS"');
  });

  it('a key-only write inserts a new record and leaves an existing one as it is', () => {
    const keyOnly = PERMIT_COLUMNS.slice(0, 1);
    assert.equal(DIALECTS.postgresql.upsert('T', 'PERMIT_ID', keyOnly), 'INSERT INTO "T" ("PERMIT_ID") VALUES (?) ON CONFLICT ("PERMIT_ID") DO NOTHING');
    assert.equal(DIALECTS.sqlite.upsert('T', 'PERMIT_ID', keyOnly), 'INSERT INTO "T" ("PERMIT_ID") VALUES (?) ON CONFLICT ("PERMIT_ID") DO NOTHING');
    assert.equal(DIALECTS.mysql.upsert('T', 'PERMIT_ID', keyOnly), 'INSERT INTO `T` (`PERMIT_ID`) VALUES (?) ON DUPLICATE KEY UPDATE `PERMIT_ID` = `PERMIT_ID`');
    assert.equal(DIALECTS.sqlserver.upsert('T', 'PERMIT_ID', keyOnly),
      'MERGE INTO [T] WITH (HOLDLOCK) AS t USING (VALUES (CAST(? AS varchar(20)))) AS s ([PERMIT_ID]) ON t.[PERMIT_ID] = s.[PERMIT_ID]'
      + ' WHEN NOT MATCHED THEN INSERT ([PERMIT_ID]) VALUES (s.[PERMIT_ID]);');
  });

  it('qualifies a SCHEMA.TABLE name part by part', () => {
    assert.match(DIALECTS.postgresql.upsert('legacy.permit_table', 'PERMIT_ID', PERMIT_COLUMNS), /^INSERT INTO "legacy"\."permit_table" /);
    assert.match(DIALECTS.sqlserver.upsert('dbo.PERMIT_TABLE', 'PERMIT_ID', PERMIT_COLUMNS), /^MERGE INTO \[dbo\]\.\[PERMIT_TABLE\] /);
  });

  it('needs the key among the columns', () => {
    assert.throws(() => DIALECTS.postgresql.upsert('T', 'ID', PERMIT_COLUMNS), /must include the key column 'ID'/);
  });

  it('refuses to splice a catalog type that is not a plain type name into a MERGE', () => {
    const odd: ColumnInfo[] = [PERMIT_COLUMNS[0], { name: 'NOTE', kind: 'other', sqlType: 'int); DROP TABLE x; --' }];
    assert.throws(() => DIALECTS.db2.upsert('T', 'PERMIT_ID', odd), /column 'NOTE' has a type the MERGE cannot cast to/);
  });
});

describe('locked select by key SQL', () => {
  const golden: Record<DialectName, string> = {
    postgresql: 'SELECT "PERMIT_ID", "PERMIT_STAT" FROM "LEGACY"."PERMIT_TABLE" WHERE "PERMIT_ID" = ? FOR UPDATE',
    mysql: 'SELECT `PERMIT_ID`, `PERMIT_STAT` FROM `LEGACY`.`PERMIT_TABLE` WHERE `PERMIT_ID` = ? FOR UPDATE',
    sqlite: 'SELECT "PERMIT_ID", "PERMIT_STAT" FROM "LEGACY"."PERMIT_TABLE" WHERE "PERMIT_ID" = ?',
    sqlserver: 'SELECT [PERMIT_ID], [PERMIT_STAT] FROM [LEGACY].[PERMIT_TABLE] WITH (UPDLOCK, HOLDLOCK) WHERE [PERMIT_ID] = ?',
    db2: 'SELECT "PERMIT_ID", "PERMIT_STAT" FROM "LEGACY"."PERMIT_TABLE" WHERE "PERMIT_ID" = ? WITH RS USE AND KEEP UPDATE LOCKS',
  };
  for (const [name, sql] of Object.entries(golden)) {
    it(name, () => {
      assert.equal(DIALECTS[name as DialectName].selectByKeyForUpdate('LEGACY.PERMIT_TABLE', 'PERMIT_ID', ['PERMIT_ID', 'PERMIT_STAT']), sql);
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
      assert.throws(() => dialect.selectByKeyForUpdate('T', 'ID', ['ID', 'X] FROM y; --']), /invalid SQL identifier/);
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

describe('dollarQuoted', () => {
  it('quotes any text with a tag the text does not contain, so no value can end its own quote', () => {
    assert.equal(dollarQuoted("O'Brien; DROP TABLE x"), "$exs$O'Brien; DROP TABLE x$exs$");
    assert.equal(dollarQuoted('a $exs$ b'), '$exs0$a $exs$ b$exs0$');
    assert.equal(dollarQuoted('$exs$ and $exs0$'), '$exs1$$exs$ and $exs0$$exs1$');
    assert.equal(dollarQuoted(''), '$exs$$exs$');
  });
});
