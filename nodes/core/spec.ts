// The one declaration of every contract key and node field. The YAML validator, the
// importer (which node a key lands in), the exporter, the editor defaults and the README
// table are all read from here, so a key is added in exactly one place.

import { VERSION_TYPES } from './conflict';
import { BACKLOG_MODES, CHANGELOG_FEEDS, CONFLICT_RULES, SCHEDULES } from './types';

export type FieldType = 'string' | 'integer' | 'enum' | 'mapping' | 'key' | 'object' | 'field-rules';

/** The node whose configuration holds a contract key. */
export type OwnerNode = 'exs-job' | 'exs-mapper' | 'exs-conflict-resolver' | 'exs-connector' | 'mqtt';

export interface FieldSpec {
  /** YAML key and node property name. */
  name: string;
  type: FieldType;
  owner: OwnerNode;
  required: boolean;
  /** Missing but needed for a real run: a warning, not an error (the seed omits them). */
  recommended?: boolean;
  values?: readonly string[];
  /** An enum that also takes a five-field cron expression. */
  cron?: boolean;
  min?: number;
  /** Nested keys of an `object` field. */
  fields?: FieldSpec[];
  /** Default as shown to people; computed defaults (depending on `id`) are described in `help`. */
  default?: string | number;
  example: string;
  help: string;
}

export const RETRY_POLICY_FIELDS: FieldSpec[] = [
  {
    name: 'max_attempts', type: 'integer', owner: 'exs-job', required: false, min: 1, default: 5, example: '5',
    help: 'How many times an event is tried before it goes to the dead letter.',
  },
  {
    name: 'backoff_seconds', type: 'integer', owner: 'exs-job', required: false, min: 0, default: 30, example: '30',
    help: 'First retry delay; each further retry doubles it (with jitter, capped at 5 minutes). A destination that is down is asked again the same way, but at most 15 s apart.',
  },
];

export const CONTRACT_FIELDS: FieldSpec[] = [
  {
    name: 'id', type: 'string', owner: 'exs-job', required: true, example: 'PermitStatus_To_COBOL',
    help: 'Names the sync job. Letters, digits, `_`, `-` and `.`; it names the flow tab, the change log and the default dead-letter topic.',
  },
  {
    name: 'source_topic', type: 'string', owner: 'exs-job', required: true, example: 'permits.status',
    help: 'HMS event topic. Dots become MQTT levels (`permits.status` -> `permits/status`) unless `mqtt_topic` is set.',
  },
  {
    name: 'destination', type: 'string', owner: 'exs-job', required: true, example: 'COBOL_Mainframe',
    help: 'Human name of the legacy system; shown in the flow and the change log.',
  },
  {
    name: 'connector', type: 'string', owner: 'exs-connector', required: true, example: 'odbc://city-mainframe:3060',
    help: 'Where rows go: `odbc://DSN`, `odbc://host:port/database?driver=NAME`, `odbc:DRIVER={...};SERVER=...` or `mqtt://host:port/topic`. `${ENV_VAR}` is substituted.',
  },
  {
    name: 'mapping', type: 'mapping', owner: 'exs-mapper', required: true, example: 'HMS:status -> COBOL:PERMIT_STAT | map(Approved=APPR)',
    help: '`HMS:field -> COBOL:COLUMN` lines, optionally followed by `| transform` steps. A folded block, a list of strings, or a YAML map.',
  },
  {
    name: 'schedule', type: 'enum', owner: 'exs-job', required: false, values: SCHEDULES, cron: true, default: 'realtime', example: 'realtime',
    help: 'When events are applied: as they arrive (`realtime`), or held and flushed `hourly`, `nightly` (02:00) or on a cron expression such as `0 */4 * * *`, writing only the newest event of each record (and an older one that fills a column the newest leave out).',
  },
  {
    name: 'backlog', type: 'enum', owner: 'exs-job', required: false, values: BACKLOG_MODES, default: 'every_event', example: 'newest_per_record',
    help: 'What a `realtime` job writes when several events of one record wait in its journal together (a backlog after an outage, a burst): `every_event` writes each in turn; `newest_per_record` writes the newest and records the older ones as `superseded`, as a held schedule\'s flush does (an older event that fills a column the newest leaves out is written too). For destinations that hold a record\'s state, not a history of every change.',
  },
  {
    name: 'conflict_rule', type: 'enum', owner: 'exs-job', required: false, values: CONFLICT_RULES, default: 'HMS_WINS', example: 'HMS_WINS',
    help: 'Who wins when both sides changed a record: `HMS_WINS` (HMS overwrites legacy edits), `LAST_WRITE_WINS` (the newer of the legacy row\'s time column and the event\'s time), `DESTINATION_WINS` (legacy edits are kept) or `MANUAL` (parked until a person decides with `exs conflicts`).',
  },
  {
    name: 'field_rules', type: 'field-rules', owner: 'exs-conflict-resolver', required: false, values: CONFLICT_RULES,
    example: '{COBOL:INSPECTOR: DESTINATION_WINS}',
    help: 'A conflict rule per destination column, overriding `conflict_rule` for it, so ownership can be split (HMS owns the status, the clerk the inspector).',
  },
  {
    name: 'version_field', type: 'string', owner: 'exs-mapper', required: false, default: 'updated_at', example: 'updated_at',
    help: 'Event field that orders a record\'s events: a time, or a revision number. An older event never overwrites a newer one; an event without it counts as oldest.',
  },
  {
    name: 'version_type', type: 'enum', owner: 'exs-mapper', required: false, values: VERSION_TYPES, default: 'time', example: 'time',
    help: 'How the version field is read: `time` (ISO-8601, compact YYYYMMDD[HHmm[ss]] or epoch milliseconds) or `number` (a revision counter).',
  },
  {
    name: 'max_clock_skew_seconds', type: 'integer', owner: 'exs-mapper', required: false, min: 0, default: 300, example: '300',
    help: 'An event whose time is further in the future than this is flagged (dead letter with the reason) instead of winning over every later event.',
  },
  {
    name: 'retry_policy', type: 'object', owner: 'exs-job', required: false, fields: RETRY_POLICY_FIELDS, example: '{max_attempts: 5, backoff_seconds: 30}',
    help: 'How failed writes are retried.',
  },
  {
    name: 'table', type: 'string', owner: 'exs-connector', required: false, recommended: true, example: 'PERMIT_TABLE',
    help: 'Destination table (ODBC connectors). Matched against the catalog without regard to case.',
  },
  {
    name: 'state_table', type: 'string', owner: 'exs-connector', required: false, default: 'EXS_SYNC_STATE', example: 'EXS_SYNC_STATE',
    help: 'Table in the destination database where EXS remembers what it last wrote per record (version, fingerprint, parked conflicts); created if missing. `TABLE` or `SCHEMA.TABLE`.',
  },
  {
    name: 'key', type: 'key', owner: 'exs-mapper', required: false, recommended: true, example: 'HMS:permit_id -> COBOL:PERMIT_ID',
    help: 'The event field that identifies the record, and its key column.',
  },
  {
    name: 'broker', type: 'string', owner: 'mqtt', required: false, default: 'mqtt://127.0.0.1:1883', example: 'mqtt://127.0.0.1:1883',
    help: 'MQTT broker URL carrying HMS events. Default: env `EXS_MQTT_URL`, else `mqtt://127.0.0.1:1883`.',
  },
  {
    name: 'mqtt_topic', type: 'string', owner: 'mqtt', required: false, example: 'hms/permits/status',
    help: 'MQTT topic to subscribe to, overriding the translation of `source_topic`.',
  },
  {
    name: 'dead_letter', type: 'string', owner: 'exs-job', required: false, example: 'exs/PermitStatus_To_COBOL/dead_letter',
    help: 'Topic for events that cannot be applied, with their reason. Default `exs/<id>/dead_letter`.',
  },
  {
    name: 'changelog', type: 'string', owner: 'exs-job', required: false, default: 'exs/changelog', example: 'exs/changelog',
    help: 'Topic on which every change-log entry is published.',
  },
  {
    name: 'changelog_feed', type: 'enum', owner: 'exs-job', required: false, values: CHANGELOG_FEEDS, default: 'entry', example: 'batch',
    help: 'How entries go out on the `changelog` topic: `entry`, one MQTT message per entry; or `batch`, one message per group of events written together, its payload a JSON array of their entries in order (one entry at light load, up to the sync queue\'s Batch under load, split above 256 Ki characters). `batch` costs the runtime and the broker far less under load; the change-log file is the same either way. Give a `batch` job a `changelog` topic of its own, so consumers see one shape.',
  },
];

export function contractField(name: string): FieldSpec | undefined {
  return CONTRACT_FIELDS.find((f) => f.name === name);
}

/**
 * Node property that holds a contract key. Node-RED reserves `id` for the node itself, so
 * the job's id lives in `jobId`; nested keys (`retry_policy.max_attempts`) are flattened.
 */
export function nodeProperty(fieldName: string): string {
  return fieldName === 'id' ? 'jobId' : fieldName;
}
