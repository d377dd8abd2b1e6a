// What a Node-RED deploy changed, as the runtime tells it (`flows:started`).
import type { DeployInfo } from './red';

/**
 * Whether a deploy added, changed or rewired a node that messages from a given node reach (by its
 * wires and link nodes): such a node (a delay node between the mapper and the connector, say) may
 * have dropped what it held when it was replaced. A node elsewhere (a debug node on another path)
 * does not count.
 */
export function changedDownstream(info: DeployInfo | undefined): (nodeId: string) => boolean {
  const diff = info?.diff ?? {};
  const changed = new Set([...(diff.added ?? []), ...(diff.changed ?? []), ...(diff.rewired ?? [])]);
  const next = new Map<string, string[]>();
  for (const node of info?.config?.flows ?? []) next.set(node.id, [...(node.wires ?? []).flat(), ...(node.links ?? [])]);
  return (nodeId) => {
    if (changed.size === 0) return false;
    const seen = new Set<string>([nodeId]);
    const todo = [nodeId];
    while (todo.length > 0) {
      const id = todo.pop()!;
      if (changed.has(id)) return true;
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
