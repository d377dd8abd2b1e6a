// README is the user's reference: every contract key, node and CLI command must be in it.
import { it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CONTRACT_FIELDS } from '../../nodes/core/spec';

const root = path.resolve(__dirname, '..', '..', '..');
const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

it('documents every contract key in its key table', () => {
  for (const field of CONTRACT_FIELDS) assert.match(readme, new RegExp(`^\\| \`${field.name}\` \\|`, 'm'), field.name);
});

it('documents every node the package registers', () => {
  for (const type of Object.keys(pkg['node-red'].nodes)) assert.ok(readme.includes(`\`${type}\``), type);
});

it('documents every exs command', () => {
  for (const command of ['validate', 'import', 'export', 'run', 'log', 'dlq', 'flush', 'demo']) assert.match(readme, new RegExp(`^exs ${command}\\b`, 'm'), command);
});
