// sync.yaml -> Node-RED flow: one tab per contract, laid out left to right and wired
//   mqtt in -> sync queue -> mapper -> conflict resolver -> connector -> change log -> mqtt out
// with every dead-letter output wired to the change log, which publishes dead letters on
// the job's dead-letter topic.
import { parseConnectorAddress } from '../nodes/core/contract/connector-address';
import { parseContract } from '../nodes/core/contract/load';
import { formatKeyRule, formatMappingRule } from '../nodes/core/mapping';
import { CONTRACT_FIELDS, nodeProperty, type FieldSpec } from '../nodes/core/spec';
import type { Contract, Diagnostic } from '../nodes/core/types';
import { derivedId, tabIdFor, type FlowNode } from './flow-types';

const COLUMN_X = [130, 320, 500, 690, 880, 1070, 1270];
const MAIN_Y = 100;

/**
 * Environment for validating at import time: `${VAR}` references are kept as written, so
 * secrets stay out of the flow and are read where the flow is deployed. The broker default
 * is the one exception: it comes from the importing machine (EXS_MQTT_URL) like any default.
 */
export const KEEP_REFERENCES_ENV: NodeJS.ProcessEnv = new Proxy({} as NodeJS.ProcessEnv, {
  get: (_target, name) => (name === 'EXS_MQTT_URL' ? process.env.EXS_MQTT_URL : `\${${String(name)}}`),
  has: () => true,
});

export interface ImportResult {
  nodes: FlowNode[];
  diagnostics: Diagnostic[];
  contracts: Contract[];
}

/** `A=1;B={x;y}` -> ['A=1', 'B={x;y}']: semicolons inside braces belong to the value. */
function connectionAttributes(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '{') depth++;
    if (ch === '}') depth = Math.max(0, depth - 1);
    if (ch === ';' && depth === 0) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts;
}

/** Literal user/password in an ODBC address move to the node's credentials. */
function splitCredentials(address: string): { address: string; user?: string; password?: string } {
  const raw = address.match(/^odbc:(?!\/\/)(.*)$/s);
  if (!raw) return { address }; // odbc://DSN and odbc://host forms carry no credentials
  let user: string | undefined;
  let password: string | undefined;
  const kept = connectionAttributes(raw[1]).filter((attribute) => {
    const match = attribute.match(/^\s*(UID|USER|PWD|PASSWORD)\s*=(.*)$/is);
    if (!match) return true;
    const value = match[2].trim();
    // A `${VAR}` reference is not a secret: it stays and is read where the flow is deployed.
    if (/^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/.test(value)) return true;
    const unwrapped = value.replace(/^\{(.*)\}$/s, '$1');
    if (/^(UID|USER)$/i.test(match[1])) user = unwrapped;
    else password = unwrapped;
    return false;
  });
  return { address: `odbc:${kept.filter((a) => a.trim() !== '').join(';')}`, user, password };
}

function jobProperties(contract: Contract): Record<string, unknown> {
  const props: Record<string, unknown> = {};
  const take = (field: FieldSpec, value: unknown) => {
    if (field.type === 'object' && field.fields && value && typeof value === 'object') {
      for (const nested of field.fields) take(nested, (value as Record<string, unknown>)[nested.name]);
    } else {
      props[nodeProperty(field.name)] = value ?? '';
    }
  };
  for (const field of CONTRACT_FIELDS.filter((f) => f.owner === 'exs-job')) {
    take(field, (contract as unknown as Record<string, unknown>)[field.name]);
  }
  return props;
}

export interface FlowOptions {
  /** Put literal connector credentials into the nodes (for a runtime deploy, never for a file). */
  withCredentials?: boolean;
}

export function contractToFlow(contract: Contract, options: FlowOptions = {}): FlowNode[] {
  const id = (role: string) => derivedId(contract.id, role);
  const tab = tabIdFor(contract.id);
  const ids = {
    job: id('job'), broker: id('broker'), source: id('mqtt-in'), queue: id('queue'), mapper: id('mapper'),
    resolver: id('resolver'), connector: id('connector'), odbc: id('odbc'), log: id('change-log'), publish: id('mqtt-out'),
  };
  const at = (column: number, row = 0) => ({ x: COLUMN_X[column], y: MAIN_Y + row * 80 });
  const address = parseConnectorAddress(contract.connector);

  const nodes: FlowNode[] = [
    { id: tab, type: 'tab', label: contract.id, disabled: false, info: `EXS sync job: ${contract.source_topic} -> ${contract.destination}` },
    { id: ids.job, type: 'exs-job', z: tab, name: '', ...jobProperties(contract) },
    {
      id: ids.broker, type: 'mqtt-broker', z: tab, name: `${contract.id} broker`, broker: contract.broker, port: '',
      clientid: `exs-${contract.id}`.slice(0, 64), autoConnect: true, usetls: false, protocolVersion: '4', keepalive: '60',
      cleansession: true, autoUnsubscribe: true, birthTopic: '', closeTopic: '', willTopic: '',
    },
    {
      id: ids.source, type: 'mqtt in', z: tab, name: contract.source_topic, topic: contract.mqtt_topic, qos: '1', datatype: 'utf8',
      broker: ids.broker, nl: false, rap: true, rh: 0, inputs: 0, ...at(0), wires: [[ids.queue]],
    },
    { id: ids.queue, type: 'exs-sync-queue', z: tab, name: '', job: ids.job, max_event_bytes: 262144, ...at(1), wires: [[ids.mapper], [ids.log]] },
    {
      id: ids.mapper, type: 'exs-mapper', z: tab, name: '', job: ids.job,
      key: contract.key ? formatKeyRule(contract.key) : '',
      mapping: contract.mapping.map(formatMappingRule).join('\n'),
      ...at(2), wires: [[ids.resolver], [ids.log]],
    },
    { id: ids.resolver, type: 'exs-conflict-resolver', z: tab, name: '', job: ids.job, rule: '', timestamp_column: '', ...at(3), wires: [[ids.connector]] },
  ];

  if (address.kind === 'mqtt') {
    nodes.push({
      id: ids.connector, type: 'exs-mqtt-connector', z: tab, name: contract.destination, job: ids.job,
      broker: address.url, topic: address.topic, retain: false, ...at(4), wires: [[ids.log], [ids.log]],
    });
  } else {
    const split = splitCredentials(contract.connector);
    const odbc: FlowNode = { id: ids.odbc, type: 'exs-odbc', z: tab, name: contract.destination, connector: split.address, dialect: '', pool_size: 4 };
    if (options.withCredentials && (split.user || split.password)) {
      odbc.credentials = { user: split.user ?? '', password: split.password ?? '' };
    }
    nodes.push(odbc, {
      id: ids.connector, type: 'exs-connector', z: tab, name: contract.destination, job: ids.job, odbc: ids.odbc,
      table: contract.table ?? '', ...at(4), wires: [[ids.log], [ids.log]],
    });
  }

  nodes.push(
    { id: ids.log, type: 'exs-change-log', z: tab, name: '', job: ids.job, ...at(5), wires: [[ids.publish], [ids.publish]] },
    { id: ids.publish, type: 'mqtt out', z: tab, name: 'changelog + dead letter', topic: '', qos: '1', retain: 'false', broker: ids.broker, ...at(6), wires: [] },
  );
  return nodes;
}

/** Literal secrets found in a contract's connector, to tell the user where they went. */
export function literalCredentialWarning(contract: Contract, file: string): string | undefined {
  const split = splitCredentials(contract.connector);
  return split.password ? `${file}: the connector holds a literal password; it is not written to flow files. Use \${VAR} instead.` : undefined;
}

export function importContractText(text: string, file: string, options: FlowOptions = {}): ImportResult {
  const { contract, diagnostics } = parseContract(text, file, KEEP_REFERENCES_ENV);
  if (!contract) return { nodes: [], diagnostics, contracts: [] };
  return { nodes: contractToFlow(contract, options), diagnostics, contracts: [contract] };
}
