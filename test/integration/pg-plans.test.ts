// PostgreSQL's plans for the connector's statements when the state table has no statistics yet:
// a statement is prepared when a connection opens, often before autovacuum's first ANALYZE of a
// new state table, and keeps that plan. Such a plan must still read a batch's state rows by job
// and key. Read by job alone, each batch read every state row of the job, and a job grows.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { OdbcConnector } from '../../nodes/core/connectors/odbc-connector';
import { DIALECTS, defaultStateTable, type ColumnInfo } from '../../nodes/core/sql/dialect';
import { connectOdbc } from '../../nodes/core/sql/odbc-pool';
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

describe('PostgreSQL plans made before the state table has statistics', () => {
  it('the lock statement and the one-statement write read state rows by job and key', async (t) => {
    if (!(await needService(t, 'postgres'))) return;
    const suffix = crypto.randomBytes(4).toString('hex');
    const table = `exs_it_plan_${suffix}`;
    const stateName = `exs_it_plan_${suffix}_state`;
    const job = `plan_${suffix}`;
    const db = await connectOdbc({ connectionString: PG_CONN });
    try {
      await db.query(`CREATE TABLE ${table} (permit_id varchar(20) PRIMARY KEY, permit_stat varchar(8))`);
      // The connector creates its state table at open, as for a new job.
      const connector = new OdbcConnector({ connectionString: PG_CONN, jobId: job, table, keyColumn: 'permit_id', columns: ['permit_stat'], poolSize: 1, stateTable: stateName });
      await connector.open();
      await connector.close();
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
    } finally {
      await db.query(`DROP TABLE IF EXISTS ${table}`).catch(() => undefined);
      await db.query(`DROP TABLE IF EXISTS ${stateName}`).catch(() => undefined);
      await db.close();
    }
  });
});
