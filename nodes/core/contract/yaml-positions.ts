// YAML parsing that remembers where every key and value was written, so contract
// diagnostics can point at `file:line:col`. js-yaml builds plain values only; its
// `listener` reports an 'open' and a 'close' event around every node it composes (keys
// included, in document order), and the tree of those events is rebuilt here.

import { CORE_SCHEMA, YAMLException, load, type State } from 'js-yaml';
import type { Position } from '../types';

/** Keys of mappings and indices of sequences, from the document root down. */
export type YamlPath = readonly (string | number)[];

/** Character offsets into the parsed text: `start` inclusive, `end` exclusive. */
export interface TextSpan {
  start: number;
  end: number;
}

export interface YamlProblem extends Position {
  message: string;
}

export interface PositionedYaml {
  /** The text as parsed (without a byte-order mark); spans are offsets into it. */
  readonly text: string;
  readonly value: unknown;
  /**
   * Where the key (or sequence item) at `path` starts. A path that leads nowhere (a key
   * brought in by an alias, say) answers with its nearest ancestor that was written down.
   */
  keyPosition(path: YamlPath): Position;
  /** Where the value at `path` starts, with the same fallback as `keyPosition`. */
  valuePosition(path: YamlPath): Position;
  keySpan(path: YamlPath): TextSpan | undefined;
  valueSpan(path: YamlPath): TextSpan | undefined;
  positionAt(offset: number): Position;
  /** Where the `occurrence`-th (0-based) `token` inside `span` is, if it is there. */
  findToken(span: TextSpan, token: string, occurrence?: number): Position | undefined;
}

export interface YamlParseResult {
  /** Absent when the text is not YAML at all. */
  document?: PositionedYaml;
  /** Syntax errors and duplicate keys, positioned. */
  problems: YamlProblem[];
}

/** One node as js-yaml reported it: offsets of its open and close events and its value. */
interface ComposedNode {
  open: number;
  close: number;
  kind: string | null;
  result: unknown;
  children: ComposedNode[];
}

interface MappingEntry {
  key: SourceNode;
  value?: SourceNode;
}

/** A node of the document with where it was written. */
interface SourceNode {
  span: TextSpan;
  entries?: Map<string, MappingEntry>;
  items?: SourceNode[];
}

const MULTIPLE_DOCUMENTS = 'expected a single document in the stream, but found more';

export function parseYamlWithPositions(source: string): YamlParseResult {
  const text = source.startsWith('\uFEFF') ? source.slice(1) : source;
  const lineStarts = findLineStarts(text);
  const positionAt = (offset: number) => offsetToPosition(lineStarts, offset);

  const roots: ComposedNode[] = [];
  const open: ComposedNode[] = [];
  const listener = (event: 'open' | 'close', state: State) => {
    if (event === 'open') {
      const node: ComposedNode = { open: state.position, close: state.position, kind: null, result: undefined, children: [] };
      (open.length > 0 ? open[open.length - 1].children : roots).push(node);
      open.push(node);
    } else {
      const node = open.pop()!;
      node.close = state.position;
      node.kind = state.kind;
      node.result = state.result;
    }
  };

  let value: unknown;
  try {
    // CORE_SCHEMA: contracts hold text and numbers; the default schema would turn
    // `2024-05-01` into a Date and honour `<<` merges. `json` lets a duplicate key through
    // so it is reported below with both places, rather than as a bare exception.
    value = load(text, { schema: CORE_SCHEMA, json: true, listener });
  } catch (error) {
    if (!(error instanceof YAMLException)) throw error;
    return { problems: [syntaxProblem(error, roots, text, positionAt)] };
  }

  const problems: YamlProblem[] = [];
  const reportDuplicate = (key: SourceNode, first: SourceNode, name: string) => {
    const firstLine = positionAt(first.span.start).line;
    problems.push({ ...positionAt(key.span.start), message: `duplicate key '${name}' (first given on line ${firstLine})` });
  };
  const root = roots.length > 0 && roots[0].kind !== null ? toSourceNode(roots[0], text, reportDuplicate) : undefined;
  return { document: positionedDocument(text, value, root, positionAt), problems };
}

function syntaxProblem(
  error: YAMLException,
  roots: ComposedNode[],
  text: string,
  positionAt: (offset: number) => Position,
): YamlProblem {
  if (error.reason === MULTIPLE_DOCUMENTS && roots.length > 1) {
    const separator = text.lastIndexOf('---', roots[1].open);
    const secondStart = separator >= 0 ? separator : skipBlanks(text, roots[1].open);
    return { ...positionAt(secondStart), message: "a contract file holds one YAML document; remove this second one (or its '---')" };
  }
  const position = error.mark ? { line: error.mark.line + 1, col: error.mark.column + 1 } : { line: 1, col: 1 };
  return { ...position, message: `invalid YAML: ${error.reason}` };
}

function positionedDocument(
  text: string,
  value: unknown,
  root: SourceNode | undefined,
  positionAt: (offset: number) => Position,
): PositionedYaml {
  /** The nodes along `path`, as far as the document spells it out. */
  const walk = (path: YamlPath) => {
    let key: SourceNode | undefined;
    let node = root;
    let nearest = root;
    let complete = true;
    for (const segment of path) {
      const entry = node?.entries?.get(String(segment));
      const item = typeof segment === 'number' ? node?.items?.[segment] : undefined;
      if (entry === undefined && item === undefined) {
        complete = false;
        break;
      }
      key = entry ? entry.key : item;
      node = entry ? entry.value : item;
      nearest = node ?? key;
    }
    return { key: complete ? key : undefined, node: complete ? node : undefined, nearest };
  };
  const documentStart = (): Position => (root ? positionAt(root.span.start) : { line: 1, col: 1 });
  const nearestPosition = (node: SourceNode | undefined) => (node ? positionAt(node.span.start) : documentStart());

  return {
    text,
    value,
    keyPosition(path) {
      const found = walk(path);
      return nearestPosition(found.key ?? found.nearest);
    },
    valuePosition(path) {
      const found = walk(path);
      return nearestPosition(found.node ?? found.key ?? found.nearest);
    },
    keySpan: (path) => walk(path).key?.span,
    valueSpan: (path) => walk(path).node?.span,
    positionAt,
    findToken(span, token, occurrence = 0) {
      if (token.length === 0) return undefined;
      let at = text.indexOf(token, span.start);
      for (let seen = 0; seen < occurrence && at >= 0; seen++) at = text.indexOf(token, at + token.length);
      return at >= 0 && at + token.length <= span.end ? positionAt(at) : undefined;
    },
  };
}

/**
 * Turns js-yaml's event tree into document nodes. Two quirks of the events: js-yaml
 * first tries to read a block value as a mapping key, so a value can arrive wrapped in an
 * outer node holding the same result; and a mapping's children are its keys and values
 * in order, except that a flow key may lack its value (`{a, b: 1}`) - so a key owns the
 * next child only when a `:` follows it.
 */
function toSourceNode(
  composed: ComposedNode,
  text: string,
  reportDuplicate: (key: SourceNode, first: SourceNode, name: string) => void,
): SourceNode {
  let node = composed;
  while (node.children.length === 1 && node.children[0].result === node.result) node = node.children[0];
  // An empty value (`key:` and nothing) is placed right after its key, not on the next line.
  const start = node.kind === null ? node.open : skipBlanks(text, node.open);
  const span = { start, end: Math.max(node.close, start) };
  const convert = (child: ComposedNode) => toSourceNode(child, text, reportDuplicate);

  if (node.kind === 'mapping') {
    const entries = new Map<string, MappingEntry>();
    for (const pair of pairUp(node.children, text)) {
      const name = String(pair.key.result);
      const entry = { key: convert(pair.key), value: pair.value && convert(pair.value) };
      const earlier = entries.get(name);
      if (earlier) reportDuplicate(entry.key, earlier.key, name);
      entries.set(name, entry);
    }
    return { span, entries };
  }
  if (node.kind === 'sequence') {
    const items: SourceNode[] = [];
    for (const pair of pairUp(node.children, text)) {
      // `[x, y: 1]`: a flow pair becomes a one-key mapping item.
      const key = convert(pair.key);
      if (pair.value === undefined) {
        items.push(key);
      } else {
        const value = convert(pair.value);
        items.push({ span: { start: key.span.start, end: value.span.end }, entries: new Map([[String(pair.key.result), { key, value }]]) });
      }
    }
    return { span, items };
  }
  return { span };
}

function pairUp(children: ComposedNode[], text: string): { key: ComposedNode; value?: ComposedNode }[] {
  const pairs: { key: ComposedNode; value?: ComposedNode }[] = [];
  for (let i = 0; i < children.length; i++) {
    const key = children[i];
    const hasValue = followedByColon(text, key) && i + 1 < children.length;
    pairs.push({ key, value: hasValue ? children[++i] : undefined });
  }
  return pairs;
}

function followedByColon(text: string, node: ComposedNode): boolean {
  return text[skipBlanks(text, node.close)] === ':';
}

/** Skips whitespace, line breaks and comments: where a node's content really starts. */
function skipBlanks(text: string, offset: number): number {
  let at = offset;
  while (at < text.length) {
    const ch = text[at];
    if (ch === ' ' || ch === '\t' || ch === '\r' || ch === '\n') {
      at++;
    } else if (ch === '#') {
      const lineEnd = text.indexOf('\n', at);
      at = lineEnd < 0 ? text.length : lineEnd;
    } else {
      break;
    }
  }
  return at;
}

function findLineStarts(text: string): number[] {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === '\n') starts.push(i + 1);
  return starts;
}

function offsetToPosition(lineStarts: number[], offset: number): Position {
  let low = 0;
  let high = lineStarts.length - 1;
  while (low < high) {
    const middle = (low + high + 1) >> 1;
    if (lineStarts[middle] <= offset) low = middle;
    else high = middle - 1;
  }
  return { line: low + 1, col: offset - lineStarts[low] + 1 };
}
