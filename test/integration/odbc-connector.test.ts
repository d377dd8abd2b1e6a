// OdbcConnector against real PostgreSQL, MariaDB and SQLite through their ODBC drivers. Each test
// creates its own table with an unquoted upper-case name (PostgreSQL folds it to lower case), writes
// through the connector with the contract's upper-case spelling, and checks the rows with plain SQL.
import { after, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OdbcConnector, testOdbcConnection, type OdbcConnectorOptions } from '../../nodes/core/connectors/odbc-connector';
import { toSqlTimestampText, type DialectName } from '../../nodes/core/sql/dialect';
import { DbError, classifyDbError } from '../../nodes/core/sql/errors';
import { connectOdbc, type OdbcConnection } from '../../nodes/core/sql/odbc-pool';
import type { MappedRecord } from '../../nodes/core/types';
import { MARIADB_CONN, PG_CONN, needService, sqliteConn, tempDir, type ServiceName } from '../support/services';

const sqliteDir = tempDir('odbc-connector');
after(() => fs.rmSync(sqliteDir, { recursive: true, force: true }));

interface Target {
  dialect: DialectName;
  service: ServiceName;
  dbms: string;
  connectionString: string;
  /** DDL of the timestamp column: microsecond precision (SQLite keeps the text as it is). */
  timestampType: string;
  /** SQLite ignores varchar lengths; a CHECK makes it refuse long values like the others. */
  statusConstraint: string;
  tooLongState: string;
}

const TARGETS: Target[] = [
  {
    dialect: 'postgresql', service: 'postgres', dbms: 'PostgreSQL', connectionString: PG_CONN,
    timestampType: 'timestamp(6)', statusConstraint: '', tooLongState: '22001',
  },
  {
    dialect: 'mysql', service: 'mariadb', dbms: 'MariaDB', connectionString: MARIADB_CONN,
    timestampType: 'datetime(6)', statusConstraint: '', tooLongState: '22001',
  },
  {
    dialect: 'sqlite', service: 'sqlite-odbc', dbms: 'SQLite', connectionString: sqliteConn(path.join(sqliteDir, 'exs.db')),
    timestampType: 'timestamp', statusConstraint: ' CHECK (length(PERMIT_STAT) <= 8)', tooLongState: 'HY000',
  },
];

const COLUMNS = ['PERMIT_STAT', 'LAST_CHG_TS', 'PERMIT_LEVEL', 'REMARKS'];

interface PermitTable {
  /** As created: upper case, unquoted. */
  name: string;
  /** As the database spells it. */
  realName: string;
  db: OdbcConnection;
  connector: OdbcConnector;
  row(id: string): Promise<Record<string, unknown> | undefined>;
  count(): Promise<number>;
}

async function withPermitTable(
  target: Target,
  body: (table: PermitTable) => Promise<void>,
  options: Partial<OdbcConnectorOptions> = {},
): Promise<void> {
  const name = `EXS_IT_${target.dialect.toUpperCase()}_${crypto.randomBytes(4).toString('hex').toUpperCase()}`;
  const db = await connectOdbc({ connectionString: target.connectionString });
  await db.query(`CREATE TABLE ${name} (PERMIT_ID varchar(64) PRIMARY KEY, PERMIT_STAT varchar(8)${target.statusConstraint},`
    + ` LAST_CHG_TS ${target.timestampType}, PERMIT_LEVEL integer, REMARKS varchar(200))`);
  const connector = new OdbcConnector({
    connectionString: target.connectionString, table: name, keyColumn: 'PERMIT_ID', columns: COLUMNS, poolSize: 1, ...options,
  });
  try {
    await body({
      name,
      realName: target.dialect === 'postgresql' ? name.toLowerCase() : name,
      db,
      connector,
      async row(id) {
        const [found] = await db.query(`SELECT * FROM ${name} WHERE PERMIT_ID = ?`, [id]);
        return found && Object.fromEntries(Object.entries(found).map(([column, value]) => [column.toUpperCase(), value]));
      },
      async count() {
        const [result] = await db.query(`SELECT COUNT(*) AS N FROM ${name}`);
        return Number(Object.values(result)[0]);
      },
    });
  } finally {
    await connector.close();
    await db.query(`DROP TABLE ${name}`);
    await db.close();
  }
}

function permit(id: string, fields: Record<string, unknown>): MappedRecord {
  const row = { PERMIT_ID: id, PERMIT_STAT: 'PEND', LAST_CHG_TS: '2026-03-01T10:00:00Z', PERMIT_LEVEL: 1, REMARKS: null, ...fields };
  return { keyColumn: 'PERMIT_ID', keyValue: id, row };
}

for (const target of TARGETS) {
  describe(`OdbcConnector on ${target.dbms}`, () => {
    it('inserts a new row, updates it, and skips a repeat as unchanged', async (t) => {
      if (!(await needService(t, target.service))) return;
      await withPermitTable(target, async (table) => {
        await table.connector.open();
        assert.equal(table.connector.describe(), `${target.dialect} ${table.realName}`);

        const inserted = await table.connector.apply(permit('P-1', { LAST_CHG_TS: '2026-03-01T10:00:00.500Z' }));
        assert.equal(inserted.outcome, 'applied');
        assert.equal(inserted.before, null);
        assert.deepEqual(inserted.after, {
          PERMIT_ID: 'P-1', PERMIT_STAT: 'PEND', LAST_CHG_TS: '2026-03-01 10:00:00.500000', PERMIT_LEVEL: 1, REMARKS: null,
        });
        assert.equal((await table.row('P-1'))?.PERMIT_STAT, 'PEND');

        const approval = permit('P-1', { PERMIT_STAT: 'APPR', LAST_CHG_TS: '2026-03-01T10:00:00.500Z' });
        const updated = await table.connector.apply(approval);
        assert.equal(updated.outcome, 'applied');
        assert.equal(updated.before?.PERMIT_STAT, 'PEND');
        assert.equal((await table.row('P-1'))?.PERMIT_STAT, 'APPR');

        // PostgreSQL reads the timestamp back as `10:00:00.5`: still the same value.
        const repeated = await table.connector.apply(approval);
        assert.equal(repeated.outcome, 'unchanged');
        assert.deepEqual(repeated.before, repeated.after);
        assert.equal(await table.count(), 1);
      });
    });

    it('keeps microseconds, so two updates within one second both land', async (t) => {
      if (!(await needService(t, target.service))) return;
      await withPermitTable(target, async (table) => {
        await table.connector.open();
        await table.connector.apply(permit('P-1', { LAST_CHG_TS: '2026-03-01T10:00:00.123456Z' }));
        assert.equal((await table.row('P-1'))?.LAST_CHG_TS, '2026-03-01 10:00:00.123456');

        const first = await table.connector.apply(permit('P-1', { LAST_CHG_TS: '2026-03-01T12:00:00.000001+02:00' }));
        const second = await table.connector.apply(permit('P-1', { LAST_CHG_TS: '2026-03-01T12:00:00.000002+02:00' }));
        assert.deepEqual([first.outcome, second.outcome], ['applied', 'applied']);
        assert.equal((await table.row('P-1'))?.LAST_CHG_TS, '2026-03-01 10:00:00.000002');

        await table.connector.apply(permit('P-2', { LAST_CHG_TS: Date.parse('2026-03-01T10:00:00.123Z') }));
        assert.equal(toSqlTimestampText((await table.row('P-2'))?.LAST_CHG_TS), '2026-03-01 10:00:00.123000');
      });
    });

    it('stores quotes, semicolons and SQL text verbatim', async (t) => {
      if (!(await needService(t, target.service))) return;
      await withPermitTable(target, async (table) => {
        await table.connector.open();
        const key = `it's"; DROP TABLE ${table.name}; --`;
        const remarks = `O'Brien; DELETE FROM ${table.name} WHERE '1'='1' -- \\ "quoted" \`tick\``;
        await table.connector.apply(permit(key, { PERMIT_STAT: `a';--"b`, REMARKS: remarks }));

        const stored = await table.row(key);
        assert.equal(stored?.PERMIT_STAT, `a';--"b`);
        assert.equal(stored?.REMARKS, remarks);
        assert.equal(await table.count(), 1);
      });
    });

    it('writes numbers and booleans bound after a NULL in the same position', async (t) => {
      if (!(await needService(t, target.service))) return;
      await withPermitTable(target, async (table) => {
        await table.connector.open();
        // One connection, so every apply reuses the same prepared statement.
        for (const level of [5, null, 7]) await table.connector.apply(permit('P-1', { PERMIT_LEVEL: level }));
        assert.equal(Number((await table.row('P-1'))?.PERMIT_LEVEL), 7);

        await table.connector.apply(permit('P-1', { PERMIT_LEVEL: null }));
        const flagged = await table.connector.apply(permit('P-1', { PERMIT_LEVEL: true }));
        assert.equal(flagged.after.PERMIT_LEVEL, 1);
        assert.equal(Number((await table.row('P-1'))?.PERMIT_LEVEL), 1);
      });
    });

    it('applies concurrent records through a bounded pool', async (t) => {
      if (!(await needService(t, target.service))) return;
      await withPermitTable(target, async (table) => {
        await table.connector.open();
        const ids = Array.from({ length: 20 }, (_, i) => `P-${i}`);
        const results = await Promise.all(ids.map((id) => table.connector.apply(permit(id, { PERMIT_LEVEL: 2 }))));
        assert.ok(results.every((r) => r.outcome === 'applied'));
        assert.equal(await table.count(), ids.length);
      }, { poolSize: 2 });
    });

    it('rejects a value too long for its column as a permanent error, and keeps working', async (t) => {
      if (!(await needService(t, target.service))) return;
      await withPermitTable(target, async (table) => {
        await table.connector.open();
        await assert.rejects(table.connector.apply(permit('P-1', { PERMIT_STAT: 'X'.repeat(40) })), (err: unknown) => {
          assert.ok(err instanceof DbError);
          assert.match(err.message, /key "P-1"/);
          assert.deepEqual(
            { transient: classifyDbError(err).transient, sqlState: classifyDbError(err).sqlState },
            { transient: false, sqlState: target.tooLongState },
          );
          return true;
        });
        assert.equal(await table.row('P-1'), undefined);

        assert.equal((await table.connector.apply(permit('P-1', {}))).outcome, 'applied');
      });
    });

    it('fails open() when the table is missing, listing the tables there', async (t) => {
      if (!(await needService(t, target.service))) return;
      await withPermitTable(target, async (table) => {
        const missing = new OdbcConnector({ connectionString: target.connectionString, table: 'NO_SUCH_TABLE', keyColumn: 'PERMIT_ID', columns: COLUMNS });
        await assert.rejects(missing.open(), (err: Error) => {
          assert.match(err.message, /^table 'NO_SUCH_TABLE' not found in (public|test|the database) \(tables: .+\)$/);
          assert.ok(err.message.includes(table.realName), err.message);
          return true;
        });
      });
    });

    it('fails open() when a column is missing, listing the columns', async (t) => {
      if (!(await needService(t, target.service))) return;
      await withPermitTable(target, async (table) => {
        const connector = new OdbcConnector({
          connectionString: target.connectionString, table: table.name, keyColumn: 'PERMIT_ID', columns: ['PERMIT_STATUS', 'REMARKS'],
        });
        await assert.rejects(connector.open(), (err: Error) => {
          assert.match(err.message, new RegExp(`^column 'PERMIT_STATUS' not found in ${table.realName} \\(columns: .+\\)$`));
          assert.match(err.message.toUpperCase(), /PERMIT_ID, PERMIT_STAT, LAST_CHG_TS|LAST_CHG_TS, PERMIT_ID/);
          return true;
        });
      });
    });

    it('matches contract names to the catalog without regard to case', async (t) => {
      if (!(await needService(t, target.service))) return;
      await withPermitTable(target, async (table) => {
        const lowerCase = new OdbcConnector({
          connectionString: target.connectionString, table: table.name.toLowerCase(), keyColumn: 'permit_id', columns: ['permit_stat', 'remarks'],
        });
        try {
          await lowerCase.open();
          const result = await lowerCase.apply({ keyColumn: 'permit_id', keyValue: 'P-1', row: { permit_stat: 'PEND', remarks: 'lower' } });
          assert.deepEqual(Object.keys(result.after), ['permit_id', 'permit_stat', 'remarks']);
          assert.equal((await table.row('P-1'))?.REMARKS, 'lower');
        } finally {
          await lowerCase.close();
        }
      });
    });

    it('leaves a column alone when the record carries no value for it, rather than erase it', async (t) => {
      if (!(await needService(t, target.service))) return;
      await withPermitTable(target, async (table) => {
        await table.connector.open();
        await table.connector.apply(permit('P-1', { REMARKS: 'keep me' }));
        const partial: MappedRecord = { keyColumn: 'PERMIT_ID', keyValue: 'P-1', row: { PERMIT_STAT: 'APPR', LAST_CHG_TS: 0, PERMIT_LEVEL: 1 } };
        const result = await table.connector.apply(partial);
        assert.equal(result.outcome, 'applied');
        assert.equal(result.after.REMARKS, 'keep me', 'after shows the row as it now is');
        const row = await table.row('P-1');
        assert.equal(row?.REMARKS, 'keep me');
        assert.equal(row?.PERMIT_STAT, 'APPR');
        // A new key with a partial record inserts what it has.
        await table.connector.apply({ keyColumn: 'PERMIT_ID', keyValue: 'P-2', row: { PERMIT_STAT: 'PEND' } });
        assert.equal((await table.row('P-2'))?.PERMIT_STAT, 'PEND');
      });
    });

    it('tells the editor which database a connection string reaches', async (t) => {
      if (!(await needService(t, target.service))) return;
      const info = await testOdbcConnection(target.connectionString);
      assert.equal(info.dialect, target.dialect);
      assert.equal(info.dbms, target.dbms);
      assert.match(info.version, /^\d+\.\d+/);
    });
  });
}

describe('OdbcConnector after a dropped connection', () => {
  it('closes the broken connection instead of pooling it, so the next apply reconnects', async (t) => {
    if (!(await needService(t, 'postgres'))) return;
    await withPermitTable(TARGETS[0], async (table) => {
      await table.connector.open();
      await table.connector.apply(permit('P-1', {}));

      // An idle backend still shows its last statement, which names this test's table and no other.
      const [killed] = await table.db.query(
        'SELECT COUNT(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query ILIKE ?',
        [`%${table.realName}%`],
      );
      assert.equal(Number(Object.values(killed)[0]), 1);

      await assert.rejects(table.connector.apply(permit('P-1', { PERMIT_STAT: 'APPR' })), (err: unknown) => {
        assert.equal(classifyDbError(err).transient, true, String(err));
        return true;
      });
      assert.equal((await table.connector.apply(permit('P-1', { PERMIT_STAT: 'APPR' }))).outcome, 'applied');
      assert.equal((await table.row('P-1'))?.PERMIT_STAT, 'APPR');
    });
  });
});
