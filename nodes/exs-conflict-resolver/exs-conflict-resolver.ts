// exs-conflict-resolver: attaches the job's conflict law to each record. The decision is
// taken at the destination, against the row it holds at write time (see core/conflict.ts),
// so the rule travels with the message rather than being judged on a stale copy here.
import type { ConflictPolicy } from '../core/conflict';
import { CONFLICT_RULES, type ConflictRule, type ExsEnvelope } from '../core/types';
import { jobOf, refuseInput } from '../shared/job-node';
import type { JobNodeConfig, RED, RedNode } from '../shared/red';

interface ResolverConfig extends JobNodeConfig {
  /** Empty: the job's conflict_rule. */
  rule?: ConflictRule | '';
  /** Empty: the column mapped from the event's updated_at. */
  timestamp_column?: string;
}

export = function registerExsConflictResolver(RED: RED) {
  function ExsConflictResolver(this: RedNode, config: ResolverConfig) {
    RED.nodes.createNode(this, config);
    const job = jobOf(RED, this, config.job);
    if (!job) return;
    const rule = config.rule || job.settings.conflict_rule;
    if (!CONFLICT_RULES.includes(rule)) {
      refuseInput(this, 'bad rule', `conflict rule must be one of ${CONFLICT_RULES.join(', ')} (got '${rule}')`);
      return;
    }
    let policy: ConflictPolicy = { rule, timestampColumn: config.timestamp_column || undefined };
    this.status({ fill: 'green', shape: 'dot', text: rule });
    void job.whenSchema(10_000).then((schema) => {
      if (!policy.timestampColumn && schema?.timestampColumn) policy = { ...policy, timestampColumn: schema.timestampColumn };
    });

    this.on('input', (msg, send, done) => {
      const envelope = msg.exs as ExsEnvelope;
      send({ ...msg, exs: { ...envelope, conflict: policy } satisfies ExsEnvelope });
      done();
    });
  }
  RED.nodes.registerType('exs-conflict-resolver', ExsConflictResolver);
};
