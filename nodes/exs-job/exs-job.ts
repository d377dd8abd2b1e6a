// exs-job: the config node one sync contract becomes. It owns the job's running state
// (SyncJob), shared by the queue, mapper, resolver, connector and change log of the job.
import { SyncJob } from '../core/sync-job';
import { exsDataDir, jobSettingsFromConfig, type ExsJobConfig, type ExsJobNode } from '../shared/job-node';
import type { RED } from '../shared/red';

export = function registerExsJob(RED: RED) {
  function ExsJob(this: ExsJobNode, config: ExsJobConfig) {
    RED.nodes.createNode(this, config);
    this.job = new SyncJob(jobSettingsFromConfig(config), exsDataDir(RED));
    this.on('close', (_removed, done) => {
      this.job.close().then(done, (err) => {
        this.error(err);
        done();
      });
    });
  }
  RED.nodes.registerType('exs-job', ExsJob);
};
