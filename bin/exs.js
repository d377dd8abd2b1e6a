#!/usr/bin/env node
'use strict';
// The `exs` command; the implementation is compiled from bin/cli.ts (npm run build).
const { main } = require('../dist/bin/cli.js');

const io = { out: (text) => process.stdout.write(text + '\n'), err: (text) => process.stderr.write(text + '\n') };
main(process.argv.slice(2), io).then((code) => process.exit(code));
