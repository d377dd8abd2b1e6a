// exs-odbc: one ODBC destination (address, dialect, pool size), shared by the connector
// nodes that write to it. User and password are Node-RED credentials, so they never appear
// in flow JSON; `${VAR}` in the address is read from the environment at deploy. The editor's
// "Test connection" button connects through POST /exs/odbc/test, reading the address the same way.
import { testOdbcConnection } from '../core/connectors/odbc-connector';
import { parseConnectorAddress } from '../core/contract/connector-address';
import { substituteEnv, type Substitution } from '../core/env';
import type { DialectName } from '../core/sql/dialect';
import type { ExsOdbcNode } from '../shared/odbc-node';
import type { RED } from '../shared/red';

interface ExsOdbcConfig {
  id: string;
  name?: string;
  connector: string;
  dialect?: DialectName | '';
  pool_size?: number | string;
}

/**
 * `${VAR}` in the address, substituted so that the value stays one value whatever it holds:
 * %-escaped inside an `odbc://user:pw@host/db` URL (the parser decodes every part), braced
 * when it is a whole `NAME=${VAR}` attribute of a raw connection string (`PWD={a;b}`).
 */
function substituteConnector(connector: string, env: NodeJS.ProcessEnv = process.env): Substitution {
  const mapped = (encode: (value: string) => string): NodeJS.ProcessEnv =>
    new Proxy(env, { get: (target, name) => (typeof target[name as string] === 'string' ? encode(target[name as string]!) : undefined) });
  if (/^odbc:\/\//i.test(connector)) return substituteEnv(connector, mapped(encodeURIComponent));
  const wholeValues = /((?:^|;)\s*[^=;{}]+=\s*)(\$\{[A-Za-z_][A-Za-z0-9_]*\})(?=\s*(?:;|$))/g;
  const missing: string[] = [];
  const braced = connector.replace(wholeValues, (_, name: string, reference: string) => {
    const one = substituteEnv(reference, mapped(braceIfNeeded));
    missing.push(...one.missing);
    // `$${` stays an escape for the pass below, so a value holding `${` is written as `$${`.
    return `${name}${one.value.split('${').join('$${')}`;
  });
  const rest = substituteEnv(braced, env);
  return { value: rest.value, missing: [...missing, ...rest.missing] };
}

/** ODBC values holding `;`, braces or edge spaces are written `{...}`, with `}` doubled. */
function braceIfNeeded(value: string): string {
  return /[;{}]|^\s|\s$/.test(value) ? `{${value.replace(/\}/g, '}}')}}` : value;
}

/** The connection string of the node's address, `${VAR}` read from the environment; throws a readable error. */
function connectionStringOf(connector: string): string {
  const { value, missing } = substituteConnector(connector);
  if (missing.length > 0) throw new Error(`environment variable ${missing.join(', ')} is not set (connector ${connector})`);
  const address = parseConnectorAddress(value.startsWith('odbc') ? value : `odbc:${value}`);
  if (address.kind !== 'odbc') throw new Error(`exs-odbc needs an odbc address, got '${connector}'`);
  return address.connectionString;
}

/** What the editor shows in a password field whose value is stored: the value never leaves the runtime. */
const STORED_PASSWORD = '__PWRD__';
const TEST_CONNECT_TIMEOUT_SECONDS = 10;

/** The Node-RED runtime API beyond `RED` that the test route needs: a deployed node's stored credentials. */
interface CredentialStore {
  getCredentials(id: string): Record<string, string | undefined> | undefined;
}

type TestResult = { ok: true; dbms: string; version: string; dialect: string | null } | { ok: false; error: string };

/**
 * The editor's "Test connection": the address as deploy reads it, the user and password from the
 * dialog. A password left as the editor's placeholder means the one stored for that exs-odbc node
 * (only an exs-odbc node's, so the route cannot send another node's secret to an address of the caller's choosing).
 */
async function testConnection(RED: RED, body: Record<string, unknown>): Promise<TestResult> {
  const text = (value: unknown) => (typeof value === 'string' && value !== '' ? value : undefined);
  let user = text(body.user);
  let password = text(body.password);
  if (password === STORED_PASSWORD) {
    const id = text(body.id);
    const node = id ? (RED.nodes.getNode(id) as { type?: string } | null) : null;
    const stored = id && node?.type === 'exs-odbc' ? (RED.nodes as unknown as CredentialStore).getCredentials(id) : undefined;
    password = stored?.password || undefined;
    if (body.user === undefined) user = stored?.user || undefined;
  }
  try {
    const connectionString = connectionStringOf(String(body.connector));
    const info = await testOdbcConnection(connectionString, { user, password, connectTimeoutSeconds: TEST_CONNECT_TIMEOUT_SECONDS });
    return { ok: true, dbms: info.dbms, version: info.version, dialect: info.dialect ?? null };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}

export = function registerExsOdbc(RED: RED) {
  RED.httpAdmin.post('/exs/odbc/test', RED.auth.needsPermission('exs.write'), (req, res) => {
    const body = req.body ?? {};
    if (typeof body.connector !== 'string' || body.connector.trim() === '') {
      return res.status(400).json({ ok: false, error: 'send {"connector": "odbc:DRIVER={...};...", "user": "...", "password": "...", "id": "<exs-odbc node id>"}' });
    }
    testConnection(RED, body).then((result) => res.json(result), (err: Error) => res.status(500).json({ ok: false, error: err.message }));
  });

  function ExsOdbc(this: ExsOdbcNode, config: ExsOdbcConfig) {
    RED.nodes.createNode(this, config);
    this.odbcSettings = () => {
      return {
        connectionString: connectionStringOf(config.connector ?? ''),
        dialect: config.dialect || undefined,
        poolSize: Number(config.pool_size) || 4,
        user: this.credentials?.user || undefined,
        password: this.credentials?.password || undefined,
      };
    };
  }
  RED.nodes.registerType('exs-odbc', ExsOdbc, {
    credentials: { user: { type: 'text' }, password: { type: 'password' } },
  });
};
