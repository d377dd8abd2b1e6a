// Node-RED flow -> sync.yaml: every tab that holds an exs-job becomes its contract again.
// Reads the same spec as the importer, so import -> export -> import yields the same flow.
import { contractDefaults, contractToYaml } from '../nodes/core/contract/load';
import { parseFieldRules } from '../nodes/core/conflict';
import { parseKeyRule, parseMapping } from '../nodes/core/mapping';
import { CONTRACT_FIELDS, nodeProperty } from '../nodes/core/spec';
import type { Contract } from '../nodes/core/types';
import type { FlowNode } from './flow-types';
import { KEEP_REFERENCES_ENV } from './import';

export interface ExportedContract {
  id: string;
  yaml: string;
}

function firstOfType(nodes: FlowNode[], types: string[], jobId: string): FlowNode | undefined {
  return nodes.find((n) => types.includes(n.type) && n.job === jobId);
}

function str(value: unknown): string {
  return value === undefined || value === null ? '' : String(value);
}

/**
 * A job's integer property as the contract writes it: a number, the `${NAME}` text the
 * importer put there, or undefined when the editor left it empty (the default applies).
 */
function integerProperty(value: unknown): number | string | undefined {
  const text = str(value).trim();
  if (text === '') return undefined;
  return /^\d+$/.test(text) ? Number(text) : text;
}

/** A value starting with `${NAME}` may hold its scheme; it is read after substitution. */
const STARTS_WITH_REFERENCE = /^\$\{/;

/** `mqtt://host:1883`; the editor's broker node keeps host, port and TLS apart. */
function brokerUrl(broker: FlowNode | undefined): string | undefined {
  const host = str(broker?.broker).trim();
  if (host === '') return undefined;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(host) || STARTS_WITH_REFERENCE.test(host)) return host;
  const port = str(broker?.port).trim();
  return `${broker?.usetls ? 'mqtts' : 'mqtt'}://${host}${port ? `:${port}` : ''}`;
}

export function flowToContract(flow: FlowNode[], jobNode: FlowNode): Contract {
  const byId = new Map(flow.map((n) => [n.id, n]));
  const where = `job '${str(jobNode.jobId) || jobNode.id}'`;
  const mapper = firstOfType(flow, ['exs-mapper'], jobNode.id);
  const connector = firstOfType(flow, ['exs-connector', 'exs-mqtt-connector'], jobNode.id);
  const queue = firstOfType(flow, ['exs-sync-queue'], jobNode.id);
  const resolver = firstOfType(flow, ['exs-conflict-resolver'], jobNode.id);
  if (!mapper || !connector) throw new Error(`${where} has no ${mapper ? 'connector' : 'mapper'} node`);
  // The job's EXS source; a hand-wired flow may feed the queue from Node-RED's mqtt-in instead.
  const source =
    flow.find((n) => n.type === 'exs-source' && n.job === jobNode.id) ??
    flow.find((n) => n.type === 'mqtt in' && queue && n.wires?.some((w) => w.includes(queue.id)));
  const sourceBroker = source?.type === 'exs-source' ? str(source.broker) || undefined : brokerUrl(byId.get(str(source?.broker)));

  // Like the runtime (jobSettingsFromConfig), a job without an id goes by its name or node id.
  const id = str(jobNode.jobId) || str(jobNode.name) || jobNode.id;
  const defaults: Record<string, unknown> = contractDefaults(id, str(jobNode.source_topic), KEEP_REFERENCES_ENV);
  // A property the editor left empty takes the contract default, as the runtime does.
  const job: Record<string, unknown> = { id };
  for (const field of CONTRACT_FIELDS.filter((f) => f.owner === 'exs-job' && f.name !== 'id')) {
    if (field.type === 'object' && field.fields) {
      const given = field.fields
        .map((f) => [f.name, integerProperty(jobNode[nodeProperty(f.name)])])
        .filter(([, value]) => value !== undefined);
      job[field.name] = { ...(defaults[field.name] as object), ...Object.fromEntries(given) };
    } else {
      job[field.name] = str(jobNode[nodeProperty(field.name)]) || defaults[field.name] || '';
    }
  }
  const { rules, errors } = parseMapping(str(mapper.mapping).split('\n').map((l) => l.trim()).filter(Boolean));
  if (errors.length > 0) throw new Error(`${where}: mapper: ${errors.map((e) => e.message).join('; ')}`);

  let connectorAddress: string;
  let table: string | undefined;
  if (connector.type === 'exs-mqtt-connector') {
    const url = str(connector.broker) || String(defaults.broker);
    connectorAddress = `${url.replace(/\/+$/, '')}/${str(connector.topic).replace(/^\/+/, '')}`;
  } else {
    const odbc = byId.get(str(connector.odbc));
    if (!odbc) throw new Error(`${where}: connector has no exs-odbc configuration`);
    // The exs-odbc node takes a bare `DSN=...;` connection string as `odbc:DSN=...;`.
    const address = str(odbc.connector).trim();
    connectorAddress = address.startsWith('odbc') || STARTS_WITH_REFERENCE.test(address) ? address : `odbc:${address}`;
    table = str(connector.table) || undefined;
  }

  const fieldRules = resolver ? parseFieldRules(str(resolver.field_rules)) : {};
  const skew = integerProperty(mapper.max_clock_skew_seconds);
  return {
    ...(job as unknown as Contract),
    connector: connectorAddress,
    mapping: rules,
    ...(Object.keys(fieldRules).length > 0 && { field_rules: fieldRules }),
    version_field: str(mapper.version_field) || String(defaults.version_field),
    version_type: (str(mapper.version_type) || defaults.version_type) as Contract['version_type'],
    max_clock_skew_seconds: (skew ?? Number(defaults.max_clock_skew_seconds)) as number,
    table,
    state_table: (connector.type === 'exs-connector' && str(connector.state_table)) || String(defaults.state_table),
    key: mapper.key ? parseKeyRule(str(mapper.key)) : undefined,
    broker: sourceBroker ?? String(defaults.broker),
    mqtt_topic: str(source?.topic) || String(defaults.mqtt_topic),
  };
}

export function exportContracts(flow: FlowNode[]): ExportedContract[] {
  return flow
    .filter((n) => n.type === 'exs-job')
    .map((jobNode) => {
      const contract = flowToContract(flow, jobNode);
      // A flow holds `${NAME}` references until deploy; they stay references in the contract.
      return { id: contract.id, yaml: contractToYaml(contract, KEEP_REFERENCES_ENV) };
    });
}
