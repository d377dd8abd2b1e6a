// exs-conflict-resolver: attaches the job's conflict law to each record. The decision is
// taken at the destination, against the row and the record state it locks at write time (see
// core/conflict.ts), so the law travels with the message rather than being judged on a stale copy here.
import { isConflictRule, parseFieldRules, type ConflictPolicy } from '../core/conflict';
import { CONFLICT_RULES, type ConflictRule, type ExsEnvelope } from '../core/types';
import { jobOf, refuseInput } from '../shared/job-node';
import type { JobNodeConfig, RED, RedNode } from '../shared/red';

interface ResolverConfig extends JobNodeConfig {
  /** Empty: the job's conflict_rule. */
  rule?: ConflictRule | '';
  /** Empty: the column mapped from the event's version field (updated_at). */
  timestamp_column?: string;
  /** `COLUMN: RULE` per line: columns with a rule of their own. */
  field_rules?: string;
}

export = function registerExsConflictResolver(RED: RED) {
  function ExsConflictResolver(this: RedNode, config: ResolverConfig) {
    RED.nodes.createNode(this, config);
    const job = jobOf(RED, this, config.job);
    if (!job) return;
    const rule = config.rule || job.settings.conflict_rule;
    if (!isConflictRule(rule)) {
      refuseInput(this, 'bad rule', `conflict rule must be one of ${CONFLICT_RULES.join(', ')} (got '${rule}')`);
      return;
    }
    let fieldRules: Record<string, ConflictRule>;
    try {
      fieldRules = parseFieldRules(String(config.field_rules ?? ''));
    } catch (err) {
      refuseInput(this, 'bad field rule', (err as Error).message);
      return;
    }
    const split = Object.keys(fieldRules).length > 0;
    let policy: ConflictPolicy = { rule, timestampColumn: config.timestamp_column || undefined, ...(split && { fieldRules }) };
    this.status({ fill: 'green', shape: 'dot', text: split ? `${rule} +${Object.keys(fieldRules).length}` : rule });
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
