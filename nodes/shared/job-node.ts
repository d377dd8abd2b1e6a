// How EXS nodes reach their job: every flow node names an exs-job config node, whose
// SyncJob carries sequence numbers, acknowledgements and the change log.
import * as path from 'node:path';
import * as os from 'node:os';
import type { JobSettings, SyncJob } from '../core/sync-job';
import { BACKLOG_MODES, CHANGELOG_FEEDS, type ConflictRule, type Schedule } from '../core/types';
import { substituteEnv } from '../core/env';
import type { RED, RedNode } from './red';

export interface ExsJobConfig {
  id: string;
  name?: string;
  jobId: string;
  source_topic: string;
  destination: string;
  schedule: Schedule;
  conflict_rule: ConflictRule;
  max_attempts: number | string;
  backoff_seconds: number | string;
  dead_letter?: string;
  changelog?: string;
  changelog_feed?: string;
  backlog?: string;
}

export interface ExsJobNode extends RedNode {
  job: SyncJob;
}

/** Where EXS keeps its durable files: EXS_DATA_DIR, else `<userDir>/exs`. */
export function exsDataDir(red: RED): string {
  if (process.env.EXS_DATA_DIR) return process.env.EXS_DATA_DIR;
  return path.join(red.settings.userDir ?? path.join(os.homedir(), '.node-red'), 'exs');
}

/** `${VAR}` in a job property is read from the environment at deploy, like the connector's. */
function fromEnv(value: unknown): string {
  return substituteEnv(value === undefined || value === null ? '' : String(value)).value;
}

/** The job's settings from its node's properties; `warn` hears of a value it had to replace by the default. */
export function jobSettingsFromConfig(raw: ExsJobConfig, warn: (problem: string) => void = () => undefined): JobSettings {
  const config = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, typeof v === 'string' ? fromEnv(v) : v])) as unknown as ExsJobConfig;
  const id = config.jobId || config.name || config.id;
  const backoff = Number(config.backoff_seconds);
  return {
    id,
    source_topic: config.source_topic,
    destination: config.destination,
    schedule: config.schedule || 'realtime',
    conflict_rule: config.conflict_rule || 'HMS_WINS',
    retry_policy: {
      max_attempts: Number(config.max_attempts) || 5,
      backoff_seconds: Number.isFinite(backoff) && config.backoff_seconds !== '' ? backoff : 30,
    },
    dead_letter: config.dead_letter || `exs/${id}/dead_letter`,
    changelog: config.changelog || 'exs/changelog',
    // Flows saved before these settings existed publish one message per entry and write every event, as they did.
    changelog_feed: choiceOf('changelog_feed', config.changelog_feed, CHANGELOG_FEEDS, 'entry', 'the change log publishes one message per entry', warn),
    backlog: choiceOf('backlog', config.backlog, BACKLOG_MODES, 'every_event', 'every event is written', warn),
  };
}

/** An enum property's value; `fallback` when it is unset, and, with a warning saying `then`, when it is none of `values`. */
function choiceOf<T extends string>(name: string, value: unknown, values: readonly T[], fallback: T, then: string, warn: (problem: string) => void): T {
  if (value === undefined || value === null || value === '') return fallback;
  if ((values as readonly unknown[]).includes(value)) return value as T;
  warn(`${name} '${String(value)}' is neither ${values.map((v) => `'${v}'`).join(' nor ')}: ${then}`);
  return fallback;
}

/**
 * The SyncJob a flow node belongs to. A node without a job cannot do anything useful, so
 * it reports that once on its status and in the log instead of failing per message.
 */
export function jobOf(red: RED, node: RedNode, jobConfigId: string | undefined): SyncJob | undefined {
  const jobNode = jobConfigId ? (red.nodes.getNode(jobConfigId) as ExsJobNode | null) : null;
  if (!jobNode?.job) {
    refuseInput(node, 'no job', `${node.type} needs an exs-job configuration`);
    return undefined;
  }
  return jobNode.job;
}

/**
 * For a node whose configuration is broken: say so once at deploy, and fail every message
 * with the same reason (Catch nodes see it) instead of dropping it silently. The event is
 * not settled, so the job's journal delivers it again once the configuration is fixed.
 */
export function refuseInput(node: RedNode, status: string, reason: string): void {
  node.status({ fill: 'red', shape: 'ring', text: status });
  node.error(reason);
  node.on('input', (_msg, _send, done) => done(new Error(reason)));
}
