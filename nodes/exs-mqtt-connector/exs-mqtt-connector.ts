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

export = function registerExsMqttConnector(RED: RED) {
  function ExsMqttConnector(this: RedNode, config: MqttConnectorConfig) {
    RED.nodes.createNode(this, config);
    runConnectorNode(RED, this, config, () => {
      const url = substituteEnv(config.broker || process.env.EXS_MQTT_URL || 'mqtt://127.0.0.1:1883');
      if (url.missing.length > 0) throw new Error(`environment variable ${url.missing.join(', ')} is not set`);
      if (!config.topic) throw new Error('no topic configured');
      return new MqttConnector({
        url: url.value,
        topic: config.topic,
        retain: Boolean(config.retain),
        username: this.credentials?.user || undefined,
        password: this.credentials?.password || undefined,
      });
    });
  }
  RED.nodes.registerType('exs-mqtt-connector', ExsMqttConnector, {
    credentials: { user: { type: 'text' }, password: { type: 'password' } },
  });
};
