#!/usr/bin/env node
// The stock Node-RED flow the sync benchmark compares EXS with: core `mqtt in` (QoS 1, persistent
// session) -> `json` -> a function that runs the same guarded upsert through the `odbc` package,
// one query per message, as a Node-RED user would wire it without EXS. Run by bench/sync-bench.js
// in a child process: `node bench/stock-node-red.js '<json config>'`; prints `ready` once deployed.
'use strict';
const { startRuntime } = require('../dist/bin/embedded-runtime.js');

async function main() {
  const config = JSON.parse(process.argv[2]);
  const url = new URL(config.brokerUrl);
  const func = `
const odbc = global.get('odbc');
let pool = context.get('pool');
if (!pool) {
  pool = odbc.pool({ connectionString: ${JSON.stringify(config.connectionString)}, initialSize: 4, maxSize: 4 });
  context.set('pool', pool);
}
const e = msg.payload;
pool.then((p) => p.query(${JSON.stringify(config.upsertSql)}, [e.permit_id, e.status, e.updated_at, String(e.seq), String(e.sent_at)]))
  .then(() => node.done(), (err) => node.done(err));
return null;`;
  const flows = [
    { id: 'tab', type: 'tab', label: 'stock' },
    {
      id: 'broker', type: 'mqtt-broker', z: 'tab', name: 'bench', broker: url.hostname, port: url.port, clientid: 'stock-node-red-bench',
      autoConnect: true, usetls: false, protocolVersion: '4', keepalive: '60', cleansession: false, autoUnsubscribe: false,
    },
    { id: 'in', type: 'mqtt in', z: 'tab', topic: config.topic, qos: '1', datatype: 'utf8', broker: 'broker', nl: false, rap: true, rh: 0, inputs: 0, x: 100, y: 100, wires: [['json']] },
    { id: 'json', type: 'json', z: 'tab', action: 'obj', property: 'payload', x: 250, y: 100, wires: [['upsert']] },
    { id: 'upsert', type: 'function', z: 'tab', func, outputs: 0, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], x: 400, y: 100, wires: [] },
  ];
  const runtime = await startRuntime({
    flows,
    userDir: config.userDir,
    port: config.port,
    editor: false,
    quiet: true,
    settings: { functionGlobalContext: { odbc: require('odbc') } },
  });
  console.log('ready');
  const stop = () => runtime.stop().then(() => process.exit(0), () => process.exit(1));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
