// The mapping language - `HMS:field -> COBOL:COLUMN | transform | ...` - the three ways a
// contract may write it, and how one HMS event becomes one destination row.

import { didYouMean } from './did-you-mean';
import { CANONICAL_TIMESTAMP, formatInstant, parseInstant, TIMESTAMP_FORMS, TIMESTAMP_TOKENS } from './time';
import { sourceVersionOf, versionMillis, type SourceVersion, type VersionType } from './conflict';
import type { KeyRule, MappedRecord, MappingRule, RecordIdentity, Transform } from './types';

/** A mapping line or key rule that cannot be read. */
export class MappingSyntaxError extends Error {
  constructor(
    message: string,
    /** The offending text as written, so a caller can point at it. */
    readonly token: string,
    /** Where `token` starts in the text that was parsed. */
    readonly offset: number,
  ) {
    super(message);
    this.name = 'MappingSyntaxError';
  }
}

/** An event the mapping cannot turn into a row; it belongs in the dead letter with this reason. */
export class MappingError extends Error {
  constructor(
    /** The event field at fault, when one is. */
    readonly field: string | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'MappingError';
  }
}

/** Where something is written in a contract's `mapping`, with enough to find it in the file. */
export interface MappingLocation {
  /** The text as written. */
  token?: string;
  /** In a list or map `mapping`: the item index or map key that holds `token`. */
  item?: number | string;
  /** How many times `token` appears in that item (or the whole text) before this one. */
  occurrence?: number;
}

/** Something wrong in a contract's `mapping`, and where. */
export interface MappingIssue extends MappingLocation {
  message: string;
}

/** The values a transform works on: what JSON has besides objects, arrays and null. */
type Scalar = string | number | boolean;
type TransformStep = (value: Scalar, field: string) => Scalar;

interface TransformDefinition {
  /** Checks the arguments and returns them in canonical spelling; throws a message for people. */
  normalize(args: string[]): string[];
  /** Builds the per-value step once, so an event pays only for the work itself. */
  compile(args: string[]): TransformStep;
}

const DEFAULT_TRANSFORM = 'default';
const SAFE_COLUMN = /^[A-Za-z_][A-Za-z0-9_$#]*$/;
const MAX_COLUMN_LENGTH = 128;
const FIELD_SEGMENT = /^[A-Za-z0-9_$][A-Za-z0-9_$-]*$/;
/**
 * The one key that reaches an object's prototype: `obj['__proto__']` reads the prototype
 * even where JSON.parse made it an own property, and copying it can rewrite a prototype.
 * `constructor` and `prototype` are plain data here, since fields are read as own properties.
 */
const PROTOTYPE_KEY = '__proto__';

const TRANSFORMS: Record<string, TransformDefinition> = {
  map: {
    normalize(args) {
      if (args.length === 0) throw new Error('map needs FROM=TO pairs, e.g. map(Approved=APPR)');
      const seen = new Set<string>();
      return args.map((arg) => {
        const equals = arg.indexOf('=');
        if (equals < 0) throw new Error(`'${arg}' has no '=' (write FROM=TO)`);
        const from = arg.slice(0, equals).trim();
        if (from === '') throw new Error(`'${arg}' has nothing before '='`);
        if (seen.has(from)) throw new Error(`'${from}' is listed twice`);
        seen.add(from);
        return `${from}=${arg.slice(equals + 1).trim()}`;
      });
    },
    compile(args) {
      const table = new Map(args.map((arg) => [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]));
      const otherwise = table.get('*');
      table.delete('*');
      const known = [...table.keys()].join(', ');
      return (value, field) => {
        const text = String(value);
        const mapped = table.get(text) ?? otherwise;
        if (mapped === undefined) throw new MappingError(field, `field '${field}': '${text}' is not in the value table (known: ${known})`);
        return mapped;
      };
    },
  },
  upper: textTransform((text) => text.toUpperCase()),
  lower: textTransform((text) => text.toLowerCase()),
  trim: textTransform((text) => text.trim()),
  pad: padTransform('pad', (text, width, fill) => text.padEnd(width, fill)),
  padleft: padTransform('padleft', (text, width, fill) => text.padStart(width, fill)),
  truncate: {
    normalize: (args) => [String(widthArgument(args, 1))],
    compile(args) {
      const width = Number(args[0]);
      return (value) => String(value).slice(0, width);
    },
  },
  timestamp: {
    normalize(args) {
      if (args.length > 1) throw new Error('takes one format, e.g. timestamp(YYYYMMDDHHmmss)');
      const [format] = args;
      if (format === undefined) return [];
      if (format.match(TIMESTAMP_TOKENS) === null) throw new Error(`'${format}' uses none of YYYY MM DD HH mm ss SSS SSSSSS`);
      if (/yyyy|dd|hh/.test(format)) throw new Error(`'${format}': tokens are case-sensitive (YYYY, DD, HH; mm is minutes)`);
      return [format];
    },
    compile(args) {
      const format = args[0] ?? CANONICAL_TIMESTAMP;
      return (value, field) => {
        const instant = parseInstant(value);
        if (instant === undefined) {
          throw new MappingError(field, `field '${field}': '${String(value)}' is not a timestamp (${TIMESTAMP_FORMS})`);
        }
        return formatInstant(instant, format);
      };
    },
  },
  number: {
    normalize: noArguments,
    compile: () => (value, field) => {
      const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
      if (typeof number !== 'number' || !Number.isFinite(number)) {
        throw new MappingError(field, `field '${field}': '${String(value)}' is not a number`);
      }
      return number;
    },
  },
};

const TRANSFORM_NAMES = [...Object.keys(TRANSFORMS), DEFAULT_TRANSFORM];

function noArguments(args: string[]): string[] {
  if (args.length > 0) throw new Error('this transform takes no arguments');
  return [];
}

function textTransform(change: (text: string) => string): TransformDefinition {
  return { normalize: noArguments, compile: () => (value) => change(String(value)) };
}

function padTransform(name: string, pad: (text: string, width: number, fill: string) => string): TransformDefinition {
  return {
    normalize(args) {
      const width = widthArgument(args, 2);
      const fill = args[1];
      if (fill !== undefined && fill.length !== 1) throw new Error(`the fill must be one character (got '${fill}')`);
      return fill === undefined ? [String(width)] : [String(width), fill];
    },
    compile(args) {
      const width = Number(args[0]);
      const fill = args[1] ?? ' ';
      return (value, field) => {
        const text = String(value);
        if (text.length > width) {
          throw new MappingError(field, `field '${field}': '${text}' is ${text.length} characters, longer than ${name}(${width})`);
        }
        return pad(text, width, fill);
      };
    },
  };
}

/** The leading width argument `N` (a whole number >= 1) of a transform taking up to `maxArgs`. */
function widthArgument(args: string[], maxArgs: number): number {
  if (args.length === 0 || args.length > maxArgs) throw new Error(`expected ${maxArgs === 1 ? 'a width N' : 'a width N and an optional fill character'}`);
  const width = /^\d+$/.test(args[0]) ? Number(args[0]) : NaN;
  if (!(width >= 1)) throw new Error(`the width must be a whole number >= 1 (got '${args[0]}')`);
  return width;
}

// ---------------------------------------------------------------- reading lines

/** A piece of a line and where it starts in that line. */
interface Piece {
  text: string;
  offset: number;
}

interface ParsedLine {
  rule: MappingRule;
  /** The target as written (`COBOL:PERMIT_STAT`), to point at when a column is mapped twice. */
  target: Piece;
}

/** Reads `HMS:field -> COBOL:COLUMN [| transform]...`; throws MappingSyntaxError. */
export function parseMappingLine(text: string): MappingRule {
  return readLine(text).rule;
}

/** Reads `HMS:field -> COBOL:COLUMN`, the key rule, which takes no transforms. */
export function parseKeyRule(text: string): KeyRule {
  const { rule } = readLine(text);
  if (rule.transforms.length > 0) {
    const firstTransform = trimPiece(splitOutside(text, '|')[1]);
    throw new MappingSyntaxError('the key takes no transforms; it is written as HMS:field -> COBOL:COLUMN', firstTransform.text, firstTransform.offset);
  }
  return { source: rule.source, target: rule.target };
}

export function formatMappingRule(rule: MappingRule): string {
  return `HMS:${rule.source} -> COBOL:${rule.target}${rule.transforms.map((t) => ` | ${formatTransform(t)}`).join('')}`;
}

export function formatKeyRule(key: KeyRule): string {
  return `HMS:${key.source} -> COBOL:${key.target}`;
}

function formatTransform(transform: Transform): string {
  return transform.args.length > 0 ? `${transform.name}(${transform.args.join(', ')})` : transform.name;
}

function readLine(text: string): ParsedLine {
  const whole = trimPiece({ text, offset: 0 });
  const sides = splitOutside(text, '->');
  if (sides.length === 1) throw new MappingSyntaxError(`mapping '${whole.text}' has no '->' (write HMS:field -> COBOL:COLUMN)`, whole.text, whole.offset);
  if (sides.length > 2) throw new MappingSyntaxError(`mapping '${whole.text}' has more than one '->'`, whole.text, whole.offset);

  const source = trimPiece(sides[0]);
  const [targetPart, ...transformParts] = splitOutside(sides[1].text, '|').map((p) => ({ text: p.text, offset: p.offset + sides[1].offset }));
  const target = trimPiece(targetPart);
  if (source.text === '') throw new MappingSyntaxError(`mapping '${whole.text}' names no HMS field before '->'`, whole.text, whole.offset);
  if (target.text === '') throw new MappingSyntaxError(`mapping '${whole.text}' names no column after '->'`, whole.text, whole.offset);
  // In a folded block a line without '->' runs on into its neighbour: after the previous
  // line's column, or before the next line's field.
  const firstSpace = target.text.search(/\s/);
  if (firstSpace >= 0) {
    const stray = trimPiece({ text: target.text.slice(firstSpace), offset: target.offset + firstSpace });
    throw new MappingSyntaxError(`mapping '${stray.text}' has no '->' (write HMS:field -> COBOL:COLUMN)`, stray.text, stray.offset);
  }
  const lastSpace = source.text.search(/\s\S*$/);
  if (lastSpace >= 0) {
    const stray = { text: source.text.slice(0, lastSpace).trimEnd(), offset: source.offset };
    throw new MappingSyntaxError(`mapping '${stray.text}' has no '->' (write HMS:field -> COBOL:COLUMN)`, stray.text, stray.offset);
  }

  const sourceSide = splitSide(source.text);
  const targetSide = splitSide(target.text);
  const sourceIsHms = sourceSide.prefix === undefined || sourceSide.prefix.toUpperCase() === 'HMS';
  const targetIsHms = targetSide.prefix?.toUpperCase() === 'HMS';
  if (!sourceIsHms && targetIsHms) {
    throw new MappingSyntaxError(`sides are reversed: write '${target.text} -> ${source.text}' (HMS field first)`, source.text, source.offset);
  }
  if (!sourceIsHms) throw new MappingSyntaxError(`'${source.text}' is not an HMS field; the left side reads HMS:field`, source.text, source.offset);
  if (targetIsHms) throw new MappingSyntaxError(`'${target.text}' is an HMS field; the right side is a destination column like COBOL:COLUMN`, target.text, target.offset);

  const fieldProblem = checkFieldPath(sourceSide.name);
  if (fieldProblem) throw new MappingSyntaxError(fieldProblem, source.text, source.offset);
  const columnProblem = checkColumnName(targetSide.name);
  if (columnProblem) throw new MappingSyntaxError(columnProblem, target.text, target.offset);

  const transforms = transformParts.map((part) => readTransform(trimPiece(part)));
  if (transforms.filter((t) => t.name === DEFAULT_TRANSFORM).length > 1) {
    throw new MappingSyntaxError(`mapping '${whole.text}' has more than one default`, whole.text, whole.offset);
  }
  return { rule: { source: sourceSide.name, target: targetSide.name, transforms }, target };
}

function readTransform(piece: Piece): Transform {
  if (piece.text === '') throw new MappingSyntaxError("empty step after '|'", '|', piece.offset - 1);
  const match = /^([A-Za-z_]\w*)\s*(?:\((.*)\))?$/s.exec(piece.text);
  if (!match) {
    const problem = piece.text.includes('(') ? 'has unbalanced parentheses' : 'is not a transform (write name or name(arguments))';
    throw new MappingSyntaxError(`'${piece.text}' ${problem}`, piece.text, piece.offset);
  }
  const [, name, inner] = match;
  const args = inner === undefined || inner.trim() === '' ? [] : inner.split(',').map((arg) => arg.trim());
  if (name === DEFAULT_TRANSFORM) {
    if (args.length !== 1) throw new MappingSyntaxError(`'${piece.text}': default takes one value, e.g. default(UNKNOWN)`, piece.text, piece.offset);
    return { name, args };
  }
  if (!Object.hasOwn(TRANSFORMS, name)) {
    throw new MappingSyntaxError(`unknown transform '${name}'${didYouMean(name, TRANSFORM_NAMES)}`, name, piece.offset);
  }
  const definition = TRANSFORMS[name];
  try {
    return { name, args: definition.normalize(args) };
  } catch (error) {
    throw new MappingSyntaxError(`'${piece.text}': ${(error as Error).message}`, piece.text, piece.offset);
  }
}

/** `COBOL:PERMIT_STAT` -> { prefix: 'COBOL', name: 'PERMIT_STAT' }; the prefix is optional. */
function splitSide(text: string): { prefix?: string; name: string } {
  const match = /^([A-Za-z][A-Za-z0-9_]*):(.*)$/.exec(text);
  return match ? { prefix: match[1], name: match[2] } : { name: text };
}

function checkFieldPath(path: string): string | undefined {
  for (const segment of path.split('.')) {
    if (segment === PROTOTYPE_KEY) return `'${segment}' cannot be read from an event`;
    if (!FIELD_SEGMENT.test(segment)) return `'${path}' is not a field name (letters, digits and '_', with '.' between nested fields)`;
  }
  return undefined;
}

/** Why `name` is not a column EXS will put into SQL, or undefined when it is safe. */
function checkColumnName(name: string): string | undefined {
  if (!SAFE_COLUMN.test(name) || name.length > MAX_COLUMN_LENGTH) {
    return `'${name}' is not a safe column name (a letter or '_', then letters, digits, '_', '$' or '#'; at most ${MAX_COLUMN_LENGTH})`;
  }
  if (name === PROTOTYPE_KEY) return `'${name}' cannot be a column name`;
  return undefined;
}

/** Splits on `separator` where it is not inside parentheses (transform arguments). */
function splitOutside(text: string, separator: string): Piece[] {
  const pieces: Piece[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')') depth = Math.max(0, depth - 1);
    else if (depth === 0 && text.startsWith(separator, i)) {
      pieces.push({ text: text.slice(start, i), offset: start });
      start = i + separator.length;
      i = start - 1;
    }
  }
  pieces.push({ text: text.slice(start), offset: start });
  return pieces;
}

function trimPiece(piece: Piece): Piece {
  const leading = piece.text.length - piece.text.trimStart().length;
  return { text: piece.text.trim(), offset: piece.offset + leading };
}

// ---------------------------------------------------------------- the three forms

/**
 * Reads a contract's `mapping` in any of its forms: a text of lines (YAML folds an
 * indented block into one line, so a line may hold several `A -> B | t` pairs), a list
 * of lines, or a map `HMS:field: COBOL:COLUMN | t`. Every problem is collected.
 */
export function parseMapping(value: unknown): { rules: MappingRule[]; errors: MappingIssue[]; targets: MappingLocation[] } {
  const rules: MappingRule[] = [];
  const errors: MappingIssue[] = [];
  /** Where each rule's column is written, in the order of `rules`. */
  const targets: MappingLocation[] = [];
  const columns = new Map<string, MappingRule>();

  /** Reads one rule from `piece` of `itemText` and records it or what is wrong with it. */
  const take = (piece: Piece, itemText: string, item?: number | string) => {
    const locate = (token: string, offset: number) => ({ token, item, occurrence: countOccurrences(itemText, token, piece.offset + offset) });
    let parsed: ParsedLine;
    try {
      parsed = readLine(piece.text);
    } catch (error) {
      if (!(error instanceof MappingSyntaxError)) throw error;
      errors.push({ message: error.message, ...locate(error.token, error.offset) });
      return;
    }
    const { rule, target } = parsed;
    const first = columns.get(columnIdentity(rule.target));
    if (first !== undefined) {
      const spelling = first.target === rule.target ? '' : `; '${first.target}' and '${rule.target}' are one column, whatever the case`;
      errors.push({ message: `column '${rule.target}' is mapped twice (from '${first.source}' and '${rule.source}')${spelling}`, ...locate(target.text, target.offset) });
      return;
    }
    columns.set(columnIdentity(rule.target), rule);
    rules.push(rule);
    targets.push(locate(target.text, target.offset));
  };

  if (typeof value === 'string') {
    for (const line of linesOf(value)) for (const pair of splitPairs(line)) take(pair, value);
  } else if (Array.isArray(value)) {
    value.forEach((item, index) => {
      if (typeof item === 'string') take({ text: item, offset: 0 }, item, index);
      else errors.push({ message: `mapping item ${index + 1} must be a line like 'HMS:status -> COBOL:PERMIT_STAT' (got ${describeType(item)})`, item: index });
    });
  } else if (isRecord(value)) {
    for (const [source, target] of Object.entries(value)) {
      if (typeof target === 'string') take({ text: `${source} -> ${target}`, offset: 0 }, `${source} -> ${target}`, source);
      else errors.push({ message: `mapping '${source}' must name a column, like '${source}: COBOL:COLUMN' (got ${describeType(target)})`, token: source, item: source, occurrence: 0 });
    }
  } else {
    errors.push({ message: `mapping must be lines like 'HMS:status -> COBOL:PERMIT_STAT' (got ${describeType(value)})` });
  }
  if (rules.length === 0 && errors.length === 0) errors.push({ message: "mapping lists no fields; add lines like 'HMS:status -> COBOL:PERMIT_STAT'" });
  return { rules, errors, targets };
}

/** Databases match column names without regard to case, so `PERMIT_ID` and `permit_id` are one column. */
export function columnIdentity(column: string): string {
  return column.toUpperCase();
}

/**
 * The mapping rule that gives the key column a second value, if any. A line repeating the
 * key exactly is harmless; any other line naming that column, in any case, would make
 * every row carry the column twice or with two values.
 */
export function keyColumnClash(rules: readonly MappingRule[], key: KeyRule): MappingRule | undefined {
  const repeatsKey = (rule: MappingRule) => rule.target === key.target && rule.source === key.source && rule.transforms.length === 0;
  return rules.find((rule) => columnIdentity(rule.target) === columnIdentity(key.target) && !repeatsKey(rule));
}

/** Non-blank lines of a text, skipping `#` comment lines (kept by a literal `|` block). */
function linesOf(text: string): Piece[] {
  const lines: Piece[] = [];
  let offset = 0;
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed !== '' && !trimmed.startsWith('#')) lines.push({ text: line, offset });
    offset += line.length + 1;
  }
  return lines;
}

/**
 * Cuts a folded line into its `A -> B | t` pairs: between two arrows, the last word
 * (outside parentheses) is the next pair's source; the rest ends the previous pair.
 */
function splitPairs(line: Piece): Piece[] {
  const chunks = splitOutside(line.text, '->');
  if (chunks.length <= 2) return [line];
  const pairs: Piece[] = [];
  let pairStart = 0;
  for (const chunk of chunks.slice(1, -1)) {
    const nextSource = chunk.offset + lastWordStart(chunk.text);
    pairs.push({ text: line.text.slice(pairStart, nextSource), offset: line.offset + pairStart });
    pairStart = nextSource;
  }
  pairs.push({ text: line.text.slice(pairStart), offset: line.offset + pairStart });
  return pairs;
}

/** Where the last whitespace-separated word outside parentheses starts. */
function lastWordStart(text: string): number {
  const end = text.trimEnd().length;
  let wordStart = text.length - text.trimStart().length;
  let depth = 0;
  for (let i = 0; i < end; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')') depth = Math.max(0, depth - 1);
    else if (depth === 0 && /\s/.test(text[i])) wordStart = i + 1;
  }
  return wordStart;
}

function countOccurrences(text: string, token: string, before: number): number {
  let count = 0;
  for (let at = text.indexOf(token); at >= 0 && at < before; at = text.indexOf(token, at + token.length)) count++;
  return count;
}

/** 'a map', 'a list', 'a number'...: how a value's type reads in a message. */
export function describeType(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'boolean') return 'true/false';
  return typeof value === 'string' ? 'text' : `a ${typeof value}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------- applying

/**
 * Compiles the rules once into a function that maps one event to a record; per event
 * it only reads fields and runs the transforms. Rules are expected from parseMapping.
 */
export interface VersionOptions {
  /** Event field ordering the record's events (default `updated_at`). */
  versionField?: string;
  /** How that field is read (default `time`). */
  versionType?: VersionType;
  /** An event time further ahead than this is refused (default 300 s). */
  maxClockSkewSeconds?: number;
  now?: () => number;
}

const DEFAULT_VERSION_FIELD = 'updated_at';
const DEFAULT_MAX_CLOCK_SKEW_SECONDS = 300;

/**
 * Reads the record's version from an event: its time or revision. A time too far in the future is
 * refused: it would win over every real update until the clock caught up with it.
 */
export function compileVersionReader(options: VersionOptions): (event: Record<string, unknown>) => SourceVersion {
  const field = options.versionField || DEFAULT_VERSION_FIELD;
  const type = options.versionType ?? 'time';
  const read = fieldReader(field);
  const maxSkewMs = (options.maxClockSkewSeconds ?? DEFAULT_MAX_CLOCK_SKEW_SECONDS) * 1000;
  const now = options.now ?? Date.now;
  return (event) => {
    const value = read(event);
    const version = sourceVersionOf(value, type);
    if (version === undefined) {
      const expected = type === 'time' ? `a time (${TIMESTAMP_FORMS})` : 'a number';
      throw new MappingError(field, `version field '${field}' must be ${expected} (got ${describeValue(value)})`);
    }
    const millis = versionMillis(version);
    if (millis !== undefined && millis - now() > maxSkewMs) {
      throw new MappingError(field, `'${field}' ${String(value)} is ${Math.round((millis - now()) / 1000)} s in the future,`
        + ` beyond max_clock_skew_seconds (${maxSkewMs / 1000}): flagged rather than allowed to win over every later update`);
    }
    return version;
  };
}

function describeValue(value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : typeof value === 'object' ? JSON.stringify(value) : String(value);
}

/**
 * The record key, version and written columns of an event, for coalescing a record's queued events
 * into its newest: the event is mapped as the mapper maps it, so an event the mapper would refuse
 * (no key, a version it cannot read or flags, a value a transform rejects) answers undefined and is
 * neither replaced nor allowed to replace another.
 */
export function compileIdentify(rules: readonly MappingRule[], key: KeyRule, versionOptions: VersionOptions = {}): (event: unknown) => RecordIdentity | undefined {
  const mapEvent = compileMapping(rules, key, versionOptions);
  return (event) => {
    try {
      const record = mapEvent(event);
      return { key: String(record.keyValue), version: record.version ?? null, columns: Object.keys(record.row) };
    } catch {
      return undefined;
    }
  };
}

export function compileMapping(rules: readonly MappingRule[], key: KeyRule, versionOptions: VersionOptions = {}): (event: unknown) => MappedRecord {
  for (const column of [key.target, ...rules.map((rule) => rule.target)]) {
    const problem = checkColumnName(column);
    if (problem) throw new Error(problem);
  }
  const readKey = fieldReader(key.source);
  const writeColumns = rules.map(compileColumn);
  const readVersion = compileVersionReader(versionOptions);

  return (event) => {
    if (!isRecord(event)) throw new MappingError(undefined, `the event must be a JSON object (got ${describeType(event)})`);
    rejectPrototypeKeys(event);
    const keyValue = readKey(event);
    if (keyValue === undefined || keyValue === null || keyValue === '') {
      throw new MappingError(key.source, `key field '${key.source}' is missing`);
    }
    if (typeof keyValue !== 'string' && !(typeof keyValue === 'number' && Number.isFinite(keyValue))) {
      throw new MappingError(key.source, `key field '${key.source}' must be text or a number (got ${describeType(keyValue)})`);
    }
    const row: Record<string, unknown> = { [key.target]: keyValue };
    for (const writeColumn of writeColumns) writeColumn(event, row);
    return { keyColumn: key.target, keyValue, row, version: readVersion(event) };
  };
}

/** Maps one event; for a stream of events, compile once with compileMapping. */
export function applyMapping(rules: readonly MappingRule[], key: KeyRule, event: unknown): MappedRecord {
  return compileMapping(rules, key)(event);
}

function compileColumn(rule: MappingRule): (event: Record<string, unknown>, row: Record<string, unknown>) => void {
  const read = fieldReader(rule.source);
  const fallback = rule.transforms.find((t) => t.name === DEFAULT_TRANSFORM)?.args[0];
  const steps = rule.transforms
    .filter((t) => t.name !== DEFAULT_TRANSFORM)
    .map((t) => {
      if (!Object.hasOwn(TRANSFORMS, t.name)) throw new Error(`unknown transform '${t.name}'`);
      return TRANSFORMS[t.name].compile(t.args);
    });

  return (event, row) => {
    let value = read(event);
    if ((value === undefined || value === null) && fallback !== undefined) value = fallback;
    // A field the event does not carry leaves its column out of the row, so an UPDATE
    // keeps what the destination holds instead of blanking it. An explicit null is the
    // event saying "no value": that is written as NULL, untransformed.
    if (value === undefined) return;
    if (value === null) {
      row[rule.target] = null;
      return;
    }
    if (typeof value === 'object') {
      throw new MappingError(rule.source, `field '${rule.source}' has a wrong type: ${describeType(value)} where a single value belongs`);
    }
    let result = value as Scalar;
    for (const step of steps) result = step(result, rule.source);
    row[rule.target] = result;
  };
}

/** Reads a dotted path through own properties only, never through a prototype. */
export function fieldReader(path: string): (event: Record<string, unknown>) => unknown {
  const segments = path.split('.');
  if (segments.length === 1) return (event) => (Object.hasOwn(event, path) ? event[path] : undefined);
  return (event) => {
    let current: unknown = event;
    for (const segment of segments) {
      if (typeof current !== 'object' || current === null || !Object.hasOwn(current, segment)) return undefined;
      current = (current as Record<string, unknown>)[segment];
    }
    return current;
  };
}

/**
 * Refuses events carrying `__proto__` at any depth: later stages copy and merge event
 * data, and that key could then rewrite a prototype.
 */
function rejectPrototypeKeys(event: object): void {
  const pending: object[] = [event];
  const visited = new Set<object>();
  while (pending.length > 0) {
    const current = pending.pop()!;
    if (visited.has(current)) continue;
    visited.add(current);
    for (const [name, child] of Object.entries(current)) {
      if (name === PROTOTYPE_KEY) throw new MappingError(name, `the event holds a '${name}' key, which is refused`);
      if (typeof child === 'object' && child !== null) pending.push(child);
    }
  }
}
