// What the browser needs of every node the package registers, as built into dist/: the editor
// definition, help the editor can find, a message catalogue holding every key the editor asks
// for, and the icon the definition names. Node-RED finds them by convention, so a misnamed file
// or key shows up only as a missing help page, a raw message id or a blank icon.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..', '..');
const nodesDir = path.resolve(__dirname, '..', '..', 'nodes');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const moduleName: string = pkg.name;
const nodeFiles: Record<string, string> = pkg['node-red'].nodes;

/** Being moved to locales/ by someone else: their help may still be inline in the editor file. */
const HELP_EITHER_PLACE = new Set(['exs-mapper', 'exs-odbc']);

interface NodeAssets {
  type: string;
  dir: string;
  /** The compiled runtime file, e.g. dist/nodes/exs-source/exs-source.js. */
  runtime: string;
  /** The editor file Node-RED loads beside it. */
  editor: string;
  /** Node-RED registers locales/<lang>/<runtime basename>.json under this namespace. */
  namespace: string;
}

function assetsOf(type: string): NodeAssets {
  const runtime = path.join(nodesDir, path.relative(path.join('dist', 'nodes'), nodeFiles[type]));
  const dir = path.dirname(runtime);
  return { type, dir, runtime, editor: runtime.replace(/\.js$/, '.html'), namespace: `${moduleName}/${type}` };
}

function readIfExists(file: string): string | undefined {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : undefined;
}

function helpBlock(html: string, type: string): string | undefined {
  const match = new RegExp(`<script[^>]*data-help-name=["']${type}["'][^>]*>([\\s\\S]*?)</script>`).exec(html);
  return match?.[1];
}

function catalogueOf(node: NodeAssets): Record<string, unknown> {
  const file = path.join(node.dir, 'locales', 'en-US', `${path.basename(node.runtime, '.js')}.json`);
  assert.ok(fs.existsSync(file), `${node.type}: ${path.relative(root, file)} exists`);
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

/** The message a key names in a catalogue, following i18next's `.` key separator. */
function lookUp(catalogue: Record<string, unknown>, key: string): unknown {
  return key.split('.').reduce<unknown>((at, part) => (at && typeof at === 'object' ? (at as Record<string, unknown>)[part] : undefined), catalogue);
}

interface KeyReference {
  key: string;
  where: string;
}

/**
 * The keys an editor file asks its own catalogue for. Node-RED prefixes the node's namespace to
 * un-namespaced data-i18n keys of the edit dialog and to `this._()` (the node's or the definition's
 * `_`); keys of another namespace (`node-red:common.label.name`) are Node-RED's own.
 */
function referencedKeys(html: string, node: NodeAssets): { keys: KeyReference[]; problems: string[] } {
  const keys: KeyReference[] = [];
  const problems: string[] = [];
  const own = (key: string, where: string) => {
    const colon = key.indexOf(':');
    if (colon < 0) keys.push({ key, where });
    else if (key.slice(0, colon) === node.namespace) keys.push({ key: key.slice(colon + 1), where });
  };
  for (const match of html.matchAll(/data-i18n\s*=\s*"([^"]*)"/g)) {
    for (const part of match[1].split(';')) own(part.replace(/^\[[^\]]*\]/, '').trim(), `data-i18n="${match[1]}"`);
  }
  for (const match of html.matchAll(/\b(?:this|node|self|that)\._\(\s*(['"])([^'"]+)\1/g)) own(match[2], match[0]);
  // Keys picked in code (`this._(i === 0 ? 'a' : 'b')`, a table of keys): any literal shaped like one.
  for (const match of html.matchAll(new RegExp(`(['"])(${node.type}(?:\\.[\\w-]+)+)\\1`, 'g'))) {
    if (!/\.(svg|png|html|json|js)$/.test(match[2])) own(match[2], `'${match[2]}'`);
  }
  for (const match of html.matchAll(/\bRED\._\(\s*(['"])([^'"]+)\1/g)) {
    if (match[2].includes(':')) own(match[2], match[0]);
    else {
      problems.push(
        `${node.type}: ${match[0]}) looks in the editor's own catalogue, not the node's: ` +
          `use this._('${match[2]}') or RED._('${node.namespace}:${match[2]}')`,
      );
    }
  }
  return { keys, problems };
}

const types = Object.keys(nodeFiles);

describe('editor assets in dist/nodes', () => {
  it('lists the nodes to check', () => {
    assert.ok(types.length >= 9, 'package.json node-red.nodes lists the EXS nodes');
    assert.ok(fs.existsSync(nodesDir), `${path.relative(root, nodesDir)} exists (build first)`);
  });

  for (const type of types) {
    describe(type, () => {
      const node = assetsOf(type);

      it('has an editor file with a literal registerType', () => {
        const html = readIfExists(node.editor);
        assert.ok(html !== undefined, `${path.relative(root, node.editor)} exists`);
        assert.match(html, new RegExp(`RED\\.nodes\\.registerType\\(\\s*'${type}'`), `registerType('${type}', ...) is literal`);
        assert.ok(html.includes(`data-template-name="${type}"`), `${type} has its edit dialog`);
        assert.doesNotMatch(html, /__EXS_[A-Z_]+__/, 'every build token is replaced');
      });

      it('has help whose first paragraph is the palette tooltip', () => {
        const localeFile = path.join(node.dir, 'locales', 'en-US', path.basename(node.editor));
        const inline = helpBlock(readIfExists(node.editor) ?? '', type);
        const inLocales = helpBlock(readIfExists(localeFile) ?? '', type);
        if (HELP_EITHER_PLACE.has(type)) {
          assert.ok(inline !== undefined || inLocales !== undefined, `${type} has help, inline or in ${path.relative(root, localeFile)}`);
        } else {
          assert.ok(inLocales !== undefined, `${path.relative(root, localeFile)} holds data-help-name="${type}"`);
          // Node-RED prefers help left in the editor file, so a stale copy there would hide this one.
          assert.equal(inline, undefined, `${type}'s help is only in locales/en-US`);
        }
        const help = (inLocales ?? inline)!.trim();
        assert.match(help, /^<p>[\s\S]+?<\/p>/, 'help opens with a paragraph');
        assert.doesNotMatch(help, /__EXS_[A-Z_]+__/, 'every build token is replaced');
      });

      it('has an en-US catalogue with every key the editor and the status ask for', () => {
        const catalogue = catalogueOf(node);
        assert.ok(catalogue[type] && typeof catalogue[type] === 'object', `the catalogue is keyed by the node type '${type}'`);
        const { keys, problems } = referencedKeys(readIfExists(node.editor) ?? '', node);
        assert.deepEqual(problems, []);
        // Status texts that are message ids: the editor translates them with the node's catalogue.
        const runtime = readIfExists(node.runtime) ?? '';
        for (const match of runtime.matchAll(new RegExp(`(['"\`])(${type}\\.status\\.[\\w-]+)\\1`, 'g'))) {
          keys.push({ key: match[2], where: `status in ${path.basename(node.runtime)}` });
        }
        const missing = keys.filter(({ key }) => typeof lookUp(catalogue, key) !== 'string').map(({ key, where }) => `${key} (${where})`);
        assert.deepEqual(missing, [], `every key is a message in the ${type} catalogue`);
      });

      it('has the icon its definition names', () => {
        const html = readIfExists(node.editor) ?? '';
        const icon = /\bicon\s*:\s*(['"])([^'"]+)\1/.exec(html)?.[2];
        if (icon === undefined || icon.startsWith('font-awesome/')) return;
        // Icons are looked up across the module, in every icons/ folder beside a node.
        const name = icon.startsWith(`${moduleName}/`) ? icon.slice(moduleName.length + 1) : icon;
        const found = fs.readdirSync(nodesDir).some((dir) => fs.existsSync(path.join(nodesDir, dir, 'icons', name)));
        assert.ok(found, `${type}: icon '${icon}' is in some dist/nodes/*/icons/`);
        if (name.endsWith('.svg')) {
          const own = path.join(node.dir, 'icons', name);
          if (fs.existsSync(own)) assert.match(fs.readFileSync(own, 'utf8'), /<svg[^>]*viewBox=/, `${name} is an SVG with a viewBox`);
        }
      });
    });
  }

  it('fills the exs-job help with the properties from the spec', () => {
    const help = helpBlock(readIfExists(path.join(assetsOf('exs-job').dir, 'locales', 'en-US', 'exs-job.html')) ?? '', 'exs-job') ?? '';
    assert.match(help, /<h3>Properties<\/h3>\s*<dl class="message-properties">/);
    for (const name of ['schedule', 'conflict_rule', 'max_attempts']) assert.ok(help.includes(`<dt>${name} `), name);
  });

  it("takes an exs-job saved before an optional key existed as valid, and refuses a value the key does not know", () => {
    const html = fs.readFileSync(assetsOf('exs-job').editor, 'utf8');
    const generated = /defaults: \/\*[^*]*\*\/ (\{[\s\S]*?\n {8}\})/.exec(html)?.[1];
    assert.ok(generated, 'the generated defaults are in the editor file');
    const RED = { validators: { regex: (re: RegExp) => (v: unknown) => re.test(String(v)) } };
    const defaults = new Function('RED', `return ${generated};`)(RED) as Record<string, { validate?: (v: unknown) => boolean; required?: boolean }>;
    for (const name of ['changelog_feed', 'schedule', 'conflict_rule']) {
      assert.equal(defaults[name].validate?.(undefined), true, `${name} missing`);
    }
    assert.equal(defaults.changelog_feed.validate?.('batch'), true);
    assert.equal(defaults.changelog_feed.validate?.('batches'), false);
    assert.equal(defaults.conflict_rule.validate?.('HMS_WIN'), false);
  });
});
