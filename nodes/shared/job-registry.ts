// The jobs running in this Node-RED, by contract id, for the admin endpoints (`exs dlq`,
// `exs flush`, the job state). Only exs-job config nodes add and remove entries.
import type { SyncJob } from '../core/sync-job';

const running = new Map<string, SyncJob>();

export function registerJob(job: SyncJob): void {
  running.set(job.id, job);
}

export function unregisterJob(job: SyncJob): void {
  if (running.get(job.id) === job) running.delete(job.id);
}

export function runningJob(id: string): SyncJob | undefined {
  return running.get(id);
}

/** Every running job, by id. */
export function runningJobs(): SyncJob[] {
  return [...running.values()].sort((a, b) => a.id.localeCompare(b.id));
}
