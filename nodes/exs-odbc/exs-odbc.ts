// exs-odbc: one ODBC destination (address, dialect, pool size), shared by the connector
// nodes that write to it. User and password are Node-RED credentials, so they never appear
// in flow JSON; `${VAR}` in the address is read from the environment at deploy.
import { parseConnectorAddress } from '../core/contract/connector-address';
import { substituteEnv } from '../core/env';
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

export = function registerExsOdbc(RED: RED) {
  function ExsOdbc(this: ExsOdbcNode, config: ExsOdbcConfig) {
    RED.nodes.createNode(this, config);
    this.odbcSettings = () => {
      const { value, missing } = substituteEnv(config.connector ?? '');
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
