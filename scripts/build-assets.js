#!/usr/bin/env node
// Copies the editor files (.html, locales, icons) next to the compiled nodes in dist/, and
// writes the exs-job editor's defaults and property help from the one spec (nodes/core/spec.ts),
// so the editor, the YAML validator and the importer can never disagree about a key.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const { CONTRACT_FIELDS, nodeProperty } = require(path.join(root, 'dist/nodes/core/spec.js'));

function editorDefault(field) {
  const entry = [];
  const value = field.default !== undefined ? field.default : '';
  entry.push(`value: ${JSON.stringify(value)}`);
  if (field.required) entry.push('required: true');
  if (field.type === 'enum') {
    const cron = field.cron ? ' || String(v).trim().split(/\\s+/).length === 5' : '';
    // A flow saved before an optional key existed lacks its property (the editor does not fill in
    // defaults on load); the runtime takes the default then, so the node is valid as it is.
    const missing = field.required ? '' : "v === undefined || v === null || v === '' || ";
    entry.push(`validate: function (v) { return ${missing}${JSON.stringify(field.values)}.indexOf(v) >= 0${cron}; }`);
  } else if (field.type === 'integer') {
    // An imported contract may hold a ${VAR} here, read at deploy.
    entry.push(`validate: function (v) { return /^\\$\\{\\w+\\}$/.test(String(v)) || (/^\\d+$/.test(String(v)) && Number(v) >= ${field.min ?? 0}); }`);
  } else if (field.name === 'id') {
    entry.push('validate: RED.validators.regex(/^[A-Za-z0-9_.-]+$/)');
  }
  return `{ ${entry.join(', ')} }`;
}

function jobFields() {
  // Keys owned by the job; the nested retry policy is flattened onto the node.
  const fields = [];
  for (const field of CONTRACT_FIELDS.filter((f) => f.owner === 'exs-job')) {
    if (field.type === 'object') fields.push(...field.fields);
    else fields.push(field);
  }
  return fields;
}

function jobDefaults() {
  const lines = ["name: { value: '' }"];
  for (const field of jobFields()) lines.push(`${nodeProperty(field.name)}: ${editorDefault(field)}`);
  return `{\n            ${lines.join(',\n            ')}\n        }`;
}

function escapeHtml(text) {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function jobPropertiesHelp() {
  const items = jobFields().map((field) => {
    const help = escapeHtml(field.help).replace(/`([^`]+)`/g, '<code>$1</code>');
    const type = field.type === 'enum' ? field.values.join(' | ') : field.type;
    return `        <dt>${field.name} <span class="property-type">${type}</span></dt>\n        <dd>${help}</dd>`;
  });
  return `<dl class="message-properties">\n${items.join('\n')}\n    </dl>`;
}

const generated = {
  __EXS_JOB_DEFAULTS__: jobDefaults(),
  __EXS_JOB_PROPERTIES_HELP__: jobPropertiesHelp(),
};

function copyTree(from, to, transform) {
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const source = path.join(from, entry.name);
    const target = path.join(to, entry.name);
    if (entry.isDirectory()) {
      copyTree(source, target, transform);
    } else if (/\.(html|json|svg|png)$/.test(entry.name)) {
      fs.mkdirSync(to, { recursive: true });
      const text = fs.readFileSync(source);
      fs.writeFileSync(target, entry.name.endsWith('.html') ? transform(text.toString('utf8')) : text);
    }
  }
}

copyTree(path.join(root, 'nodes'), path.join(root, 'dist/nodes'), (html) => {
  let out = html;
  for (const [token, value] of Object.entries(generated)) out = out.split(token).join(value);
  const leftover = out.match(/__EXS_[A-Z_]+__/);
  if (leftover) throw new Error(`unknown build token ${leftover[0]}`);
  return out;
});
