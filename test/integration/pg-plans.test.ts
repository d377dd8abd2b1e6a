// PostgreSQL's plans for the connector's statements when the state table has no statistics yet:
// a statement is prepared when a connection opens, often before autovacuum's first ANALYZE of a
// new state table, and keeps that plan. Such a plan must still read a batch's state rows by job
// and key. Read by job alone, each batch read every state row of the job, and a job grows.
// Nor may a plan made while the tables were nearly empty read them whole once they have grown.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { OdbcConnector } from '../../nodes/core/connectors/odbc-connector';
import { DIALECTS, defaultStateTable, type ColumnInfo } from '../../nodes/core/sql/dialect';
import { connectOdbc, type OdbcConnection } from '../../nodes/core/sql/odbc-pool';
import { PG_CONN, needService } from '../support/services';

const COLUMNS: ColumnInfo[] = [
  { name: 'permit_id', kind: 'text', sqlType: 'varchar(20)', pg: { base: 'character varying', name: 'varchar', category: 'S', typmod: 24 } },
  { name: 'permit_stat', kind: 'text', sqlType: 'varchar(8)', pg: { base: 'character varying', name: 'varchar', category: 'S', typmod: 12 } },
];

/** `?` placeholders as PREPARE's $1, $2, ... (none of these statements has a `?` of its own). */
const numbered = (sql: string) => {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
};

/**
 * The state index read by job and key together: the key inside the index's own condition. (The
 * job's id is a parameter, spelt `(InitPlan 1).col1` from PostgreSQL 17 on.)
 */
const BY_JOB_AND_KEY = /Index Cond: \(\(\(job_id\)::text = (\$\d+|\(InitPlan \d+\)\.col\d+)\) AND \(\(record_key\)::text = (ANY \(\$\d+\)|\w+\.exs_key)\)\)/;

/**
 * Whether every read of `tables` in an EXPLAIN is by key: each scan of them an index scan with an
 * index condition on `keyColumn` (a full index scan has none, or the job's id alone), or a bitmap
 * scan rechecking it; anything else (a sequential scan, say) is a fault.
 */
function readsOnlyByKey(plan: string, tables: Array<{ name: string; keyColumn: string }>): string[] {
  const lines = plan.split('\n');
  const faults: string[] = [];
  lines.forEach((line, i) => {
    for (const { name, keyColumn } of tables) {
      if (!new RegExp(`Scan (using \\S+ )?on ${name}\\b`).test(line)) continue;
      // The node's own condition: the first line below it that is one, before its next child node.
      const condition = lines.slice(i + 1).find((next) => /^\s*(Index Cond|Recheck Cond|Filter|->)/.test(next))?.trim() ?? '';
      const expected = /Bitmap Heap Scan/.test(line) ? 'Recheck Cond' : /Index (Only )?Scan/.test(line) ? 'Index Cond' : undefined;
      if (!expected || !condition.startsWith(expected) || !condition.includes(keyColumn)) faults.push(`${line.trim()} / ${condition}`);
    }
  });
  return faults;
}

/** A new job's tables, as a deploy leaves them: the destination, and the state table the connector creates at open. */
async function withNewJob(name: string, body: (db: OdbcConnection, names: { table: string; stateName: string; job: string; suffix: string }) => Promise<void>): Promise<void> {
  const suffix = crypto.randomBytes(4).toString('hex');
  const table = `exs_it_${name}_${suffix}`;
  const stateName = `exs_it_${name}_${suffix}_state`;
  const job = `${name}_${suffix}`;
  const db = await connectOdbc({ connectionString: PG_CONN });
  try {
    await db.query(`CREATE TABLE ${table} (permit_id varchar(20) PRIMARY KEY, permit_stat varchar(8))`);
    const connector = new OdbcConnector({ connectionString: PG_CONN, jobId: job, table, keyColumn: 'permit_id', columns: ['permit_stat'], poolSize: 1, stateTable: stateName });
    await connector.open();
    await connector.close();
    await body(db, { table, stateName, job, suffix });
  } finally {
    await db.query(`DROP TABLE IF EXISTS ${table}`).catch(() => undefined);
    await db.query(`DROP TABLE IF EXISTS ${stateName}`).catch(() => undefined);
    await db.close();
  }
}

describe('PostgreSQL plans made before the state table has statistics', () => {
  it('the lock statement and the one-statement write read state rows by job and key', async (t) => {
    if (!(await needService(t, 'postgres'))) return;
    await withNewJob('plan', async (db, { table, stateName, job, suffix }) => {
      // A job of 2,000 records, never analyzed (autovacuum has not come by yet).
      await db.query(`INSERT INTO ${stateName} (job_id, record_key, version, tiebreak, fingerprint, written, parked, updated_at)`
        + ` SELECT '${job}', 'P-' || g, NULL, 't', 'f', '{}', NULL, '' FROM generate_series(1, 2000) g`);
      await db.query('SET plan_cache_mode = force_generic_plan');
      const state = defaultStateTable(stateName);
      const batch = DIALECTS.postgresql.batch;
      if (batch?.binding !== 'arrays') throw new Error('PostgreSQL binds batches as arrays');
      const planOf = async (name: string, sql: string, args: string) => {
        await db.query(`PREPARE ${name}(text, text) AS ${numbered(sql)}`);
        const rows = await db.query(`EXPLAIN EXECUTE ${name}(${args})`) as unknown as Array<Record<string, unknown>>;
        return rows.map((row) => String(Object.values(row)[0])).join('\n');
      };
      const lock = await planOf(`exs_plan_lock_${suffix}`, batch.lock(state, table, COLUMNS[0], COLUMNS), `'{P-1,P-2}', '${job}'`);
      assert.match(lock, BY_JOB_AND_KEY, `the lock statement:\n${lock}`);
      const input = JSON.stringify([{ o: 1, k: 'P-1', sf: 'f', sv: null, st: 't', rv: null, w: 1, r: { permit_id: 'P-1', permit_stat: 'A' }, nv: null, nt: 't2', nf: 'f2', nw: '{}', nu: '' }]);
      const write = await planOf(`exs_plan_write_${suffix}`, batch.writeKnown(state, table, COLUMNS, COLUMNS), `'${input}', '${job}'`);
      assert.match(write, BY_JOB_AND_KEY, `the one-statement write:\n${write}`);
    });
  });
  it('plans made while the tables were empty still read by key once they have grown', async (t) => {
    if (!(await needService(t, 'postgres'))) return;
    await withNewJob('grow', async (db, { table, stateName, job, suffix }) => {
      // A new job's tables, analyzed while still empty (autovacuum's first visit, or an ANALYZE),
      // and not again during the test: an ANALYZE after they grow would make the plans again.
      for (const name of [table, stateName]) {
        await db.query(`ALTER TABLE ${name} SET (autovacuum_enabled = off)`);
        await db.query(`ANALYZE ${name}`);
      }
      // The session as the connector's connections set it up.
      for (const statement of DIALECTS.postgresql.sessionSetup ?? []) await db.query(statement);
      const state = defaultStateTable(stateName);
      const batch = DIALECTS.postgresql.batch;
      if (batch?.binding !== 'arrays') throw new Error('PostgreSQL binds batches as arrays');
      const statements = {
        lock: batch.lock(state, table, COLUMNS[0], COLUMNS),
        write: batch.writeKnown(state, table, COLUMNS, COLUMNS),
      };
      const record = (key: string, known: boolean) => ({ o: 1, k: key, sf: known ? 'f' : null, sv: null, st: known ? 't' : null, rv: null, w: 1,
        r: { permit_id: key, permit_stat: 'A' }, nv: null, nt: 't2', nf: 'f2', nw: '{}', nu: '' });
      const args = {
        lock: `'{P-1,P-2}', '${job}'`,
        // Known records whose row is missing: the statement's every part has something to do
        // once the tables have grown (on the empty tables it is only planned and finds nothing).
        write: `'${JSON.stringify([record('P-1', true), { ...record('P-2', true), o: 2 }])}', '${job}'`,
      };
      // Prepared and first run on the empty tables: the plan each connection then keeps.
      for (const name of ['lock', 'write'] as const) {
        await db.query(`PREPARE exs_grow_${name}_${suffix}(text, text) AS ${numbered(statements[name])}`);
        await db.query('BEGIN');
        await db.query(`EXECUTE exs_grow_${name}_${suffix}(${args[name]})`);
        await db.query('ROLLBACK');
      }
      // The job grows to 2,000 records.
      await db.query(`INSERT INTO ${table} SELECT 'P-' || g, 'S' FROM generate_series(3, 2000) g`);
      await db.query(`INSERT INTO ${stateName} (job_id, record_key, version, tiebreak, fingerprint, written, parked, updated_at)`
        + ` SELECT '${job}', 'P-' || g, NULL, 't', 'f', '{}', NULL, '' FROM generate_series(1, 2000) g`);
      for (const name of ['lock', 'write'] as const) {
        const rows = await db.query(`EXPLAIN EXECUTE exs_grow_${name}_${suffix}(${args[name]})`) as unknown as Array<Record<string, unknown>>;
        const plan = rows.map((row) => String(Object.values(row)[0])).join('\n');
        const faults = readsOnlyByKey(plan, [{ name: stateName, keyColumn: 'record_key' }, { name: table, keyColumn: 'permit_id' }]);
        assert.deepEqual(faults, [], `the ${name} statement reads a whole table:\n${plan}`);
        // Each table is read at all (the check above has something to check).
        assert.match(plan, new RegExp(`on ${stateName}\\b`));
        assert.match(plan, new RegExp(`on ${table}\\b`));
      }
    });
  });
});
