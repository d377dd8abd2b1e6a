// Loaded by the `exs` command before anything else. mqtt.js and mqtt-packet log through the
// `debug` package, a dozen calls per MQTT packet. Switched off, each call still allocates its
// arguments array (`function debug(...args)`) before it checks whether it is enabled: under a
// flood of events that was 9% of everything the EXS runtime allocated, and so a share of its
// garbage collection (heap sampling of bench/sync-bench.js). So the `debug` copies those libraries
// load hand out functions that do nothing for the namespaces DEBUG does not name when a logger is
// made (mqtt-packet makes its loggers when it loads: DEBUG counts as set at start);
// DEBUG=mqttjs*,mqtt-packet* exs run ... logs as always.
// (EXS's own MQTT client also gets a quiet logger in a plain Node-RED: quietMqttLog.)
import * as path from 'node:path';

/**
 * Where the MQTT client and packet codec are, ours and Node-RED's (each may have a copy of its
 * own): each path is resolved step by step, each step from the folder of the one before.
 */
const MQTT_PACKAGES = [
  ['mqtt'],
  ['mqtt', 'mqtt-packet'],
  ['node-red/package.json', '@node-red/nodes/package.json', 'mqtt'],
  ['node-red/package.json', '@node-red/nodes/package.json', 'mqtt', 'mqtt-packet'],
  ['node-red-5/package.json', '@node-red/nodes/package.json', 'mqtt'],
  ['node-red-5/package.json', '@node-red/nodes/package.json', 'mqtt', 'mqtt-packet'],
];

interface DebugFactory {
  (namespace: string): unknown;
  [property: string]: unknown;
}

function quietFactory(real: DebugFactory): DebugFactory {
  const quiet = ((namespace: string) => {
    if ((real.enabled as (name: string) => boolean)(namespace)) return real(namespace);
    const log = Object.assign(() => undefined, {
      namespace,
      enabled: false,
      log: () => undefined,
      destroy: () => false,
      extend: (sub: string, delimiter = ':') => (quiet as DebugFactory)(`${namespace}${delimiter}${sub}`),
    });
    return log;
  }) as DebugFactory;
  // Everything else (enable, disable, formatters...) is the real module's.
  for (const key of Object.keys(real)) quiet[key] = real[key];
  quiet.default = quiet;
  return quiet;
}

function resolveFrom(file: string, request: string): string | undefined {
  try {
    return require.resolve(request, { paths: [path.dirname(file)] });
  } catch {
    return undefined;
  }
}

export function quietDebugUnlessAsked(): void {
  const done = new Set<string>();
  for (const steps of MQTT_PACKAGES) {
    let from: string | undefined = __filename;
    for (const step of steps) from = from && resolveFrom(from, step);
    const debugFile = from && resolveFrom(from, 'debug');
    if (!debugFile || done.has(debugFile)) continue;
    done.add(debugFile);
    // Only an optimisation: a `debug` this cannot load or wrap is left as it is.
    try {
      const real = require(debugFile) as DebugFactory;
      const cached = require.cache[debugFile];
      if (typeof real === 'function' && cached) cached.exports = quietFactory(real);
    } catch {
      // left alone
    }
  }
}
