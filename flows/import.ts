// sync.yaml -> Node-RED flow: one tab per contract, laid out left to right and wired
//   exs source -> sync queue -> mapper -> conflict resolver -> connector -> change log -> mqtt out
// with every dead-letter output wired to the change log, which publishes dead letters on
// the job's dead-letter topic.
import { parseConnectorAddress } from '../nodes/core/contract/connector-address';
import { parseContract } from '../nodes/core/contract/load';
import { formatFieldRules } from '../nodes/core/conflict';
import { formatKeyRule, formatMappingRule } from '../nodes/core/mapping';
import { CONTRACT_FIELDS, nodeProperty, type FieldSpec } from '../nodes/core/spec';
import { DEFAULT_BATCH } from '../nodes/shared/batch-message';
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

/** What `splitCredentials` took out of an address, and the address without it. */
interface SplitAddress {
  address: string;
  user?: string;
  password?: string;
}

const ENV_REFERENCE = /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/;
const USER_ATTRIBUTE = /^(UID|USER|USERNAME)$/i;
const PASSWORD_ATTRIBUTE = /^(PWD|PASSWORD)$/i;

/**
 * Pulls user and password out of a connector or broker address, in each form a contract
 * may write them: `odbc:...;UID=u;PWD=p`, `odbc://u:p@host/db?driver=X` (or `?uid=&pwd=`)
 * and `mqtt://u:p@host:1883/...`. A `${VAR}` reference is not a secret and stays in the
 * address (the EXS nodes substitute it at deploy) unless `references` asks for it too.
 */
function splitCredentials(address: string, options: { references?: boolean } = {}): SplitAddress {
  const movable = (value: string) => value !== '' && (options.references || !ENV_REFERENCE.test(value.trim()));
  const raw = address.match(/^odbc:(?!\/\/)(.*)$/s);
  if (raw) return splitConnectionString(raw[1], movable);
  const url = address.match(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)(?:([^@/?]*)@)?([^?]*)(?:\?(.*))?$/s);
  if (!url) return { address };
  const [, scheme, userInfo, rest, query] = url;
  const split: SplitAddress = { address };
  let kept = '';
  if (userInfo !== undefined) {
    const at = userInfo.indexOf(':');
    const [user, password] = at < 0 ? [userInfo, undefined] : [userInfo.slice(0, at), userInfo.slice(at + 1)];
    if (movable(user)) split.user = decodeUrlPart(user);
    if (password !== undefined && movable(password)) split.password = decodeUrlPart(password);
    const keptUser = split.user === undefined ? user : '';
    const keptPassword = split.password === undefined ? password : undefined;
    if (keptPassword !== undefined) kept = `${keptUser}:${keptPassword}@`;
    else if (keptUser !== '') kept = `${keptUser}@`;
  }
  // `odbc://host/db?driver=X&pwd=p`: the query becomes ODBC attributes, so UID/PWD may hide there.
  const isOdbc = /^odbc:/i.test(scheme);
  const parameters = (query ?? '').split('&').filter((parameter) => {
    const [name, value = ''] = parameter.split(/=(.*)/s);
    const role = !isOdbc ? undefined : USER_ATTRIBUTE.test(name) ? 'user' : PASSWORD_ATTRIBUTE.test(name) ? 'password' : undefined;
    if (!role || !movable(value)) return parameter !== '';
    split[role] = decodeUrlPart(value.replace(/\+/g, ' '));
    return false;
  });
  split.address = `${scheme}${kept}${rest}${parameters.length > 0 ? `?${parameters.join('&')}` : ''}`;
  if (split.user === undefined && split.password === undefined) split.address = address;
  return split;
}

/** `DRIVER={..};UID=u;PWD=p` -> the string without UID/PWD, and their values. */
function splitConnectionString(connectionString: string, movable: (value: string) => boolean): SplitAddress {
  const split: SplitAddress = { address: `odbc:${connectionString}` };
  const kept = connectionAttributes(connectionString).filter((attribute) => {
    const match = attribute.match(/^\s*([^=]+?)\s*=(.*)$/s);
    const role = !match ? undefined : USER_ATTRIBUTE.test(match[1]) ? 'user' : PASSWORD_ATTRIBUTE.test(match[1]) ? 'password' : undefined;
    if (!match || !role) return true;
    const written = match[2].trim();
    const value = written.startsWith('{') && written.endsWith('}') ? written.slice(1, -1).replace(/\}\}/g, '}') : written;
    if (!movable(value)) return true;
    split[role] = value;
    return false;
  });
  if (split.user !== undefined || split.password !== undefined) split.address = `odbc:${kept.filter((a) => a.trim() !== '').join(';')}`;
  return split;
}

function decodeUrlPart(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text; // the contract check reports a broken %-escape; keep the text as written
  }
}

/** The node's `credentials`, when a runtime deploy asked for them and there are any. */
function credentialsOf(split: SplitAddress, options: FlowOptions): { credentials?: Record<string, string> } {
  if (!options.withCredentials || (split.user === undefined && split.password === undefined)) return {};
  const credentials: Record<string, string> = {};
  if (split.user !== undefined) credentials.user = split.user;
  if (split.password !== undefined) credentials.password = split.password;
  return { credentials };
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
    job: id('job'), broker: id('broker'), source: id('source'), queue: id('queue'), mapper: id('mapper'),
    resolver: id('resolver'), connector: id('connector'), odbc: id('odbc'), log: id('change-log'), publish: id('mqtt-out'),
  };
  const at = (column: number, row = 0) => ({ x: COLUMN_X[column], y: MAIN_Y + row * 80 });
  const address = parseConnectorAddress(contract.connector);
  // Node-RED's mqtt-broker does not expand `${VAR}` inside its URL, only a whole credential
  // value: for a deploy, references in the broker's user info go to its credentials too.
  const broker = splitCredentials(contract.broker, { references: options.withCredentials });

  const nodes: FlowNode[] = [
    { id: tab, type: 'tab', label: contract.id, disabled: false, info: `EXS sync job: ${contract.source_topic} -> ${contract.destination}` },
    { id: ids.job, type: 'exs-job', z: tab, name: '', ...jobProperties(contract) },
    {
      id: ids.broker, type: 'mqtt-broker', z: tab, name: `${contract.id} broker`, broker: broker.address, port: '',
      // Empty: Node-RED picks one, so runtimes sharing a contract do not push each other off the broker.
      clientid: '', autoConnect: true, usetls: false, protocolVersion: '4', keepalive: '60',
      cleansession: true, autoUnsubscribe: true, birthTopic: '', closeTopic: '', willTopic: '', ...credentialsOf(broker, options),
    },
    {
      // Not Node-RED's mqtt-in: that one acknowledges before anything is stored.
      id: ids.source, type: 'exs-source', z: tab, name: contract.source_topic, job: ids.job, broker: broker.address,
      topic: contract.mqtt_topic, client_id: '', session_expiry: 604800, ...at(0), wires: [[ids.queue]], ...credentialsOf(broker, options),
    },
    { id: ids.queue, type: 'exs-sync-queue', z: tab, name: '', job: ids.job, max_event_bytes: 262144, batch: DEFAULT_BATCH, ...at(1), wires: [[ids.mapper], [ids.log]] },
    {
      id: ids.mapper, type: 'exs-mapper', z: tab, name: '', job: ids.job,
      key: contract.key ? formatKeyRule(contract.key) : '',
      mapping: contract.mapping.map(formatMappingRule).join('\n'),
      version_field: contract.version_field, version_type: contract.version_type, max_clock_skew_seconds: contract.max_clock_skew_seconds,
      ...at(2), wires: [[ids.resolver], [ids.log]],
    },
    {
      id: ids.resolver, type: 'exs-conflict-resolver', z: tab, name: '', job: ids.job, rule: '', timestamp_column: '',
      field_rules: formatFieldRules(contract.field_rules), ...at(3), wires: [[ids.connector]],
    },
  ];

  if (address.kind === 'mqtt') {
    const split = splitCredentials(address.url);
    nodes.push({
      id: ids.connector, type: 'exs-mqtt-connector', z: tab, name: contract.destination, job: ids.job,
      broker: split.address, topic: address.topic, retain: false, ...at(4), wires: [[ids.log], [ids.log]], ...credentialsOf(split, options),
    });
  } else {
    const split = splitCredentials(contract.connector);
    nodes.push({
      id: ids.odbc, type: 'exs-odbc', z: tab, name: contract.destination, connector: split.address, dialect: '', pool_size: 4,
      ...credentialsOf(split, options),
    }, {
      id: ids.connector, type: 'exs-connector', z: tab, name: contract.destination, job: ids.job, odbc: ids.odbc,
      table: contract.table ?? '', state_table: contract.state_table, ...at(4), wires: [[ids.log], [ids.log]],
    });
  }

  nodes.push(
    { id: ids.log, type: 'exs-change-log', z: tab, name: '', job: ids.job, ...at(5), wires: [[ids.publish], [ids.publish]] },
    { id: ids.publish, type: 'mqtt out', z: tab, name: 'changelog + dead letter', topic: '', qos: '1', retain: 'false', broker: ids.broker, ...at(6), wires: [] },
  );
  return nodes;
}

/**
 * Literal user names and passwords in a contract's connector and broker, to tell the user
 * they are left out of a flow file (a runtime deploy keeps them as Node-RED credentials).
 */
export function literalCredentialWarning(contract: Contract, file: string): string | undefined {
  const lines = Object.entries({ connector: contract.connector, broker: contract.broker }).flatMap(([where, address]) => {
    const split = splitCredentials(address ?? '');
    const what = split.password !== undefined ? 'password' : split.user !== undefined ? 'user name' : undefined;
    return what ? [`${file}: the ${where} holds a literal ${what}; it is not written to flow files. Use \${VAR} instead.`] : [];
  });
  return lines.length > 0 ? lines.join('\n') : undefined;
}

export function importContractText(text: string, file: string, options: FlowOptions = {}): ImportResult {
  const { contract, diagnostics } = parseContract(text, file, KEEP_REFERENCES_ENV);
  if (!contract) return { nodes: [], diagnostics, contracts: [] };
  return { nodes: contractToFlow(contract, options), diagnostics, contracts: [contract] };
}
