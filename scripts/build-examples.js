#!/usr/bin/env node
// Regenerates examples/<name>.json (what Node-RED lists under Import > Examples) from every
// examples/<name>.sync.yaml, through the same importer as `exs import`. Run after a build:
//   node scripts/build-examples.js           write the flows
//   node scripts/build-examples.js --check   exit 1 if a committed flow is stale
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const examplesDir = path.join(root, 'examples');

function loadImporter() {
  const compiled = path.join(root, 'dist', 'flows', 'import.js');
  if (!fs.existsSync(compiled)) throw new Error(`${path.relative(root, compiled)} is missing: run npm run build first`);
  return require(compiled);
}

/**
 * The flow JSON each example contract yields now: [{ contract, flowFile, text }].
 * The broker default is the importer's, not this machine's EXS_MQTT_URL, so the
 * committed flows do not depend on who generated them.
 */
function exampleFlows() {
  const { importContractText } = loadImporter();
  const saved = process.env.EXS_MQTT_URL;
  delete process.env.EXS_MQTT_URL;
  try {
    return fs
      .readdirSync(examplesDir)
      .filter((name) => name.endsWith('.sync.yaml'))
      .sort()
      .map((name) => {
        const contract = path.join(examplesDir, name);
        const relative = path.posix.join('examples', name);
        const result = importContractText(fs.readFileSync(contract, 'utf8'), relative);
        const errors = result.diagnostics.filter((d) => d.severity === 'error');
        if (errors.length > 0 || result.nodes.length === 0) {
          const detail = errors.map((d) => `${d.file}:${d.line}:${d.col}: ${d.message}`).join('\n');
          throw new Error(`${relative} is not a valid contract:\n${detail}`);
        }
        return {
          contract,
          flowFile: path.join(examplesDir, name.replace(/\.sync\.yaml$/, '.json')),
          text: JSON.stringify(result.nodes, null, 2) + '\n',
        };
      });
  } finally {
    if (saved !== undefined) process.env.EXS_MQTT_URL = saved;
  }
}

function main(argv) {
  const check = argv.includes('--check');
  let stale = 0;
  for (const example of exampleFlows()) {
    const relative = path.relative(root, example.flowFile);
    const current = fs.existsSync(example.flowFile) ? fs.readFileSync(example.flowFile, 'utf8') : undefined;
    if (current === example.text) continue;
    if (check) {
      stale++;
      console.error(`${relative} is stale: run node scripts/build-examples.js`);
    } else {
      fs.writeFileSync(example.flowFile, example.text);
      console.log(`wrote ${relative}`);
    }
  }
  return stale > 0 ? 1 : 0;
}

module.exports = { exampleFlows };

if (require.main === module) {
  try {
    process.exit(main(process.argv.slice(2)));
  } catch (err) {
    console.error(`build-examples: ${err.message}`);
    process.exit(1);
  }
}
