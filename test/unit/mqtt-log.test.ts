// mqtt.js's per-packet `debug` logging costs allocations even when nobody listens: EXS's clients
// get a logger that does nothing, unless DEBUG asks for mqtt.js's log.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

const MODULE = path.join(__dirname, '..', '..', 'nodes', 'core', 'connectors', 'durable-mqtt-source.js');

function quietLogWith(debug: string | undefined): boolean {
  const env = { ...process.env };
  if (debug === undefined) delete env.DEBUG;
  else env.DEBUG = debug;
  const script = `process.stdout.write(String(typeof require(${JSON.stringify(MODULE)}).quietMqttLog.log === 'function'))`;
  return execFileSync(process.execPath, ['-e', script], { env, encoding: 'utf8' }) === 'true';
}

describe('mqtt.js logging', () => {
  it('is silenced without DEBUG, and for DEBUG values that do not name mqtt.js', () => {
    assert.equal(quietLogWith(undefined), true);
    assert.equal(quietLogWith('express:*'), true);
  });

  it("is mqtt.js's own when DEBUG asks for it", () => {
    assert.equal(quietLogWith('mqttjs*'), false);
    assert.equal(quietLogWith('express:*,mqttjs:client'), false);
    assert.equal(quietLogWith('*'), false);
    assert.equal(quietLogWith('mqtt*'), false);
    assert.equal(quietLogWith('-mqttjs*'), true, 'an exclusion is not a request');
  });
});

describe('the exs command quiets the debug package under mqtt.js and mqtt-packet', () => {
  const QUIET = path.join(__dirname, '..', '..', 'bin', 'quiet-debug.js');
  /** Whether each namespace's logger is the real one after quietDebugUnlessAsked(), as mqtt.js and mqtt-packet get it. */
  function realLoggers(debug: string | undefined): Record<string, boolean> {
    const env = { ...process.env };
    if (debug === undefined) delete env.DEBUG;
    else env.DEBUG = debug;
    const script = `
      require(${JSON.stringify(QUIET)}).quietDebugUnlessAsked();
      const path = require('node:path');
      const from = (file, request) => require.resolve(request, { paths: [path.dirname(file)] });
      const packet = from(require.resolve('mqtt'), 'mqtt-packet');
      const debugOf = (file) => require(from(file, 'debug'));
      const real = (logger) => 'color' in logger;
      process.stdout.write(JSON.stringify({
        'mqttjs:client': real(debugOf(require.resolve('mqtt'))('mqttjs:client')),
        'mqtt-packet:parser': real(debugOf(packet)('mqtt-packet:parser')),
        'mqtt-packet:writeToStream': real(debugOf(packet).default('mqtt-packet:writeToStream')),
      }));`;
    return JSON.parse(execFileSync(process.execPath, ['-e', script], { env, encoding: 'utf8', cwd: path.join(__dirname, '..', '..', '..') }));
  }

  it('hands out loggers that do nothing for namespaces DEBUG does not name', () => {
    assert.deepEqual(realLoggers(undefined), { 'mqttjs:client': false, 'mqtt-packet:parser': false, 'mqtt-packet:writeToStream': false });
    assert.deepEqual(realLoggers('express:*'), { 'mqttjs:client': false, 'mqtt-packet:parser': false, 'mqtt-packet:writeToStream': false });
  });

  it('keeps the real logger for what DEBUG names', () => {
    assert.deepEqual(realLoggers('mqtt-packet:*'), { 'mqttjs:client': false, 'mqtt-packet:parser': true, 'mqtt-packet:writeToStream': true });
    assert.deepEqual(realLoggers('*'), { 'mqttjs:client': true, 'mqtt-packet:parser': true, 'mqtt-packet:writeToStream': true });
  });
});
