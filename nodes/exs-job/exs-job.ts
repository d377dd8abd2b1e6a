// exs-job: the config node one sync contract becomes. It owns the job's running state
// (SyncJob: journal, dispatcher, change log, dead letters), shared by the job's nodes, and
// serves the job's admin endpoints.
import { DbError } from '../core/sql/errors';
import { SyncJob } from '../core/sync-job';
import { feedEditor } from '../shared/editor-feed';
import { registerJob, runningJob, runningJobs, unregisterJob } from '../shared/job-registry';
import { exsDataDir, jobSettingsFromConfig, type ExsJobConfig, type ExsJobNode } from '../shared/job-node';
import type { RED } from '../shared/red';
import { changedDownstream } from '../shared/deploys';

/** Parses `?ids=1,2` or a JSON body `{ "ids": [1, 2] }`; undefined means all. */
function requestedIds(req: any): number[] | undefined {
  const raw = req.body?.ids ?? (req.query?.ids ? String(req.query.ids).split(',') : undefined);
  if (raw === undefined) return undefined;
  const list = Array.isArray(raw) ? raw : [raw];
  return list.map(Number).filter((n: number) => Number.isInteger(n));
}

/**
 * The HTTP status a failed conflict call answers with: 404 when the key has no parked conflict,
 * 409 when the job has no open ODBC connector to keep conflicts in (none attached, or closing).
 */
function conflictStatus(err: Error): number {
  if (err instanceof DbError && !err.transient && /\bno parked conflict for key\b/.test(err.message)) return 404;
  if (/has no open ODBC connector\b| is not open$/.test(err.message)) return 409;
  return 500;
}

/** Runtimes whose deploys are watched: once each, however often this module is registered (tests load it per flow). */
const watched = new WeakSet<object>();

/**
 * A deploy of modified nodes or flows can replace a job's flow nodes while the job runs on: what
 * they held is handed out again (SyncJob.deployStarting/deployFinished). One listener per runtime
 * for all its jobs, not one per job (Node's emitter warns past ten).
 */
function watchDeploys(RED: RED): void {
  const events = RED.events;
  if (!events || watched.has(events)) return;
  watched.add(events);
  events.on('flows:starting', () => runningJobs().forEach((job) => job.deployStarting()));
  events.on('flows:started', (info) => {
    const changedAfter = changedDownstream(info);
    runningJobs().forEach((job) => job.deployFinished(info?.type, changedAfter));
  });
}

export = function registerExsJob(RED: RED) {
  function ExsJob(this: ExsJobNode, config: ExsJobConfig) {
    RED.nodes.createNode(this, config);
    const job = new SyncJob(jobSettingsFromConfig(config, (problem) => this.warn(problem)), exsDataDir(RED));
    this.job = job;
    job.ready.catch((err: Error) => this.error(`job ${job.id}: cannot open its journal: ${err.message}`));
    job.on('error', (err: Error) => this.error(`job ${job.id}: ${err.message}`));
    registerJob(job);
    const stopFeed = feedEditor(RED, job);
    this.on('close', (_removed, done) => {
      stopFeed();
      unregisterJob(job);
      job.close().then(done, (err) => {
        this.error(err);
        done();
      });
    });
  }
  RED.nodes.registerType('exs-job', ExsJob);
  watchDeploys(RED);

  const withJob = (handler: (job: SyncJob, req: any, res: any) => Promise<unknown>) => (req: any, res: any) => {
    const job = runningJob(String(req.params.id));
    if (!job) return res.status(404).json({ error: `no running job '${req.params.id}'` });
    handler(job, req, res).catch((err: Error) => res.status(500).json({ error: err.message }));
  };

  RED.httpAdmin.get('/exs/jobs/:id', RED.auth.needsPermission('exs.read'), withJob(async (job, _req, res) => res.json({ id: job.id, ...job.state() })));
  RED.httpAdmin.get('/exs/jobs/:id/dlq', RED.auth.needsPermission('exs.read'), withJob(async (job, _req, res) => res.json(await job.deadLetters.list())));
  RED.httpAdmin.post('/exs/jobs/:id/dlq/replay', RED.auth.needsPermission('exs.write'), withJob(async (job, req, res) => {
    const replayed = await job.replayDeadLetters(requestedIds(req));
    res.json({ replayed: replayed.map((l) => l.id) });
  }));
  RED.httpAdmin.get('/exs/jobs/:id/conflicts', RED.auth.needsPermission('exs.read'), withJob(async (job, _req, res) => {
    try {
      res.json(await job.listConflicts());
    } catch (err) {
      res.status(conflictStatus(err as Error)).json({ error: (err as Error).message });
    }
  }));
  RED.httpAdmin.post('/exs/jobs/:id/conflicts/resolve', RED.auth.needsPermission('exs.write'), withJob(async (job, req, res) => {
    const key = req.body?.key;
    const take = req.body?.take;
    if (typeof key !== 'string' || key === '') return res.status(400).json({ error: 'key is missing: send {"key": "P-123", "take": "hms" | "destination"}' });
    if (take !== 'hms' && take !== 'destination') return res.status(400).json({ error: `take must be 'hms' or 'destination' (got ${JSON.stringify(take ?? null)})` });
    try {
      res.json({ resolved: key, entry: await job.resolveConflict(key, take) });
    } catch (err) {
      res.status(conflictStatus(err as Error)).json({ error: (err as Error).message });
    }
  }));
  RED.httpAdmin.post('/exs/jobs/:id/flush', RED.auth.needsPermission('exs.write'), withJob(async (job, _req, res) => {
    await job.flush();
    res.json({ flushed: true, ...job.state() });
  }));
};
