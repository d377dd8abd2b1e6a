// Node-RED flow JSON, as far as the importer and exporter read and write it.
import { createHash } from 'node:crypto';

export interface FlowNode {
  id: string;
  type: string;
  z?: string;
  name?: string;
  x?: number;
  y?: number;
  wires?: string[][];
  credentials?: Record<string, string>;
  [property: string]: unknown;
}

/**
 * A node id derived from the contract id and the node's role. Importing the same contract
 * again yields the same ids, so the job's tab is replaced instead of duplicated.
 */
export function derivedId(contractId: string, role: string): string {
  return createHash('sha1').update(`exs:${contractId}:${role}`).digest('hex').slice(0, 16);
}

export function tabIdFor(contractId: string): string {
  return derivedId(contractId, 'tab');
}

/**
 * Replaces each incoming tab (and everything on it) in `existing`, keeping the rest of
 * the user's flows untouched and in order.
 */
export function mergeFlows(existing: FlowNode[], incoming: FlowNode[]): FlowNode[] {
  const incomingIds = new Set(incoming.map((n) => n.id));
  const replacedTabs = new Set(incoming.filter((n) => n.type === 'tab').map((n) => n.id));
  const kept = existing.filter((n) => !incomingIds.has(n.id) && !(n.z && replacedTabs.has(n.z)));
  return [...kept, ...incoming];
}
