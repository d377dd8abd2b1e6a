// Pool hygiene against a real PostgreSQL through psqlODBC: a statement that runs too long is
// cancelled, a caller that finds no free connection gives up in time, and a connection whose
// commit failed (or that died mid-transaction) is closed, never handed out again.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { DIALECTS } from '../../nodes/core/sql/dialect';
import { classifyDbError } from '../../nodes/core/sql/errors';
import { OdbcPool, connectOdbc } from '../../nodes/core/sql/odbc-pool';
import { PG_CONN, needService } from '../support/services';

const pidOf = async (pool: OdbcPool) => Number((await pool.withSession((s) => s.run('SELECT pg_backend_pid() AS pid', [])))[0].pid);

describe('OdbcPool on PostgreSQL', () => {
  it('runs a statement PREPAREd once per connection, values bound verbatim, and asks for a retry on a fresh connection when one lost it', async (t) => {
    if (!(await needService(t, 'postgres'))) return;
    const pool = new OdbcPool({ connectionString: PG_CONN, maxSize: 1, sessionSetup: DIALECTS.postgresql.sessionSetup });
    t.after(() => pool.close());
    const sql = 'SELECT CAST(? AS text) AS a, CAST(? AS text) AS b, CAST(? AS int) + 1 AS c';
    const tricky = "it's $exs$ a \\ test; DROP TABLE x; --";
    const settings = "SELECT pg_backend_pid() AS pid, current_setting('TimeZone') AS tz, current_setting('enable_seqscan') AS seqscan";
    const first = await pool.withSession(async (session) => {
      assert.deepEqual({ ...(await session.runPrepared(sql, [tricky, null, 41]))[0] }, { a: tricky, b: null, c: 42 });
      assert.deepEqual({ ...(await session.runPrepared(sql, ['again', 'x', 1]))[0] }, { a: 'again', b: 'x', c: 2 });
      const [{ n }] = await session.run("SELECT COUNT(*) AS n FROM pg_prepared_statements WHERE name LIKE 'exs_%'", []);
      assert.equal(Number(n), 1, 'prepared once');
      const [before] = await session.run(settings, []);
      // What a pooler in front of PostgreSQL may do between two clients: forget everything.
      await session.run('DISCARD ALL', []);
      await assert.rejects(session.runPrepared(sql, ['lost', 'x', 1]), (err: unknown) => {
        assert.deepEqual([classifyDbError(err).transient, classifyDbError(err).sqlState], [true, '40001']);
        return true;
      });
      return before;
    });
    assert.deepEqual([first.tz, first.seqscan], ['UTC', 'off']);
    // DISCARD ALL reset the session's setup too: the retry gets a fresh connection, set up again.
    const [after] = await pool.withSession((session) => session.run(settings, []));
    assert.notEqual(Number(after.pid), Number(first.pid), 'a fresh connection');
    assert.deepEqual([after.tz, after.seqscan], ['UTC', 'off']);
    assert.equal((await pool.withSession((session) => session.runPrepared(sql, ['back', 'x', 1])))[0].a, 'back', 'prepared again');
  });

  it('binds values too large to inline instead of putting them in the statement, verbatim', async (t) => {
    if (!(await needService(t, 'postgres'))) return;
    const pool = new OdbcPool({ connectionString: PG_CONN, maxSize: 1 });
    t.after(() => pool.close());
    const sql = 'SELECT CAST(? AS text) AS a, length(CAST(? AS text)) AS n';
    const large = `it's $exs$ ${'é'.repeat(40_000)} ?; --`;
    await pool.withSession(async (session) => {
      const [row] = await session.runPrepared(sql, [large, large]);
      assert.equal(row.a, large);
      assert.equal(Number(row.n), large.length);
      const [{ n }] = await session.run("SELECT COUNT(*) AS n FROM pg_prepared_statements WHERE name LIKE 'exs_%'", []);
      assert.equal(Number(n), 0, 'bound, not prepared');
      assert.equal((await session.runPrepared(sql, ['small', 'x']))[0].a, 'small');
      const [{ m }] = await session.run("SELECT COUNT(*) AS m FROM pg_prepared_statements WHERE name LIKE 'exs_%'", []);
      assert.equal(Number(m), 1, 'small values still go through the prepared statement');
    });
  });

  it('sets up each session in UTC, with generic plans and no sequential scans for what EXS prepares', async (t) => {
    if (!(await needService(t, 'postgres'))) return;
    const pool = new OdbcPool({ connectionString: PG_CONN, maxSize: 1, sessionSetup: DIALECTS.postgresql.sessionSetup });
    t.after(() => pool.close());
    const [settings] = await pool.withSession((s) => s.run("SELECT current_setting('TimeZone') AS tz, current_setting('plan_cache_mode') AS plans, current_setting('enable_seqscan') AS seqscan", []));
    assert.deepEqual({ ...settings }, { tz: 'UTC', plans: 'force_generic_plan', seqscan: 'off' });
  });

  it('warms up: opens the connections asked for at once, each with its statements already PREPAREd', async (t) => {
    if (!(await needService(t, 'postgres'))) return;
    const sql = 'SELECT CAST(? AS int) * 2 AS twice';
    const pool = new OdbcPool({ connectionString: PG_CONN, maxSize: 3, prepareOnOpen: [sql] });
    t.after(() => pool.close());
    await pool.warm(2);
    assert.deepEqual(pool.stats(), { size: 2, idle: 2, waiting: 0 });
    await pool.warm(2);
    assert.equal(pool.stats().size, 2, 'warming again opens nothing more');
    // Both connections are busy at once, so both are looked at; neither prepares anything on first use.
    const seen = await Promise.all([0, 1].map(() => pool.withSession(async (session) => {
      const [{ n }] = await session.run("SELECT COUNT(*) AS n FROM pg_prepared_statements WHERE name LIKE 'exs_%'", []);
      const [{ twice }] = await session.runPrepared(sql, [21]);
      const [{ m }] = await session.run("SELECT COUNT(*) AS m FROM pg_prepared_statements WHERE name LIKE 'exs_%'", []);
      return [Number(n), Number(twice), Number(m)];
    })));
    assert.deepEqual(seen, [[1, 42, 1], [1, 42, 1]]);
    assert.equal(pool.stats().size, 2);
  });

  it('replaces a connection that died while it idled before handing it out', async (t) => {
    if (!(await needService(t, 'postgres'))) return;
    const pool = new OdbcPool({ connectionString: PG_CONN, maxSize: 1, pingSql: 'SELECT 1', idleCheckMs: 0 });
    t.after(() => pool.close());
    await pool.warm(1);
    const first = await pidOf(pool);
    const killer = await connectOdbc({ connectionString: PG_CONN });
    try {
      await killer.query(`SELECT pg_terminate_backend(${first})`);
    } finally {
      await killer.close();
    }
    // No error reaches the caller: the dead connection fails its ping and a fresh one does the work.
    const second = await pidOf(pool);
    assert.notEqual(second, first);
    assert.deepEqual(pool.stats(), { size: 1, idle: 1, waiting: 0 });
  });

  it('fails to warm up with the connection error, leaving no connection counted', async (t) => {
    if (!(await needService(t, 'postgres'))) return;
    const pool = new OdbcPool({ connectionString: PG_CONN, maxSize: 2, prepareOnOpen: ['SELECT * FROM exs_no_such_table_anywhere'] });
    t.after(() => pool.close());
    await assert.rejects(pool.warm(2), (err: unknown) => /exs_no_such_table_anywhere/.test(classifyDbError(err).message));
    assert.deepEqual(pool.stats(), { size: 0, idle: 0, waiting: 0 });
  });

  it('cancels a statement after the query timeout and closes that connection', async (t) => {
    if (!(await needService(t, 'postgres'))) return;
    const pool = new OdbcPool({ connectionString: PG_CONN, maxSize: 1, queryTimeoutSeconds: 1, pingSql: 'SELECT 1' });
    t.after(() => pool.close());
    const before = await pidOf(pool);
    await assert.rejects(pool.withSession((s) => s.run('SELECT pg_sleep(5)', [])), (err: unknown) => {
      assert.deepEqual([classifyDbError(err).transient, classifyDbError(err).sqlState], [true, '57014']);
      return true;
    });
    assert.deepEqual(pool.stats(), { size: 0, idle: 0, waiting: 0 }, 'the timed-out connection is gone');
    assert.notEqual(await pidOf(pool), before, 'the next statement runs on a fresh connection');
  });

  it('fails a caller that waits longer than the acquire timeout for a free connection, as a transient error', async (t) => {
    if (!(await needService(t, 'postgres'))) return;
    const pool = new OdbcPool({ connectionString: PG_CONN, maxSize: 1, acquireTimeoutMs: 300 });
    t.after(() => pool.close());
    let release!: () => void;
    const held = pool.withSession(() => new Promise<void>((resolve) => (release = resolve)));
    await assert.rejects(pool.withSession((s) => s.run('SELECT 1', [])), (err: unknown) => {
      assert.equal(classifyDbError(err).transient, true);
      assert.match(String(err), /no free database connection within 0\.3 s \(pool size 1\)/);
      return true;
    });
    assert.equal(pool.stats().waiting, 0, 'the caller that gave up no longer waits');
    release();
    await held;
    assert.equal((await pool.withSession((s) => s.run('SELECT 1 AS one', [])))[0].one, 1, 'the connection serves the next caller');
  });

  it('closes a connection whose transaction could not commit; the next one is fresh', async (t) => {
    if (!(await needService(t, 'postgres'))) return;
    const pool = new OdbcPool({ connectionString: PG_CONN, maxSize: 2, pingSql: 'SELECT 1' });
    const admin = await connectOdbc({ connectionString: PG_CONN });
    t.after(async () => {
      await pool.close();
      await admin.close();
    });
    let victim = 0;
    await assert.rejects(pool.withSession((s) => s.transaction(async () => {
      victim = Number((await s.run('SELECT pg_backend_pid() AS pid', []))[0].pid);
      await admin.query('SELECT pg_terminate_backend(?)', [String(victim)]);
    })), (err: unknown) => classifyDbError(err).transient);
    assert.deepEqual(pool.stats(), { size: 0, idle: 0, waiting: 0 });
    const next = await pidOf(pool);
    assert.notEqual(next, victim);
  });

  it('closes a connection whose commit failed even when the data is at fault (a deferred constraint)', async (t) => {
    if (!(await needService(t, 'postgres'))) return;
    const pool = new OdbcPool({ connectionString: PG_CONN, maxSize: 1, pingSql: 'SELECT 1' });
    const table = `exs_deferred_${process.pid}`;
    await pool.withSession((s) => s.run(`CREATE TABLE ${table} (id int, code int UNIQUE DEFERRABLE INITIALLY DEFERRED)`, []));
    t.after(async () => {
      await pool.withSession((s) => s.run(`DROP TABLE ${table}`, [])).catch(() => undefined);
      await pool.close();
    });
    const first = await pidOf(pool);
    await assert.rejects(pool.withSession((s) => s.transaction(async () => {
      await s.run(`INSERT INTO ${table} VALUES (1, 7)`, []);
      await s.run(`INSERT INTO ${table} VALUES (2, 7)`, []); // accepted until COMMIT checks the constraint
    })), (err: unknown) => {
      assert.deepEqual([classifyDbError(err).transient, classifyDbError(err).sqlState], [false, '23505'], String(err));
      return true;
    });
    assert.deepEqual(pool.stats(), { size: 0, idle: 0, waiting: 0 }, 'a connection whose commit failed is not trusted again');
    assert.notEqual(await pidOf(pool), first);
  });

  it('tells a connection that died without a diagnostic from a bad statement', async (t) => {
    if (!(await needService(t, 'postgres'))) return;
    const pool = new OdbcPool({ connectionString: PG_CONN, maxSize: 1, pingSql: 'SELECT 1' });
    const admin = await connectOdbc({ connectionString: PG_CONN });
    t.after(async () => {
      await pool.close();
      await admin.close();
    });
    // A bad statement stays a permanent error and keeps its (healthy) connection.
    const first = await pidOf(pool);
    await assert.rejects(pool.withSession((s) => s.run('SELECT no_such_column FROM pg_class', [])), (err: unknown) => !classifyDbError(err).transient);
    assert.equal(await pidOf(pool), first);
    // Killed between two transactions: psqlODBC then reports the next parameterized statement with no SQLSTATE at all.
    await admin.query('SELECT pg_terminate_backend(?)', [String(first)]);
    await assert.rejects(pool.withSession((s) => s.transaction(() => s.run('SELECT 1 WHERE 1 = ?', ['1']))), (err: unknown) => {
      assert.equal(classifyDbError(err).transient, true, String(err));
      return true;
    });
    assert.notEqual(await pidOf(pool), first);
  });
});
