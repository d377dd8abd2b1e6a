// exs-connector: upserts each mapped record into a table over ODBC (see core OdbcConnector).
import { OdbcConnector } from '../core/connectors/odbc-connector';
import { runConnectorNode } from '../shared/connector-node';
import type { ExsOdbcNode } from '../shared/odbc-node';
import type { JobNodeConfig, RED, RedNode } from '../shared/red';

interface ConnectorConfig extends JobNodeConfig {
  odbc: string;
  table: string;
  /** Empty: EXS_SYNC_STATE. */
  state_table?: string;
}

export = function registerExsConnector(RED: RED) {
  function ExsConnector(this: RedNode, config: ConnectorConfig) {
    RED.nodes.createNode(this, config);
    runConnectorNode(RED, this, config, (schema, job) => {
      const odbcNode = RED.nodes.getNode(config.odbc) as ExsOdbcNode | null;
      if (!odbcNode) throw new Error('no exs-odbc connection configured');
      if (!config.table) throw new Error('no table configured');
      if (!schema) throw new Error('no exs-mapper of this job declared its columns');
      const settings = odbcNode.odbcSettings();
      return new OdbcConnector({
        connectionString: settings.connectionString,
        jobId: job.id,
        stateTable: config.state_table || undefined,
        dialect: settings.dialect,
        poolSize: settings.poolSize,
        user: settings.user,
        password: settings.password,
        table: config.table,
        keyColumn: schema.keyColumn,
        columns: schema.columns,
      });
    });
  }
  RED.nodes.registerType('exs-connector', ExsConnector);
};
