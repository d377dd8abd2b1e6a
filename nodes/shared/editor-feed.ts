// What the editor's EXS sidebar sees live: each job's state and change-log entries, pushed over
// Node-RED's comms (the socket the debug sidebar uses) rather than polled.
import type { SyncJob } from '../core/sync-job';
import type { ChangeLogEntry } from '../core/types';
import type { RED } from './red';

/** State changes come in bursts (one per settled event): the editor gets at most this many a second. */
const STATE_UPDATES_PER_SECOND = 4;

/** Publishes `exs/state/<job>` and `exs/changelog/<job>` until the returned function is called. */
export function feedEditor(red: RED, job: SyncJob): () => void {
  const comms = red.comms;
  if (!comms) return () => undefined;
  let timer: NodeJS.Timeout | undefined;
  const publishState = () => {
    timer = undefined;
    comms.publish(`exs/state/${job.id}`, { id: job.id, ...job.state() }, true);
  };
  const onState = () => {
    timer ??= setTimeout(publishState, 1000 / STATE_UPDATES_PER_SECOND);
  };
  const onEntry = (entry: ChangeLogEntry) => comms.publish(`exs/changelog/${job.id}`, entry);
  job.on('state', onState);
  job.changeLog.on('entry', onEntry);
  void job.ready.then(publishState, () => undefined);
  return () => {
    if (timer) clearTimeout(timer);
    job.removeListener('state', onState);
    job.changeLog.removeListener('entry', onEntry);
  };
}
