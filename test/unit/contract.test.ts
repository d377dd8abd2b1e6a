// The sync contract: the seed validates as written, each broken contract is reported at
// the right place with a message people understand, and a contract survives YAML and back.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { contractToYaml, defaultMqttTopic, loadContractFile, parseContract } from '../../nodes/core/contract/load';
import { parseYamlWithPositions } from '../../nodes/core/contract/yaml-positions';
import type { Contract } from '../../nodes/core/types';

const FIXTURES = path.resolve(__dirname, '../../../test/fixtures/contracts');
const SEED = path.join(FIXTURES, 'cobol_permit.sync.yaml');

/** Errors as `LINE:COL: message`, the form the fixtures expect. */
function errorsOf(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  return parseContract(text, 'test.sync.yaml', env)
    .diagnostics.filter((d) => d.severity === 'error')
    .map((d) => `${d.line}:${d.col}: ${d.message}`);
}

const VALID = `id: Job
source_topic: permits.status
destination: COBOL_Mainframe
connector: odbc://MAINFRAME
table: PERMIT_TABLE
key: HMS:permit_id -> COBOL:PERMIT_ID
mapping:
  - HMS:status -> COBOL:PERMIT_STAT
`;

describe('the seed contract', () => {
  it('validates verbatim, with warnings only', () => {
    const { contract, diagnostics } = loadContractFile(SEED, {});
    assert.deepEqual(diagnostics.map((d) => `${d.severity} ${d.line}:${d.col}`), ['warning 1:1', 'warning 1:1', 'warning 4:12']);
    assert.deepEqual(contract, {
      id: 'PermitStatus_To_COBOL',
      source_topic: 'permits.status',
      destination: 'COBOL_Mainframe',
      connector: 'odbc://city-mainframe:3060',
      mapping: [
        { source: 'status', target: 'PERMIT_STAT', transforms: [] },
        { source: 'updated_at', target: 'LAST_CHG_TS', transforms: [] },
      ],
      schedule: 'realtime',
      conflict_rule: 'HMS_WINS',
      version_field: 'updated_at',
      version_type: 'time',
      max_clock_skew_seconds: 300,
      retry_policy: { max_attempts: 5, backoff_seconds: 30 },
      state_table: 'EXS_SYNC_STATE',
      broker: 'mqtt://127.0.0.1:1883',
      mqtt_topic: 'permits/status',
      dead_letter: 'exs/PermitStatus_To_COBOL/dead_letter',
      changelog: 'exs/changelog',
      changelog_feed: 'entry',
      backlog: 'every_event',
    } satisfies Contract);
  });

  it('warns about the missing table and key and the driverless connector', () => {
    const messages = loadContractFile(SEED, {}).diagnostics.map((d) => d.message);
    assert.match(messages[0], /'table' is not set/);
    assert.match(messages[1], /'key' is not set/);
    assert.match(messages[2], /names no ODBC driver; add \?driver=NAME or use a DSN/);
  });
});

describe('broken contracts', () => {
  it('each reports its one expected error at the right line and column', () => {
    const files = fs.readdirSync(FIXTURES).filter((name) => name.startsWith('broken-'));
    assert.ok(files.length >= 12, `only ${files.length} broken fixtures`);
    for (const name of files) {
      const text = fs.readFileSync(path.join(FIXTURES, name), 'utf8');
      const expected = /^# expect: (.*)$/m.exec(text)?.[1];
      assert.ok(expected, `${name} has no '# expect:' line`);
      assert.deepEqual(errorsOf(text), [expected], name);
    }
  });
});

/** Every value from the environment, so each one must wait for deploy. */
const REFERENCED = `id: \${JOB}
source_topic: permits.status
destination: COBOL_Mainframe
connector: \${DB_URL}
table: \${T}
broker: \${MQTT}
key: HMS:permit_id -> COBOL:PERMIT_ID
mapping:
  - HMS:status -> COBOL:PERMIT_STAT
retry_policy:
  backoff_seconds: 30
  max_attempts: \${N}
`;

/** An env that keeps these references as written, as the importer's does. */
const KEEP: NodeJS.ProcessEnv = { JOB: '${JOB}', DB_URL: '${DB_URL}', T: '${T}', MQTT: '${MQTT}', N: '${N}' };

describe('parseContract', () => {
  it('fills the defaults, the broker from EXS_MQTT_URL when set', () => {
    const { contract } = parseContract(VALID, 'job.sync.yaml', { EXS_MQTT_URL: 'mqtt://broker:1883' });
    assert.equal(contract?.broker, 'mqtt://broker:1883');
    assert.equal(contract?.dead_letter, 'exs/Job/dead_letter');
    assert.equal(contract?.mqtt_topic, 'permits/status');
    assert.deepEqual(contract?.retry_policy, { max_attempts: 5, backoff_seconds: 30 });
  });

  it('substitutes ${VAR} in every text, and $${ writes a literal ${', () => {
    const text = VALID.replace('odbc://MAINFRAME', 'odbc://${DSN}').replace('COBOL_Mainframe', () => 'Mainframe $${x}') + 'retry_policy:\n  max_attempts: ${TRIES}\n';
    const { contract, diagnostics } = parseContract(text, 'job.sync.yaml', { DSN: 'MAINFRAME', TRIES: '9' });
    assert.deepEqual(diagnostics, []);
    assert.equal(contract?.connector, 'odbc://MAINFRAME');
    assert.equal(contract?.destination, 'Mainframe ${x}');
    assert.equal(contract?.retry_policy.max_attempts, 9);
  });

  it('points at an unset variable inside a mapping list item', () => {
    const text = VALID.replace('COBOL:PERMIT_STAT', 'COBOL:${COLUMN}');
    assert.deepEqual(errorsOf(text), ["8:25: environment variable 'COLUMN' is not set"]);
  });

  it('locates mapping problems in each form', () => {
    const folded = VALID.replace('  - HMS:status -> COBOL:PERMIT_STAT', '  HMS:status -> COBOL:PERMIT_STAT\n  HMS:updated_at -> COBOL:TS | lowr');
    assert.deepEqual(errorsOf(folded), ["9:32: unknown transform 'lowr' (did you mean 'lower'?)"]);
    const map = VALID.replace('  - HMS:status -> COBOL:PERMIT_STAT', '  HMS:status: COBOL:PERMIT_STAT\n  HMS:updated_at: COBOL:TS | lowr');
    assert.deepEqual(errorsOf(map), ["9:30: unknown transform 'lowr' (did you mean 'lower'?)"]);
  });

  it('refuses a key column that a mapping line fills with another value, pointing at that line', () => {
    const text = VALID + '  - HMS:other_id -> COBOL:PERMIT_ID\n';
    assert.deepEqual(errorsOf(text), ["9:21: key column 'PERMIT_ID' is also mapped from 'other_id'; a column gets one value"]);
  });

  it('compares columns without regard to case, against the key and each other', () => {
    const sameField = VALID + '  - HMS:permit_id -> COBOL:permit_id\n';
    assert.deepEqual(errorsOf(sameField), ["9:22: key column 'PERMIT_ID' is also mapped as 'permit_id' from 'permit_id'; a column gets one value"]);
    const folded = VALID.replace('  - HMS:status -> COBOL:PERMIT_STAT\n', '  HMS:permit_id -> COBOL:Permit_Id\n  HMS:status -> COBOL:PERMIT_STAT\n');
    assert.deepEqual(errorsOf(folded), ["8:20: key column 'PERMIT_ID' is also mapped as 'Permit_Id' from 'permit_id'; a column gets one value"]);
    const twice = VALID + '  - HMS:note -> COBOL:permit_stat\n';
    assert.deepEqual(errorsOf(twice), [
      "9:17: column 'permit_stat' is mapped twice (from 'status' and 'note'); 'PERMIT_STAT' and 'permit_stat' are one column, whatever the case",
    ]);
    assert.deepEqual(errorsOf(VALID + '  - HMS:permit_id -> COBOL:PERMIT_ID\n'), [], 'repeating the key line is harmless');
  });

  it('reports every problem, in file order', () => {
    const text = 'id: a b\nschedule: Realtime\nretry_policy: 3\nfoo: 1\n';
    assert.deepEqual(errorsOf(text), [
      "1:1: missing required key 'source_topic' (for example: source_topic: permits.status)",
      "1:1: missing required key 'destination' (for example: destination: COBOL_Mainframe)",
      "1:1: missing required key 'connector' (for example: connector: odbc://city-mainframe:3060)",
      "1:1: missing required key 'mapping' (for example: mapping: HMS:status -> COBOL:PERMIT_STAT | map(Approved=APPR))",
      "1:5: id may only use letters, digits, '_', '-' and '.' (got 'a b')",
      "2:11: schedule must be one of realtime, hourly, nightly or a cron expression (got 'Realtime') (did you mean 'realtime'?)",
      '3:15: retry_policy must be a map with max_attempts and backoff_seconds (got a number)',
      '4:1: unknown key \'foo\'',
    ]);
  });

  it('takes changelog_feed entry or batch, and names the choices for anything else', () => {
    assert.equal(parseContract(VALID + 'changelog_feed: batch\n', 'job.sync.yaml', {}).contract?.changelog_feed, 'batch');
    assert.equal(parseContract(VALID, 'job.sync.yaml', {}).contract?.changelog_feed, 'entry');
    const errors = errorsOf(VALID + 'changelog_feed: batches\n');
    assert.equal(errors.length, 1);
    assert.match(errors[0], /changelog_feed must be one of entry, batch \(got 'batches'\) \(did you mean 'batch'\?\)/);
  });

  it('takes backlog every_event or newest_per_record, and warns that a held schedule ignores it', () => {
    assert.equal(parseContract(VALID, 'job.sync.yaml', {}).contract?.backlog, 'every_event');
    const realtime = parseContract(VALID + 'backlog: newest_per_record\n', 'job.sync.yaml', {});
    assert.equal(realtime.contract?.backlog, 'newest_per_record');
    assert.deepEqual(realtime.diagnostics, []);
    const yaml = contractToYaml(realtime.contract!, {});
    assert.match(yaml, /^backlog: newest_per_record$/m);
    assert.deepEqual(parseContract(yaml, 'again.sync.yaml', {}), realtime);
    const held = parseContract(VALID + 'schedule: nightly\nbacklog: newest_per_record\n', 'job.sync.yaml', {});
    assert.deepEqual(held.diagnostics.map((d) => `${d.severity} ${d.line}:${d.col} ${d.message}`), [
      "warning 10:10 backlog has no effect with schedule 'nightly': a held schedule's flush always writes the newest event of each record",
    ]);
    assert.match(errorsOf(VALID + 'backlog: newest\n')[0], /backlog must be one of every_event, newest_per_record \(got 'newest'\)/);
  });

  it('reports an empty file and a file that is not a map at 1:1', () => {
    assert.equal(errorsOf('')[0], "1:1: missing required key 'id' (for example: id: PermitStatus_To_COBOL)");
    assert.deepEqual(errorsOf('- a\n- b\n'), ["1:1: a sync contract is a map of keys like 'id: PermitStatus_To_COBOL' (got a list)"]);
  });

  it('accepts ${NAME} references the env keeps as written, leaving their form to deploy', () => {
    const { contract, diagnostics } = parseContract(REFERENCED, 'job.sync.yaml', KEEP);
    assert.deepEqual(diagnostics, []);
    assert.equal(contract?.id, '${JOB}');
    assert.equal(contract?.connector, '${DB_URL}');
    assert.equal(contract?.table, '${T}');
    assert.equal(contract?.broker, '${MQTT}');
    assert.deepEqual(contract?.retry_policy, { max_attempts: '${N}', backoff_seconds: 30 });
    assert.deepEqual(errorsOf(REFERENCED.replace('max_attempts: ${N}', 'max_attempts: 1${N}'), KEEP), ['12:17: retry_policy.max_attempts must be an integer >= 1']);
  });

  it('checks the substituted values fully when the env sets them', () => {
    const env = { JOB: 'Job', DB_URL: 'city-mainframe:3060', T: 'PERMIT TABLE', MQTT: 'localhost:1883', N: 'five' };
    assert.deepEqual(errorsOf(REFERENCED, env), [
      "4:12: connector 'city-mainframe:3060' has no scheme; use odbc://DSN, odbc://host:port/database?driver=NAME, odbc:DRIVER={...};SERVER=... or mqtt://host:port/topic",
      "5:8: table must be a safe name like PERMIT_TABLE or SCHEMA.PERMIT_TABLE (got 'PERMIT TABLE')",
      "6:9: broker must be an mqtt://, mqtts://, ws:// or wss:// URL (got 'localhost:1883')",
      '12:17: retry_policy.max_attempts must be an integer >= 1',
    ]);
    assert.deepEqual(errorsOf(VALID.replace('PERMIT_TABLE', () => '$${T}')), ["5:8: table must be a safe name like PERMIT_TABLE or SCHEMA.PERMIT_TABLE (got '${T}')"], 'an escaped ${ is text');
  });

  it('checks topics and the broker URL', () => {
    const text = VALID + 'broker: localhost:1883\ndead_letter: exs/#\n';
    assert.deepEqual(errorsOf(text), [
      "9:9: broker must be an mqtt://, mqtts://, ws:// or wss:// URL (got 'localhost:1883')",
      "10:14: dead_letter is a topic to publish on; '+' and '#' are not allowed (got 'exs/#')",
    ]);
  });
});

describe('contractToYaml', () => {
  it('writes the seed back without its defaults, and it reads back equal', () => {
    const { contract } = loadContractFile(SEED, {});
    assert.ok(contract);
    const yaml = contractToYaml(contract, {});
    assert.equal(yaml, [
      'id: PermitStatus_To_COBOL',
      'source_topic: permits.status',
      'destination: COBOL_Mainframe',
      'connector: odbc://city-mainframe:3060',
      'mapping:',
      '  - HMS:status -> COBOL:PERMIT_STAT',
      '  - HMS:updated_at -> COBOL:LAST_CHG_TS',
      '',
    ].join('\n'));
    assert.deepEqual(parseContract(yaml, 'seed.sync.yaml', {}).contract, contract);
  });

  it('round-trips a contract that sets everything, transforms and literal ${ included', () => {
    const contract: Contract = {
      id: '2024',
      source_topic: 'permits.status',
      destination: 'Price: ${cost}',
      connector: 'odbc://host:50000/PERMITS?driver=IBM%20DB2',
      mapping: [
        { source: 'status', target: 'PERMIT_STAT', transforms: [{ name: 'map', args: ['Approved=APPR', '*=OTHER'] }, { name: 'pad', args: ['8'] }] },
        { source: 'updated_at', target: 'LAST_CHG_TS', transforms: [{ name: 'timestamp', args: ['YYYY-MM-DD HH:mm:ss'] }, { name: 'default', args: ['0'] }] },
        { source: 'inspector', target: 'INSPECTOR', transforms: [] },
        { source: 'remarks', target: 'REMARKS', transforms: [] },
      ],
      schedule: 'nightly',
      conflict_rule: 'LAST_WRITE_WINS',
      field_rules: { INSPECTOR: 'DESTINATION_WINS', REMARKS: 'MANUAL' },
      version_field: 'meta.revision',
      version_type: 'number',
      max_clock_skew_seconds: 60,
      retry_policy: { max_attempts: 5, backoff_seconds: 60 },
      table: 'PROD.PERMIT_TABLE',
      state_table: 'PROD.EXS_STATE',
      key: { source: 'permit_id', target: 'PERMIT_ID' },
      broker: 'mqtts://broker:8883',
      mqtt_topic: 'hms/permits/+',
      dead_letter: 'exs/dead',
      changelog: 'exs/log',
      changelog_feed: 'batch',
      // A held schedule ignores backlog (validation warns): its round trip is in the backlog test.
      backlog: 'every_event',
    };
    const yaml = contractToYaml(contract, {});
    assert.match(yaml, /retry_policy:\n {2}backoff_seconds: 60\n/);
    assert.deepEqual(parseContract(yaml, 'all.sync.yaml', {}), { contract, diagnostics: [] });
  });

  it('writes references the env keeps as references, and a literal ${ escaped, so both read back', () => {
    const { contract } = parseContract(REFERENCED.replace('COBOL_Mainframe', () => 'Mainframe $${T} $$${T}'), 'job.sync.yaml', KEEP);
    assert.ok(contract);
    assert.equal(contract.destination, 'Mainframe ${T} $${T}');
    const yaml = contractToYaml(contract, KEEP);
    assert.match(yaml, /^connector: \$\{DB_URL\}$/m);
    assert.match(yaml, /max_attempts: \$\{N\}/);
    assert.match(yaml, /^destination: Mainframe \$\{T\} \$\$\$\{T\}$/m);
    assert.deepEqual(parseContract(yaml, 'again.sync.yaml', KEEP), { contract, diagnostics: [] });
  });
});

describe('yaml positions', () => {
  it('finds keys and values, skipping comments and blank lines', () => {
    const { document } = parseYamlWithPositions('# head\n\nouter:   # note\n  list:\n    - a\n    - {b: 1}\n');
    assert.ok(document);
    assert.deepEqual(document.keyPosition(['outer', 'list']), { line: 4, col: 3 });
    assert.deepEqual(document.valuePosition(['outer', 'list', 1, 'b']), { line: 6, col: 11 });
    assert.deepEqual(document.valuePosition(['outer', 'missing']), { line: 4, col: 3 });
  });

  it('reports syntax errors and duplicate keys with their place', () => {
    assert.deepEqual(parseYamlWithPositions('a: [1, 2\nb: 3\n').problems, [{ line: 2, col: 1, message: 'invalid YAML: missed comma between flow collection entries' }]);
    assert.deepEqual(parseYamlWithPositions('a: 1\nb:\n  c: 1\n  c: 2\n').problems, [{ line: 4, col: 3, message: "duplicate key 'c' (first given on line 3)" }]);
  });
});

describe('defaultMqttTopic', () => {
  it('turns dots into topic levels', () => {
    assert.equal(defaultMqttTopic('permits.status'), 'permits/status');
  });
});
