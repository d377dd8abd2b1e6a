// exs-mapper: HMS event -> destination row. The mapping is parsed once at deploy; a broken
// mapping is reported then, and an event the mapping cannot take goes to the dead-letter
// output with the reason (missing key, wrong type, unknown value). The editor's mapping
// table reads and checks its lines through POST /exs/mapping/check, with the same parser.
import {
  compileIdentify, compileMapping, formatMappingRule, keyColumnClash, MappingError, MappingSyntaxError, parseKeyRule,
  parseMapping, parseMappingLine,
} from '../core/mapping';
import type { ExsEnvelope, KeyRule, MappingRule } from '../core/types';
import { isBatchMessage, itemsOf, messagesFor, type EventItem } from '../shared/batch-message';
import { jobOf, refuseInput } from '../shared/job-node';
import type { JobNodeConfig, RED, RedNode } from '../shared/red';

interface MapperConfig extends JobNodeConfig {
  /** One `HMS:field -> COBOL:COLUMN | transform` rule per line. */
  mapping: string;
  key: string;
  /** Empty: `updated_at`. */
  version_field?: string;
  /** Empty: 300. */
  max_clock_skew_seconds?: number | string;
  /** `time` (default) or `number`. */
  version_type?: string;
}

/** The record's key when the event names one, so a rejected event is still findable in the log. */
function keyIfPresent(event: unknown, key: KeyRule): unknown {
  if (!event || typeof event !== 'object' || !Object.prototype.hasOwnProperty.call(event, key.source)) return undefined;
  const value = (event as Record<string, unknown>)[key.source];
  return typeof value === 'string' || typeof value === 'number' ? value : undefined;
}


function compile(config: MapperConfig): { rules: MappingRule[]; key: KeyRule } {
  const lines = String(config.mapping ?? '').split('\n').map((l) => l.trim()).filter(Boolean);
  const { rules, errors } = parseMapping(lines);
  if (errors.length > 0) throw new Error(`mapping: ${errors.map((e: { message: string }) => e.message).join('; ')}`);
  if (!config.key) throw new Error('key is required, e.g. HMS:permit_id -> COBOL:PERMIT_ID');
  const key = parseKeyRule(config.key);
  const clash = keyColumnClash(rules, key);
  if (clash) throw new Error(`mapping: key column '${key.target}' is also mapped from '${clash.source}' as '${clash.target}'`);
  return { rules, key };
}

/** One mapping line as the editor's table shows it: field, column, and the transforms as one text. */
interface TableRule {
  source: string;
  target: string;
  /** `upper | pad(8)`, in canonical spelling; empty when there are none. */
  transforms: string;
}

interface MappingCheck {
  /** Per line: how it reads, or null when it cannot be read. */
  rules: Array<TableRule | null>;
  /** `line` is the index in the request's `lines`; null for a problem of the whole mapping. */
  errors: Array<{ line: number | null; message: string }>;
  /** Why the key rule cannot be used; null when it can (or none was sent). */
  keyError: string | null;
}

function tableRule(line: string): TableRule | null {
  let rule: MappingRule;
  try {
    rule = parseMappingLine(line);
  } catch (err) {
    if (err instanceof MappingSyntaxError) return null;
    throw err;
  }
  const withoutTransforms = formatMappingRule({ ...rule, transforms: [] });
  return { source: rule.source, target: rule.target, transforms: formatMappingRule(rule).slice(withoutTransforms.length).replace(/^ \| /, '') };
}

/**
 * The editor's table, line by line, with the messages a contract with these lines gets from
 * the YAML validator (the parser's, and the key column mapped twice) and the key's own.
 */
function checkMapping(lines: string[], keyText: string | undefined): MappingCheck {
  const { rules, errors, targets } = parseMapping(lines);
  const result: MappingCheck = {
    rules: lines.map(tableRule),
    errors: errors.map((issue) => ({ line: typeof issue.item === 'number' ? issue.item : null, message: issue.message })),
    keyError: null,
  };
  if (keyText === undefined) return result;
  if (keyText.trim() === '') {
    result.keyError = 'key is required, e.g. HMS:permit_id -> COBOL:PERMIT_ID';
    return result;
  }
  let key: KeyRule;
  try {
    key = parseKeyRule(keyText);
  } catch (err) {
    if (!(err instanceof MappingSyntaxError)) throw err;
    result.keyError = err.message;
    return result;
  }
  const clash = keyColumnClash(rules, key);
  if (clash) {
    const item = targets[rules.indexOf(clash)]?.item;
    const spelling = clash.target === key.target ? '' : ` as '${clash.target}'`;
    result.errors.push({
      line: typeof item === 'number' ? item : null,
      message: `key column '${key.target}' is also mapped${spelling} from '${clash.source}'; a column gets one value`,
    });
  }
  return result;
}

export = function registerExsMapper(RED: RED) {
  RED.httpAdmin.post('/exs/mapping/check', RED.auth.needsPermission('exs.read'), (req, res) => {
    const lines: unknown = req.body?.lines;
    const key: unknown = req.body?.key;
    if (!Array.isArray(lines) || !lines.every((line) => typeof line === 'string')) {
      return res.status(400).json({ error: 'send {"lines": ["HMS:status -> COBOL:PERMIT_STAT | upper", ...], "key": "HMS:permit_id -> COBOL:PERMIT_ID"}' });
    }
    if (key !== undefined && key !== null && typeof key !== 'string') {
      return res.status(400).json({ error: 'key must be a line like HMS:permit_id -> COBOL:PERMIT_ID' });
    }
    res.json(checkMapping(lines, key ?? undefined));
  });

  function ExsMapper(this: RedNode, config: MapperConfig) {
    RED.nodes.createNode(this, config);
    const job = jobOf(RED, this, config.job);
    if (!job) return;
    let compiled: { rules: MappingRule[]; key: KeyRule };
    try {
      compiled = compile(config);
    } catch (err) {
      refuseInput(this, 'bad mapping', (err as Error).message);
      return;
    }
    const { rules, key } = compiled;
    const versionField = String(config.version_field || 'updated_at').replace(/^HMS:/, '');
    const skew = Number(config.max_clock_skew_seconds);
    const versionOptions = {
      versionField,
      versionType: config.version_type === 'number' ? 'number' as const : 'time' as const,
      maxClockSkewSeconds: config.max_clock_skew_seconds === '' || config.max_clock_skew_seconds === undefined || !Number.isFinite(skew) ? undefined : skew,
    };
    const mapEvent = compileMapping(rules, key, versionOptions);
    job.declareSchema({
      keyColumn: key.target,
      identify: compileIdentify(rules, key, versionOptions),
      columns: rules.map((r) => r.target),
      // LAST_WRITE_WINS compares the legacy row's time with the column fed by the version field.
      timestampColumn: rules.find((r) => r.source === versionField)?.target,
    });
    this.status({ fill: 'green', shape: 'dot', text: RED._('exs-mapper.status.fields', { count: rules.length }) });

    this.on('input', (msg, send, done) => {
      let items: EventItem[];
      try {
        items = itemsOf(msg);
      } catch (err) {
        return done(err as Error);
      }
      const mapped: EventItem[] = [];
      const deadLetters: EventItem[] = [];
      // An error that is not about the data (a bug) leaves its event unsettled in the journal and
      // goes to Catch nodes; the batch's other events go on rather than wait for a redeploy with it.
      let unexpected: Error | undefined;
      for (const { payload, exs: envelope } of items) {
        try {
          const record = mapEvent(payload);
          mapped.push({ payload, exs: { ...envelope, key: record.keyValue, record } });
        } catch (err) {
          if (!(err instanceof MappingError)) {
            unexpected ??= err as Error;
            continue;
          }
          // A mapping failure is a data failure: retried up to max_attempts, then dead-lettered.
          if (job.fail(envelope.seq, 'data', envelope) === 'dead_letter') {
            deadLetters.push({ payload, exs: { ...envelope, key: keyIfPresent(payload, key), outcome: 'dead_letter', error: err.message } });
          }
        }
      }
      const asBatch = isBatchMessage(msg);
      // Two sends: Node-RED deep-copies every message of a send but the first.
      if (mapped.length > 0) send([messagesFor(msg, asBatch, mapped), null]);
      if (deadLetters.length > 0) send([null, messagesFor(msg, asBatch, deadLetters)]);
      done(unexpected);
    });
  }
  RED.nodes.registerType('exs-mapper', ExsMapper);
};
