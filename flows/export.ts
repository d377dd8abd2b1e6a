// Node-RED flow -> sync.yaml: every tab that holds an exs-job becomes its contract again.
// Reads the same spec as the importer, so import -> export -> import yields the same flow.
import { contractToYaml } from '../nodes/core/contract/load';
import { parseKeyRule, parseMapping } from '../nodes/core/mapping';
import { CONTRACT_FIELDS, nodeProperty } from '../nodes/core/spec';
import type { Contract } from '../nodes/core/types';
import type { FlowNode } from './flow-types';

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

export function flowToContract(flow: FlowNode[], jobNode: FlowNode): Contract {
  const byId = new Map(flow.map((n) => [n.id, n]));
  const where = `job '${str(jobNode.jobId) || jobNode.id}'`;
  const mapper = firstOfType(flow, ['exs-mapper'], jobNode.id);
  const connector = firstOfType(flow, ['exs-connector', 'exs-mqtt-connector'], jobNode.id);
  const queue = firstOfType(flow, ['exs-sync-queue'], jobNode.id);
  if (!mapper || !connector) throw new Error(`${where} has no ${mapper ? 'connector' : 'mapper'} node`);
  const source = flow.find((n) => n.type === 'mqtt in' && queue && n.wires?.some((w) => w.includes(queue.id)));
  const broker = source ? byId.get(str(source.broker)) : undefined;

  const job: Record<string, unknown> = {};
  for (const field of CONTRACT_FIELDS.filter((f) => f.owner === 'exs-job')) {
    if (field.type === 'object' && field.fields) {
      job[field.name] = Object.fromEntries(field.fields.map((f) => [f.name, Number(jobNode[nodeProperty(f.name)])]));
    } else {
      job[field.name] = str(jobNode[nodeProperty(field.name)]);
    }
  }
  const { rules, errors } = parseMapping(str(mapper.mapping).split('\n').map((l) => l.trim()).filter(Boolean));
  if (errors.length > 0) throw new Error(`${where}: mapper: ${errors.map((e) => e.message).join('; ')}`);

  let connectorAddress: string;
  let table: string | undefined;
  if (connector.type === 'exs-mqtt-connector') {
    connectorAddress = `${str(connector.broker).replace(/\/+$/, '')}/${str(connector.topic).replace(/^\/+/, '')}`;
  } else {
    const odbc = byId.get(str(connector.odbc));
    if (!odbc) throw new Error(`${where}: connector has no exs-odbc configuration`);
    connectorAddress = str(odbc.connector);
    table = str(connector.table) || undefined;
  }

  return {
    ...(job as unknown as Contract),
    connector: connectorAddress,
    mapping: rules,
    table,
    key: mapper.key ? parseKeyRule(str(mapper.key)) : undefined,
    broker: str(broker?.broker) || 'mqtt://127.0.0.1:1883',
    mqtt_topic: str(source?.topic),
  };
}

export function exportContracts(flow: FlowNode[]): ExportedContract[] {
  return flow
    .filter((n) => n.type === 'exs-job')
    .map((jobNode) => {
      const contract = flowToContract(flow, jobNode);
      return { id: contract.id, yaml: contractToYaml(contract) };
    });
}
