// What a Node-RED deploy stopped, as the runtime tells it at `flows:started`.
import type { DeployInfo } from './red';

/**
 * Whether a deploy stopped a node that messages from a given node (its id in the deployed flows: a
 * node inside a subflow instance by its id in the subflow, Node-RED's `_alias`) reach before the job's change
 * log (by wires, and by link-out nodes to their link-in nodes): such a node (a delay node between
 * the mapper and the connector, say) dropped what it held. Node-RED stops (flows/index.js stop()):
 * in a deploy of modified nodes the changed and removed nodes, in one of modified flows also the
 * nodes wired to them (`linked`) and the rewired ones, and in both every node of a flow whose own
 * settings changed or that was added. A removed node is no longer in the deployed flows: a path
 * from the given node to a rewired node (its old neighbour) stands for it. Nodes past an
 * `exs-change-log` (its feed) hold no event of the job.
 */
export function changedDownstream(info: DeployInfo | undefined): (nodeId: string) => boolean {
  const diff = info?.diff ?? {};
  const flows = info?.config?.flows ?? [];
  const stopped = new Set([...(diff.changed ?? []), ...(diff.removed ?? [])]);
  if (info?.type === 'flows') for (const id of [...(diff.linked ?? []), ...(diff.rewired ?? [])]) stopped.add(id);
  const restartedFlows = new Set([...(diff.flowChanged ?? []), ...(diff.added ?? [])]);
  const rewired = new Set(diff.removed?.length ? diff.rewired ?? [] : []);
  const next = new Map<string, string[]>();
  const flowOf = new Map<string, string | undefined>();
  for (const node of flows) {
    flowOf.set(node.id, node.z);
    if (node.type === 'exs-change-log') continue;
    next.set(node.id, [...(node.wires ?? []).flat(), ...(node.type === 'link out' ? node.links ?? [] : [])]);
  }
  // Inside a subflow, a node wired to one of its outputs reaches what that output of each instance
  // is wired to (every instance: a redelivery a node did not need costs a copy that is not written
  // again). An instance inside another subflow is a node there like any other, so this nests.
  const instancesOf = new Map<string, typeof flows>();
  for (const node of flows) {
    const subflow = node.type?.startsWith('subflow:') ? node.type.slice('subflow:'.length) : undefined;
    if (subflow) instancesOf.set(subflow, [...(instancesOf.get(subflow) ?? []), node]);
  }
  for (const subflow of flows) {
    if (subflow.type !== 'subflow') continue;
    (subflow.out ?? []).forEach((output, i) => {
      const targets = (instancesOf.get(subflow.id) ?? []).flatMap((instance) => instance.wires?.[i] ?? []);
      for (const { id } of output.wires ?? []) next.get(id)?.push(...targets);
    });
  }
  const wasStopped = (id: string) => stopped.has(id) || rewired.has(id) || restartedFlows.has(flowOf.get(id) ?? '');
  return (nodeId) => {
    if (stopped.size === 0 && rewired.size === 0 && restartedFlows.size === 0) return false;
    const seen = new Set<string>([nodeId]);
    const todo = [nodeId];
    while (todo.length > 0) {
      const id = todo.pop()!;
      if (wasStopped(id)) return true;
      for (const to of next.get(id) ?? []) {
        if (!seen.has(to)) {
          seen.add(to);
          todo.push(to);
        }
      }
    }
    return false;
  };
}
