// exs-job: the config node one sync contract becomes. It owns the job's running state
// (SyncJob: journal, dispatcher, change log, dead letters), shared by the job's nodes, and
// serves the job's admin endpoints.
import { SyncJob } from '../core/sync-job';
import { registerJob, runningJob, unregisterJob } from '../shared/job-registry';
import { exsDataDir, jobSettingsFromConfig, type ExsJobConfig, type ExsJobNode } from '../shared/job-node';
import type { RED } from '../shared/red';

/** Parses `?ids=1,2` or a JSON body `{ "ids": [1, 2] }`; undefined means all. */
function requestedIds(req: any): number[] | undefined {
  const raw = req.body?.ids ?? (req.query?.ids ? String(req.query.ids).split(',') : undefined);
  if (raw === undefined) return undefined;
  const list = Array.isArray(raw) ? raw : [raw];
  return list.map(Number).filter((n: number) => Number.isInteger(n));
}

export = function registerExsJob(RED: RED) {
  function ExsJob(this: ExsJobNode, config: ExsJobConfig) {
    RED.nodes.createNode(this, config);
    const job = new SyncJob(jobSettingsFromConfig(config), exsDataDir(RED));
    this.job = job;
    job.ready.catch((err: Error) => this.error(`job ${job.id}: cannot open its journal: ${err.message}`));
    job.on('error', (err: Error) => this.error(`job ${job.id}: ${err.message}`));
    registerJob(job);
    this.on('close', (_removed, done) => {
      unregisterJob(job);
      job.close().then(done, (err) => {
        this.error(err);
        done();
      });
    });
  }
  RED.nodes.registerType('exs-job', ExsJob);

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
  RED.httpAdmin.post('/exs/jobs/:id/flush', RED.auth.needsPermission('exs.write'), withJob(async (job, _req, res) => {
    await job.flush();
    res.json({ flushed: true, ...job.state() });
  }));
};
