// What an exs-odbc config node offers the connector nodes that use it.
import type { DialectName } from '../core/sql/dialect';
import type { RedNode } from './red';

export interface OdbcSettings {
  connectionString: string;
  dialect?: DialectName;
  poolSize: number;
  user?: string;
  password?: string;
}

export interface ExsOdbcNode extends RedNode {
  /** Resolved at deploy; throws a readable error when the address is wrong or a variable unset. */
  odbcSettings(): OdbcSettings;
}
