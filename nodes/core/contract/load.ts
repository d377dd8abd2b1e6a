// Reads a `*.sync.yaml` contract: YAML -> validated Contract with every default filled in,
// or diagnostics that point at the offending key, value or token. And back: Contract -> YAML.

import { isRealtime, parseCron } from '../queue/schedule';
import { readFileSync } from 'node:fs';
import { dump } from 'js-yaml';
import { didYouMean } from '../did-you-mean';
import { substituteEnv } from '../env';
import {
  columnIdentity, describeType, formatKeyRule, formatMappingRule, keyColumnClash, MappingSyntaxError, parseKeyRule, parseMapping, type MappingLocation,
} from '../mapping';
import { CONTRACT_FIELDS, contractField, type FieldSpec } from '../spec';
import type { Contract, Diagnostic, KeyRule, MappingRule, Position, RetryPolicy } from '../types';
import { parseConnectorAddress } from './connector-address';
import { parseYamlWithPositions, type PositionedYaml, type TextSpan, type YamlPath } from './yaml-positions';

export interface ContractParseResult {
  /** Present only when there are no errors (warnings allow it). */
  contract?: Contract;
  diagnostics: Diagnostic[];
}

const SAFE_NAME = '[A-Za-z_][A-Za-z0-9_$#]{0,127}';
const TABLE_NAME = new RegExp(`^${SAFE_NAME}(\\.${SAFE_NAME})?$`);
const JOB_ID = /^[A-Za-z0-9_.-]+$/;
const FIELD_PATH = /^(HMS:)?[A-Za-z0-9_$][A-Za-z0-9_$-]*(\.[A-Za-z0-9_$][A-Za-z0-9_$-]*)*$/;
const BROKER_URL = /^(mqtts?|wss?):\/\/[^\s/]+/i;

/** Checks of particular text fields: an error to report, or warnings to pass on. */
const TEXT_CHECKS: Record<string, (text: string) => { error?: string; warnings?: string[] }> = {
  id: (text) => ({ error: JOB_ID.test(text) ? undefined : `id may only use letters, digits, '_', '-' and '.' (got '${text}')` }),
  source_topic: (text) => ({ error: /[\s+#]/.test(text) ? `source_topic must be one topic, without spaces or wildcards (got '${text}')` : undefined }),
  connector(text) {
    try {
      return { warnings: parseConnectorAddress(text).warnings };
    } catch (error) {
      return { error: (error as Error).message };
    }
  },
  table: (text) => ({ error: TABLE_NAME.test(text) ? undefined : `table must be a safe name like PERMIT_TABLE or SCHEMA.PERMIT_TABLE (got '${text}')` }),
  state_table: (text) => ({ error: TABLE_NAME.test(text) ? undefined : `state_table must be a safe name like EXS_SYNC_STATE or SCHEMA.EXS_SYNC_STATE (got '${text}')` }),
  version_field: (text) => ({ error: FIELD_PATH.test(text) ? undefined : `version_field must be an event field like updated_at or meta.revision (got '${text}')` }),
  broker: (text) => ({ error: BROKER_URL.test(text) ? undefined : `broker must be an mqtt://, mqtts://, ws:// or wss:// URL (got '${text}')` }),
  mqtt_topic: (text) => ({ error: topicProblem('mqtt_topic', text, true) }),
  dead_letter: (text) => ({ error: topicProblem('dead_letter', text, false) }),
  changelog: (text) => ({ error: topicProblem('changelog', text, false) }),
};

/** Why `topic` is not a valid MQTT topic (or, with `wildcards`, subscription filter). */
function topicProblem(name: string, topic: string, wildcards: boolean): string | undefined {
  const levels = topic.split('/');
  const badLevel = levels.some((level, i) => /[+#]/.test(level) && (!wildcards || !(level === '+' || (level === '#' && i === levels.length - 1))));
  if (!badLevel) return undefined;
  return wildcards
    ? `${name} may use '+' only as a whole level and '#' only as the last level (got '${topic}')`
    : `${name} is a topic to publish on; '+' and '#' are not allowed (got '${topic}')`;
}

const ENV_REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * Whether `text` still holds a `${NAME}` reference that `env` keeps as written (the importer
 * keeps references, so the flow reads them where it is deployed). Such a value can only be
 * judged once substituted, so checks of its form wait for `exs validate` or deploy.
 */
function holdsKeptReference(text: string, env: NodeJS.ProcessEnv): boolean {
  return [...text.matchAll(ENV_REFERENCE)].some(([reference, name]) => env[name] === reference);
}

/** `text` is exactly one `${NAME}` that `env` keeps as written. */
function isKeptReference(text: string, env: NodeJS.ProcessEnv): boolean {
  const match = /^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(text);
  return match !== null && env[match[1]] === text;
}

/** `permits.status` -> `permits/status`: HMS topic levels become MQTT levels. */
export function defaultMqttTopic(sourceTopic: string): string {
  return sourceTopic.replace(/\./g, '/');
}

export function parseContract(text: string, file: string, env: NodeJS.ProcessEnv = process.env): ContractParseResult {
  const { document, problems } = parseYamlWithPositions(text);
  const diagnostics: Diagnostic[] = problems.map(({ line, col, message }) => ({ file, line, col, severity: 'error', message }));
  let contract: Contract | undefined;
  if (document) {
    const reader = new ContractReader(document, file, env);
    contract = reader.read();
    diagnostics.push(...reader.diagnostics);
  }
  diagnostics.sort((a, b) => a.line - b.line || a.col - b.col);
  const hasErrors = diagnostics.some((d) => d.severity === 'error');
  return hasErrors || contract === undefined ? { diagnostics } : { contract, diagnostics };
}

export function loadContractFile(path: string, env: NodeJS.ProcessEnv = process.env): ContractParseResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    return { diagnostics: [{ file: path, line: 1, col: 1, severity: 'error', message: `cannot read the contract: ${(error as Error).message}` }] };
  }
  return parseContract(text, path, env);
}

/** The values a contract gets when it does not set them. */
export function contractDefaults(id: string, sourceTopic: string, env: NodeJS.ProcessEnv) {
  return {
    schedule: specDefault('schedule') as Contract['schedule'],
    conflict_rule: specDefault('conflict_rule') as Contract['conflict_rule'],
    version_field: String(specDefault('version_field')),
    version_type: specDefault('version_type') as Contract['version_type'],
    max_clock_skew_seconds: Number(specDefault('max_clock_skew_seconds')),
    state_table: String(specDefault('state_table')),
    retry_policy: Object.fromEntries(
      (contractField('retry_policy')?.fields ?? []).map((field) => [field.name, field.default]),
    ) as unknown as RetryPolicy,
    broker: env.EXS_MQTT_URL || String(specDefault('broker')),
    mqtt_topic: defaultMqttTopic(sourceTopic),
    dead_letter: `exs/${id}/dead_letter`,
    changelog: String(specDefault('changelog')),
    changelog_feed: specDefault('changelog_feed') as Contract['changelog_feed'],
    backlog: specDefault('backlog') as Contract['backlog'],
  };
}

function specDefault(name: string): string | number | undefined {
  return contractField(name)?.default;
}

type ContractValues = Partial<Omit<Contract, 'retry_policy'>> & { retry_policy?: Partial<RetryPolicy> };

class ContractReader {
  readonly diagnostics: Diagnostic[] = [];
  /** Where each mapping rule's column is written, to point at a clash with the key. */
  private mappingTargets: MappingLocation[] = [];

  constructor(
    private readonly document: PositionedYaml,
    private readonly file: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  read(): Contract | undefined {
    const root = this.document.value ?? {};
    if (!isRecord(root)) {
      this.error(this.document.valuePosition([]), `a sync contract is a map of keys like 'id: PermitStatus_To_COBOL' (got ${describeType(root)})`);
      return undefined;
    }
    this.reportUnknownKeys(root, [], CONTRACT_FIELDS);

    const values: Record<string, unknown> = {};
    for (const field of CONTRACT_FIELDS) {
      if (Object.hasOwn(root, field.name)) {
        const value = this.substituteEnv([field.name], root[field.name]);
        if (value !== undefined) values[field.name] = this.readField(field, [field.name], value);
      } else if (field.required) {
        this.error(this.document.valuePosition([]), `missing required key '${field.name}' (for example: ${field.name}: ${field.example})`);
      }
    }
    const contract = values as ContractValues;
    this.reportMissingRecommended(contract, root);
    this.checkKeyAgainstMapping(contract);
    this.checkFieldRulesAgainstMapping(contract);
    this.checkBacklogAgainstSchedule(contract);
    return this.withDefaults(contract);
  }

  private withDefaults(values: ContractValues): Contract | undefined {
    const { id, source_topic, destination, connector, mapping } = values;
    if (id === undefined || source_topic === undefined || destination === undefined || connector === undefined || mapping === undefined) {
      return undefined;
    }
    const defaults = contractDefaults(id, source_topic, this.env);
    return {
      id,
      source_topic,
      destination,
      connector,
      mapping,
      schedule: values.schedule ?? defaults.schedule,
      conflict_rule: values.conflict_rule ?? defaults.conflict_rule,
      ...(values.field_rules !== undefined && { field_rules: values.field_rules }),
      version_field: (values.version_field ?? defaults.version_field).replace(/^HMS:/, ''),
      version_type: values.version_type ?? defaults.version_type,
      max_clock_skew_seconds: values.max_clock_skew_seconds ?? defaults.max_clock_skew_seconds,
      retry_policy: { ...defaults.retry_policy, ...values.retry_policy },
      ...(values.table !== undefined && { table: values.table }),
      state_table: values.state_table ?? defaults.state_table,
      ...(values.key !== undefined && { key: values.key }),
      broker: values.broker ?? defaults.broker,
      mqtt_topic: values.mqtt_topic ?? defaults.mqtt_topic,
      dead_letter: values.dead_letter ?? defaults.dead_letter,
      changelog: values.changelog ?? defaults.changelog,
      changelog_feed: values.changelog_feed ?? defaults.changelog_feed,
      backlog: values.backlog ?? defaults.backlog,
    };
  }

  /** The value with `${VAR}` substituted in every text inside it; undefined if a variable is unset. */
  private substituteEnv(path: YamlPath, value: unknown): unknown {
    if (typeof value === 'string') {
      const { value: substituted, missing } = substituteEnv(value, this.env);
      for (const name of new Set(missing)) this.error(this.tokenPosition(path, `\${${name}}`), `environment variable '${name}' is not set`);
      return missing.length > 0 ? undefined : substituted;
    }
    let complete = true;
    const substitute = (child: unknown, segment: string | number) => {
      const result = this.substituteEnv([...path, segment], child);
      if (result === undefined && child !== undefined) complete = false;
      return result;
    };
    let result = value;
    if (Array.isArray(value)) result = value.map(substitute);
    else if (isRecord(value)) result = Object.fromEntries(Object.entries(value).map(([key, child]) => [key, substitute(child, key)]));
    return complete ? result : undefined;
  }

  private readField(field: FieldSpec, path: YamlPath, value: unknown): unknown {
    switch (field.type) {
      case 'string':
        return this.readText(field, path, value);
      case 'enum':
        return this.readEnum(field, path, value);
      case 'integer':
        return this.readInteger(field, path, value);
      case 'object':
        return this.readObject(field, path, value);
      case 'mapping':
        return this.readMapping(value);
      case 'key':
        return this.readKey(path, value);
      case 'field-rules':
        return this.readFieldRules(field, path, value);
    }
  }

  /** `COBOL:INSPECTOR: DESTINATION_WINS` per line: the column (prefix optional) and its rule. */
  private readFieldRules(field: FieldSpec, path: YamlPath, value: unknown): Record<string, string> | undefined {
    if (!isRecord(value)) {
      return this.error(this.document.valuePosition(path), `${path.join('.')} must be a map of COLUMN: RULE (got ${describeType(value)})`);
    }
    const rules: Record<string, string> = {};
    let complete = true;
    for (const [written, rule] of Object.entries(value)) {
      const column = written.replace(/^[A-Za-z][A-Za-z0-9_]*:/, '');
      const read = this.readEnum(field, [...path, written], rule);
      if (read === undefined) complete = false;
      else rules[column] = read;
    }
    return complete ? rules : undefined;
  }

  private readText(field: FieldSpec, path: YamlPath, value: unknown): string | undefined {
    const label = path.join('.');
    // An unquoted `id: 2024` is a number to YAML but plainly meant as text.
    const text = typeof value === 'number' ? String(value) : value;
    if (typeof text !== 'string') return this.error(this.document.valuePosition(path), `${label} must be text (got ${describeType(value)})`);
    if (text.trim() === '') return this.error(this.document.valuePosition(path), `${label} is empty`);
    if (holdsKeptReference(text, this.env)) return text;
    const check = TEXT_CHECKS[field.name]?.(text);
    for (const warning of check?.warnings ?? []) this.warning(this.document.valuePosition(path), warning);
    if (check?.error) return this.error(this.document.valuePosition(path), check.error);
    return text;
  }

  private readEnum(field: FieldSpec, path: YamlPath, value: unknown): string | undefined {
    const allowed = field.values ?? [];
    if (typeof value === 'string' && allowed.includes(value)) return value;
    // A five-field cron expression is a schedule too (`0 */4 * * *`); named ones stay the norm.
    if (field.cron && typeof value === 'string' && /\s/.test(value.trim())) {
      try {
        parseCron(value.trim());
        return value.trim();
      } catch (err) {
        return this.error(this.document.valuePosition(path), `${path.join('.')}: ${(err as Error).message}`);
      }
    }
    const written = isRecord(value) || Array.isArray(value) || value === null ? describeType(value) : `'${String(value)}'`;
    const suggestion = typeof value === 'string' ? didYouMean(value, allowed) : '';
    const cron = field.cron ? ' or a cron expression' : '';
    return this.error(this.document.valuePosition(path), `${path.join('.')} must be one of ${allowed.join(', ')}${cron} (got ${written})${suggestion}`);
  }

  /**
   * A number, or the text `${NAME}` when the env keeps that reference: the flow then holds
   * the reference and Node-RED substitutes it at deploy. Contract types the field as a
   * number; only a contract read with such an env (the importer's) carries the text.
   */
  private readInteger(field: FieldSpec, path: YamlPath, value: unknown): number | undefined {
    if (typeof value === 'string' && isKeptReference(value.trim(), this.env)) return value.trim() as unknown as number;
    // A number written through `${VAR}` arrives as text.
    const number = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value;
    const min = field.min ?? 0;
    if (typeof number === 'number' && Number.isInteger(number) && number >= min) return number;
    return this.error(this.document.valuePosition(path), `${path.join('.')} must be an integer >= ${min}`);
  }

  private readObject(field: FieldSpec, path: YamlPath, value: unknown): Record<string, unknown> | undefined {
    const fields = field.fields ?? [];
    if (!isRecord(value)) {
      const expected = fields.map((f) => f.name).join(' and ');
      return this.error(this.document.valuePosition(path), `${path.join('.')} must be a map with ${expected} (got ${describeType(value)})`);
    }
    this.reportUnknownKeys(value, path, fields);
    const result: Record<string, unknown> = {};
    for (const nested of fields) {
      if (!Object.hasOwn(value, nested.name)) continue;
      const read = this.readField(nested, [...path, nested.name], value[nested.name]);
      if (read !== undefined) result[nested.name] = read;
    }
    return result;
  }

  private readMapping(value: unknown): MappingRule[] | undefined {
    const { rules, errors, targets } = parseMapping(value);
    for (const issue of errors) this.error(this.mappingPosition(issue), issue.message);
    this.mappingTargets = targets;
    return errors.length > 0 ? undefined : rules;
  }

  private readKey(path: YamlPath, value: unknown): KeyRule | undefined {
    if (typeof value !== 'string') {
      return this.error(this.document.valuePosition(path), `key must be a line like 'HMS:permit_id -> COBOL:PERMIT_ID' (got ${describeType(value)})`);
    }
    try {
      return parseKeyRule(value);
    } catch (error) {
      if (!(error instanceof MappingSyntaxError)) throw error;
      return this.error(this.tokenPosition(path, error.token), error.message);
    }
  }

  private reportUnknownKeys(map: Record<string, unknown>, path: YamlPath, fields: FieldSpec[]): void {
    const known = fields.map((f) => f.name);
    const where = path.length > 0 ? ` in ${path.join('.')}` : '';
    for (const name of Object.keys(map)) {
      if (known.includes(name)) continue;
      this.error(this.document.keyPosition([...path, name]), `unknown key '${name}'${where}${didYouMean(name, known)}`);
    }
  }

  private reportMissingRecommended(values: ContractValues, root: Record<string, unknown>): void {
    const writesRows = values.connector === undefined || !/^mqtts?:/i.test(values.connector);
    for (const field of CONTRACT_FIELDS) {
      if (!field.recommended || Object.hasOwn(root, field.name)) continue;
      if (field.name === 'table' && !writesRows) continue;
      const need = field.name === 'table' ? 'write rows' : 'match events to rows';
      this.warning(this.document.valuePosition([]), `'${field.name}' is not set; EXS needs it to ${need} (for example: ${field.name}: ${field.example})`);
    }
  }

  /** The key fills its own column; a mapping line naming it again, in any case, would contradict it. */
  private checkKeyAgainstMapping({ key, mapping }: ContractValues): void {
    if (key === undefined || mapping === undefined) return;
    const clash = keyColumnClash(mapping, key);
    if (!clash) return;
    const spelling = clash.target === key.target ? '' : ` as '${clash.target}'`;
    this.error(
      this.mappingPosition(this.mappingTargets[mapping.indexOf(clash)] ?? {}),
      `key column '${key.target}' is also mapped${spelling} from '${clash.source}'; a column gets one value`,
    );
  }

  /** A rule for a column the mapping never writes would silently do nothing. */
  private checkFieldRulesAgainstMapping({ field_rules: rules, mapping }: ContractValues): void {
    if (rules === undefined || mapping === undefined) return;
    const root = this.document.value as Record<string, unknown>;
    const written = Object.keys((root.field_rules ?? {}) as object);
    for (const [i, column] of Object.keys(rules).entries()) {
      if (mapping.some((rule) => columnIdentity(rule.target) === columnIdentity(column))) continue;
      const targets = mapping.map((rule) => rule.target);
      this.error(this.document.keyPosition(['field_rules', written[i]]),
        `field_rules: column '${column}' is not written by the mapping${didYouMean(column, targets)} (columns: ${targets.join(', ')})`);
    }
  }

  /** `backlog` applies to realtime jobs: a held schedule's flush writes each record's newest anyway. */
  private checkBacklogAgainstSchedule({ backlog, schedule }: ContractValues): void {
    if (backlog === undefined || schedule === undefined || isRealtime(schedule)) return;
    this.warning(this.document.valuePosition(['backlog']),
      `backlog has no effect with schedule '${schedule}': a held schedule's flush always writes the newest event of each record`);
  }

  private mappingPosition(issue: MappingLocation): Position {
    const path: YamlPath = issue.item === undefined ? ['mapping'] : ['mapping', issue.item];
    const value = this.document.valueSpan(path);
    // In a map, the issue may sit in the key (`HMS:status`) as well as in the value.
    const key = typeof issue.item === 'string' ? this.document.keySpan(path) : undefined;
    const start = key?.start ?? value?.start;
    const end = value?.end ?? key?.end;
    if (issue.token !== undefined && start !== undefined && end !== undefined) {
      const span = { start, end };
      const found = this.document.findToken(span, issue.token, issue.occurrence) ?? this.document.findToken(span, firstWord(issue.token));
      if (found) return found;
    }
    return key ? this.document.keyPosition(path) : this.document.valuePosition(path);
  }

  /** Where `token` is written inside the value at `path`, else where the value starts. */
  private tokenPosition(path: YamlPath, token: string): Position {
    const span: TextSpan | undefined = this.document.valueSpan(path);
    return (span && this.document.findToken(span, token)) ?? this.document.valuePosition(path);
  }

  private error(position: Position, message: string): undefined {
    this.diagnostics.push({ file: this.file, ...position, severity: 'error', message });
    return undefined;
  }

  private warning(position: Position, message: string): void {
    this.diagnostics.push({ file: this.file, ...position, severity: 'warning', message });
  }
}

function firstWord(text: string): string {
  return text.trim().split(/\s+/)[0];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The contract as readable YAML: keys in spec order, one mapping line per list item,
 * values equal to their defaults left out. `env` must be the one the contract will be
 * read with, since the broker default comes from it.
 */
export function contractToYaml(contract: Contract, env: NodeJS.ProcessEnv = process.env): string {
  const defaults = contractDefaults(contract.id, contract.source_topic, env);
  const retryPolicy = Object.fromEntries(
    Object.entries(contract.retry_policy).filter(([name, value]) => value !== defaults.retry_policy[name as keyof RetryPolicy]),
  );
  const written: Record<string, unknown> = {
    ...contract,
    mapping: contract.mapping.map(formatMappingRule),
    key: contract.key && formatKeyRule(contract.key),
    retry_policy: Object.keys(retryPolicy).length > 0 ? retryPolicy : undefined,
  };
  const document: Record<string, unknown> = {};
  for (const { name } of CONTRACT_FIELDS) {
    const value = written[name];
    if (value === undefined || value === (defaults as Record<string, unknown>)[name]) continue;
    document[name] = escapeEnvReferences(value, env);
  }
  return dump(document, { lineWidth: -1, noRefs: true });
}

/**
 * Text that reads `${` must be written `$${`, or reading the file back would substitute it.
 * A `${NAME}` that `env` keeps as written stays a reference: read back, it is kept again.
 */
function escapeEnvReferences(value: unknown, env: NodeJS.ProcessEnv): unknown {
  if (typeof value === 'string') {
    return value.replace(/(\$?)\$\{(?:([A-Za-z_][A-Za-z0-9_]*)\})?/g, (match: string, dollar: string, name: string | undefined) => {
      // After a `$`, `${` would read as the escape `$${`: that one is always escaped.
      const kept = dollar === '' && name !== undefined && env[name] === match;
      return kept ? match : `${dollar}$${match.slice(dollar.length)}`;
    });
  }
  if (Array.isArray(value)) return value.map((item) => escapeEnvReferences(item, env));
  if (isRecord(value)) return Object.fromEntries(Object.entries(value).map(([key, child]) => [key, escapeEnvReferences(child, env)]));
  return value;
}
