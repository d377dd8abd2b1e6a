// exs-odbc: one ODBC destination (address, dialect, pool size), shared by the connector
// nodes that write to it. User and password are Node-RED credentials, so they never appear
// in flow JSON; `${VAR}` in the address is read from the environment at deploy.
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

export = function registerExsOdbc(RED: RED) {
  function ExsOdbc(this: ExsOdbcNode, config: ExsOdbcConfig) {
    RED.nodes.createNode(this, config);
    this.odbcSettings = () => {
      const { value, missing } = substituteConnector(config.connector ?? '');
      if (missing.length > 0) throw new Error(`environment variable ${missing.join(', ')} is not set (connector ${config.connector})`);
      const address = parseConnectorAddress(value.startsWith('odbc') ? value : `odbc:${value}`);
      if (address.kind !== 'odbc') throw new Error(`exs-odbc needs an odbc address, got '${config.connector}'`);
      return {
        connectionString: address.connectionString,
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
