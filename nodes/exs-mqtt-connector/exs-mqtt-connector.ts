// exs-mqtt-connector: republishes each mapped record on an MQTT topic (the SMS tracker, a
// contractor's app). Same seam as the ODBC connector: only the SyncConnector differs.
import { MqttConnector } from '../core/connectors/mqtt-connector';
import { substituteEnv } from '../core/env';
import { runConnectorNode } from '../shared/connector-node';
import type { JobNodeConfig, RED, RedNode } from '../shared/red';

interface MqttConnectorConfig extends JobNodeConfig {
  broker: string;
  topic: string;
  retain?: boolean;
}

/**
 * The broker URL with `${VAR}` substituted, and any `user:password@` taken out of it. In the
 * user info a value is %-escaped before the part is decoded, so it may hold `@`, `:` or `%`.
 */
function brokerAddress(broker: string, env: NodeJS.ProcessEnv = process.env): { url: string; user?: string; password?: string; missing: string[] } {
  const missing: string[] = [];
  const escapedEnv = new Proxy(env, {
    get: (target, name) => (typeof target[name as string] === 'string' ? encodeURIComponent(target[name as string]!) : undefined),
  });
  const substitute = (text: string, values = env) => {
    const result = substituteEnv(text, values);
    missing.push(...result.missing);
    return result.value;
  };
  const userInfoPart = (text: string) => {
    const escaped = substitute(text, escapedEnv);
    try {
      return decodeURIComponent(escaped);
    } catch {
      return escaped;
    }
  };
  const match = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)([^@/?]*)@(.*)$/s.exec(broker);
  if (!match) return { url: substitute(broker), missing };
  const [, scheme, userInfo, rest] = match;
  const at = userInfo.indexOf(':');
  return {
    url: substitute(`${scheme}${rest}`),
    user: userInfoPart(at < 0 ? userInfo : userInfo.slice(0, at)) || undefined,
    password: at < 0 ? undefined : userInfoPart(userInfo.slice(at + 1)),
    missing,
  };
}

export = function registerExsMqttConnector(RED: RED) {
  function ExsMqttConnector(this: RedNode, config: MqttConnectorConfig) {
    RED.nodes.createNode(this, config);
    runConnectorNode(RED, this, config, () => {
      const address = brokerAddress(config.broker || process.env.EXS_MQTT_URL || 'mqtt://127.0.0.1:1883');
      if (address.missing.length > 0) throw new Error(`environment variable ${address.missing.join(', ')} is not set`);
      if (!config.topic) throw new Error('no topic configured');
      // Credentials set on the node win over user info written in the address.
      return new MqttConnector({
        url: address.url,
        topic: config.topic,
        retain: Boolean(config.retain),
        username: this.credentials?.user || address.user,
        password: this.credentials?.password || address.password,
      });
    });
  }
  RED.nodes.registerType('exs-mqtt-connector', ExsMqttConnector, {
    credentials: { user: { type: 'text' }, password: { type: 'password' } },
  });
};
