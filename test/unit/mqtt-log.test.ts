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
