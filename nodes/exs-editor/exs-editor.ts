// exs-editor: the Node-RED plugin behind the editor's EXS sidebar and its sync.yaml import and
// export. The editor side is exs-editor.html; this runtime side serves what it needs, each route
// behind RED.auth.needsPermission:
//   GET  /exs/jobs                  the running jobs and their state          (exs.read)
//   POST /exs/contracts/convert     sync.yaml -> flow nodes, or LINE:COL errors (exs.read)
//   POST /exs/contracts/export      flow nodes -> sync.yaml per job           (exs.read)
//   POST /exs/contracts             sync.yaml -> its tab deployed (ops)       (exs.write + flows)
import { exportContracts } from '../../flows/export';
import { mergeFlows, type FlowNode } from '../../flows/flow-types';
import { importContractText } from '../../flows/import';
import { formatDiagnostic, type Diagnostic } from '../core/types';
import { runningJobs } from '../shared/job-registry';
import type { RED } from '../shared/red';

/** Largest contract accepted: a sync.yaml is a page of text. */
const MAX_YAML_BYTES = 256 * 1024;

interface ConvertedContract {
  ok: boolean;
  /** Contract ids, in file order (a file may hold one contract). */
  contracts: string[];
  nodes: FlowNode[];
  diagnostics: Array<Diagnostic & { text: string }>;
}

function convert(yaml: string, file: string): ConvertedContract {
  const { nodes, diagnostics, contracts } = importContractText(yaml, file);
  return {
    ok: contracts.length > 0,
    contracts: contracts.map((c) => c.id),
    nodes,
    diagnostics: diagnostics.map((d) => ({ ...d, text: formatDiagnostic(d) })),
  };
}

/** The YAML of a request: `{"yaml": "..."}` as JSON, or the body itself as text (`curl --data-binary @job.sync.yaml`). */
async function yamlOf(req: any): Promise<string> {
  if (req.body && typeof req.body === 'object' && typeof req.body.yaml === 'string') return req.body.yaml;
  if (typeof req.body === 'string') return req.body;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_YAML_BYTES) throw Object.assign(new Error(`contract over ${MAX_YAML_BYTES} bytes`), { status: 413 });
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks).toString('utf8');
}

function fileOf(req: any): string {
  const name = String(req.body?.file ?? req.query?.file ?? 'sync.yaml');
  return name.replace(/[^\w.-]/g, '_').slice(0, 100) || 'sync.yaml';
}

/**
 * Deploys flows through Node-RED's own admin API on this server, with the caller's own
 * authorization: importing a contract changes the flows, so it needs `flows.write` as well as
 * `exs.write`, exactly as a deploy from the editor would.
 */
async function adminApi(red: RED, req: any, method: 'GET' | 'POST', path: string, body?: unknown, headers: Record<string, string> = {}): Promise<any> {
  const address = red.server?.address();
  if (!address || typeof address === 'string') throw new Error('Node-RED is not listening on a TCP port');
  const root = String(red.settings.httpAdminRoot ?? '/').replace(/\/?$/, '/');
  const tls = Boolean(red.settings.https);
  const host = address.family === 'IPv6' ? `[${address.address === '::' ? '::1' : address.address}]` : address.address === '0.0.0.0' ? '127.0.0.1' : address.address;
  const sent: Record<string, string> = { 'Node-RED-API-Version': 'v2', ...headers };
  if (req.headers?.authorization) sent.authorization = String(req.headers.authorization);
  if (body) sent['content-type'] = 'application/json';
  const response = await fetch(`${tls ? 'https' : 'http'}://${host}:${address.port}${root}${path}`, {
    method,
    headers: sent,
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  if (!response.ok) throw Object.assign(new Error(`${method} /${path}: ${response.status} ${text}`), { status: [401, 403, 409].includes(response.status) ? response.status : 502 });
  return text ? JSON.parse(text) : undefined;
}

export = function registerExsEditor(RED: RED) {
  RED.plugins?.registerPlugin('exs-editor', { type: 'exs-editor' });

  RED.httpAdmin.get('/exs/jobs', RED.auth.needsPermission('exs.read'), (_req: any, res: any) => {
    res.json(runningJobs().map((job) => ({
      id: job.id,
      destination: job.settings.destination,
      schedule: job.settings.schedule,
      conflict_rule: job.settings.conflict_rule,
      ...job.state(),
    })));
  });

  RED.httpAdmin.post('/exs/contracts/convert', RED.auth.needsPermission('exs.read'), (req: any, res: any) => {
    yamlOf(req).then(
      (yaml) => res.json(convert(yaml, fileOf(req))),
      (err: Error & { status?: number }) => res.status(err.status ?? 400).json({ error: err.message }),
    );
  });

  RED.httpAdmin.post('/exs/contracts/export', RED.auth.needsPermission('exs.read'), (req: any, res: any) => {
    const nodes = req.body?.nodes;
    if (!Array.isArray(nodes)) return res.status(400).json({ error: 'send {"nodes": [...]}: the flow nodes of the jobs to export' });
    try {
      const wanted = typeof req.body.job === 'string' ? req.body.job : undefined;
      const contracts = exportContracts(nodes as FlowNode[]).filter((c) => wanted === undefined || c.id === wanted);
      if (wanted !== undefined && contracts.length === 0) return res.status(404).json({ error: `no job '${wanted}' among the nodes sent` });
      res.json({ contracts });
    } catch (err) {
      res.status(400).json({ error: (err as Error).message });
    }
  });

  // For ops: one call adds or replaces a contract's tab in the running flows (other tabs stay).
  RED.httpAdmin.post('/exs/contracts', RED.auth.needsPermission('exs.write'), (req: any, res: any) => {
    (async () => {
      const converted = convert(await yamlOf(req), fileOf(req));
      if (!converted.ok) return res.status(400).json(converted);
      const current = await adminApi(RED, req, 'GET', 'flows');
      const flows = mergeFlows(current.flows as FlowNode[], converted.nodes);
      const deployed = await adminApi(RED, req, 'POST', 'flows', { flows, rev: current.rev }, { 'Node-RED-Deployment-Type': 'flows' });
      res.json({ deployed: converted.contracts, rev: deployed?.rev, diagnostics: converted.diagnostics });
    })().catch((err: Error & { status?: number }) => res.status(err.status ?? 500).json({ error: err.message }));
  });
};
