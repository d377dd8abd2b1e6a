// What the editor's EXS sidebar sees live: each job's state and change-log entries, pushed over
// Node-RED's comms (the socket the debug sidebar uses) rather than polled.
import type { SyncJob } from '../core/sync-job';
import type { ChangeLogEntry } from '../core/types';
import type { RED } from './red';

/** State changes come in bursts (one per settled event): the editor gets at most this many a second. */
const STATE_UPDATES_PER_SECOND = 4;
/**
 * Change-log entries too: a draining backlog writes thousands a second, and one message (and one
 * redraw of the sidebar) per entry would slow the runtime and freeze the browser. The sidebar
 * shows the newest entries only; `exs log` and GET /exs/jobs/:id/log read the whole file.
 */
const LOG_UPDATES_PER_SECOND = 4;
/** Newest entries one update carries at most (what the sidebar shows). */
export const LIVE_LOG_ENTRIES = 50;

/** What `exs/changelog/<job>` carries: the entries since the last update, oldest first, and how many more were left out. */
export interface LiveLogUpdate {
  job: string;
  entries: ChangeLogEntry[];
  skipped: number;
  /** Some entry since the last update, shown or left out, changed the dead letters or parked conflicts. */
  attention: boolean;
}

/** Outcomes after which the sidebar reloads its dead letters and parked conflicts. */
const NEEDS_ATTENTION = new Set<string>(['dead_letter', 'parked', 'resolved']);

/** Publishes `exs/state/<job>` and `exs/changelog/<job>` until the returned function is called. */
export function feedEditor(red: RED, job: SyncJob): () => void {
  const comms = red.comms;
  if (!comms) return () => undefined;
  let stateTimer: NodeJS.Timeout | undefined;
  const publishState = () => {
    stateTimer = undefined;
    comms.publish(`exs/state/${job.id}`, { id: job.id, ...job.state() }, true);
  };
  const onState = () => {
    stateTimer ??= setTimeout(publishState, 1000 / STATE_UPDATES_PER_SECOND);
  };
  let pending: ChangeLogEntry[] = [];
  let skipped = 0;
  let attention = false;
  let logTimer: NodeJS.Timeout | undefined;
  const publishLog = () => {
    logTimer = undefined;
    const entries = pending.length > LIVE_LOG_ENTRIES ? pending.slice(-LIVE_LOG_ENTRIES) : pending;
    const update: LiveLogUpdate = { job: job.id, entries, skipped: skipped + pending.length - entries.length, attention };
    pending = [];
    skipped = 0;
    attention = false;
    comms.publish(`exs/changelog/${job.id}`, update);
  };
  const onEntry = (entry: ChangeLogEntry) => {
    if (NEEDS_ATTENTION.has(entry.outcome)) attention = true;
    pending.push(entry);
    if (pending.length > 2 * LIVE_LOG_ENTRIES) {
      skipped += pending.length - LIVE_LOG_ENTRIES;
      pending = pending.slice(-LIVE_LOG_ENTRIES);
    }
    logTimer ??= setTimeout(publishLog, 1000 / LOG_UPDATES_PER_SECOND);
  };
  job.on('state', onState);
  job.changeLog.on('entry', onEntry);
  void job.ready.then(publishState, () => undefined);
  return () => {
    if (stateTimer) clearTimeout(stateTimer);
    if (logTimer) clearTimeout(logTimer);
    job.removeListener('state', onState);
    job.changeLog.removeListener('entry', onEntry);
  };
}
