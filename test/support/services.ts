// Where the integration tests find the real services, and the one rule for a missing
// service: skip on a laptop, fail under CI=true (a skipped integration test in CI hides breakage).
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';
import type { TestContext } from 'node:test';

export const MQTT_URL = process.env.EXS_TEST_MQTT_URL ?? 'mqtt://127.0.0.1:1883';

export const PG_CONN =
  process.env.EXS_TEST_PG ??
  'DRIVER={PostgreSQL Unicode};SERVER=127.0.0.1;PORT=5432;DATABASE=test;UID=postgres;PWD=;CommLog=0;Debug=0';

export const MARIADB_CONN =
  process.env.EXS_TEST_MARIADB ?? 'DRIVER={MariaDB Unicode};SERVER=127.0.0.1;PORT=3306;DATABASE=test;UID=root;PWD=';

export function sqliteConn(file: string): string {
  return `DRIVER={SQLite3};Database=${file}`;
}

/** Runs one statement on its own ODBC connection (closed again either way) and returns the rows. */
export async function sqlQuery(connectionString: string, text: string): Promise<Array<Record<string, unknown>>> {
  // Required here, not at the top: tests that never touch a database need no ODBC driver manager.
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const odbc = require('odbc');
  const connection = await odbc.connect(connectionString);
  try {
    return [...(await connection.query(text))];
  } finally {
    await connection.close();
  }
}

const madeDirs: string[] = [];
// Test folders go when the test process ends (set EXS_KEEP_TEST_DIRS=1 to look at them).
process.once('exit', () => {
  if (process.env.EXS_KEEP_TEST_DIRS) return;
  for (const dir of madeDirs) fs.rmSync(dir, { recursive: true, force: true });
});

export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `exs-${prefix}-`));
  madeDirs.push(dir);
  return dir;
}

export type ServiceName = 'mosquitto' | 'postgres' | 'mariadb' | 'sqlite-odbc';

const ports: Record<Exclude<ServiceName, 'sqlite-odbc'>, number> = { mosquitto: 1883, postgres: 5432, mariadb: 3306 };

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(1000);
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('timeout', () => { socket.destroy(); resolve(false); });
    socket.once('error', () => resolve(false));
  });
}

function sqliteDriverInstalled(): boolean {
  try {
    return /\[SQLite3\]/.test(fs.readFileSync('/etc/odbcinst.ini', 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Call at the top of an integration test. Returns true when the service is there.
 * Without it: under CI=true the test fails; elsewhere it is skipped with the reason.
 */
export async function needService(t: TestContext, name: ServiceName): Promise<boolean> {
  const available = name === 'sqlite-odbc' ? sqliteDriverInstalled() : await portOpen(ports[name]);
  if (available) return true;
  const reason = `${name} is not available on this machine`;
  if (process.env.CI === 'true') throw new Error(`${reason} (CI=true: integration services are required)`);
  t.skip(reason);
  return false;
}
