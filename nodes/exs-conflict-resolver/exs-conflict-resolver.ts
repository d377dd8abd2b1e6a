// exs-conflict-resolver: attaches the job's conflict law to each record. The decision is
// taken at the destination, against the row and the record state it locks at write time (see
// core/conflict.ts), so the law travels with the message rather than being judged on a stale copy here.
import { isConflictRule, parseFieldRules, type ConflictPolicy } from '../core/conflict';
import { CONFLICT_RULES, type ConflictRule, type ExsEnvelope } from '../core/types';
import { isBatchMessage, itemsOf } from '../shared/batch-message';
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

/** Why the policy cannot work with the mapper's columns, if it cannot. */
function policyProblem(policy: ConflictPolicy, columns: string[]): string | undefined {
  const known = (column: string) => columns.some((c) => c.toLowerCase() === column.toLowerCase());
  const unknown = Object.keys(policy.fieldRules ?? {}).filter((column) => !known(column));
  if (unknown.length > 0) return `field rules name ${unknown.join(', ')}, which the mapper does not write (columns: ${columns.join(', ')})`;
  const lastWriteWins = policy.rule === 'LAST_WRITE_WINS' || Object.values(policy.fieldRules ?? {}).includes('LAST_WRITE_WINS');
  if (lastWriteWins && policy.timestampColumn && !known(policy.timestampColumn)) {
    return `LAST_WRITE_WINS compares '${policy.timestampColumn}', which the mapper does not write (columns: ${columns.join(', ')})`;
  }
  return undefined;
}

export = function registerExsConflictResolver(RED: RED) {
  function ExsConflictResolver(this: RedNode, config: ResolverConfig) {
    RED.nodes.createNode(this, config);
    const job = jobOf(RED, this, config.job);
    if (!job) return;
    const rule = config.rule || job.settings.conflict_rule;
    if (!isConflictRule(rule)) {
      refuseInput(this, 'exs-conflict-resolver.status.badRule', `conflict rule must be one of ${CONFLICT_RULES.join(', ')} (got '${rule}')`);
      return;
    }
    let fieldRules: Record<string, ConflictRule>;
    try {
      fieldRules = parseFieldRules(String(config.field_rules ?? ''));
    } catch (err) {
      refuseInput(this, 'exs-conflict-resolver.status.badFieldRule', (err as Error).message);
      return;
    }
    const split = Object.keys(fieldRules).length > 0;
    let policy: ConflictPolicy = { rule, timestampColumn: config.timestamp_column || undefined, ...(split && { fieldRules }) };
    this.status({ fill: 'green', shape: 'dot', text: split ? `${rule} +${Object.keys(fieldRules).length}` : rule });
    /** A rule naming a column the mapper does not write: every event would fail the same way. */
    let misconfigured: string | undefined;
    void job.whenSchema(10_000).then((schema) => {
      if (!schema) return;
      if (!policy.timestampColumn && schema.timestampColumn) policy = { ...policy, timestampColumn: schema.timestampColumn };
      misconfigured = policyProblem(policy, schema.columns);
      if (misconfigured) {
        this.status({ fill: 'red', shape: 'ring', text: 'exs-conflict-resolver.status.badRule' });
        this.error(misconfigured);
      }
    });

    this.on('input', (msg, send, done) => {
      // Not settled: the event stays in the journal and comes again once the flow is fixed.
      if (misconfigured) return done(new Error(misconfigured));
      if (!isBatchMessage(msg)) {
        send({ ...msg, exs: { ...(msg.exs as ExsEnvelope), conflict: policy } satisfies ExsEnvelope });
        return done();
      }
      let withLaw: ExsEnvelope[];
      try {
        withLaw = itemsOf(msg).map(({ exs }) => ({ ...exs, conflict: policy }));
      } catch (err) {
        return done(err as Error);
      }
      send({ ...msg, exs: { ...(msg.exs as object), batch: withLaw } });
      done();
    });
  }
  RED.nodes.registerType('exs-conflict-resolver', ExsConflictResolver);
};
