// A destination that is itself an MQTT consumer (the public SMS tracker, a contractor's app):
// the mapped record is republished as JSON. It proves the connector seam: nothing in the
// mapper, the queue or the change log knows which connector sits behind `SyncConnector`.
import * as mqtt from 'mqtt';
import { quietMqttLog } from './durable-mqtt-source';
import type { ApplyResult, MappedRecord, SyncConnector } from '../types';

export interface MqttConnectorOptions {
  url: string;
  /** Topic to publish on; `{key}` is replaced by the record's key value. */
  topic: string;
  retain?: boolean;
  qos?: 0 | 1 | 2;
  clientId?: string;
  username?: string;
  password?: string;
}

export class MqttConnector implements SyncConnector {
  readonly kind = 'mqtt';
  private client: mqtt.MqttClient | undefined;

  constructor(private readonly options: MqttConnectorOptions) {}

  async open(): Promise<void> {
    this.client = await mqtt.connectAsync(this.options.url, {
      clientId: this.options.clientId,
      username: this.options.username,
      password: this.options.password,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      ...quietMqttLog,
    });
  }

  topicFor(record: MappedRecord): string {
    return this.options.topic.replace(/\{key\}/g, String(record.keyValue).replace(/[+#/]/g, '_'));
  }

  async apply(record: MappedRecord): Promise<ApplyResult> {
    if (!this.client) throw new Error('MQTT connector is not open');
    const payload = JSON.stringify({ key: record.keyValue, row: record.row });
    await this.client.publishAsync(this.topicFor(record), payload, {
      qos: this.options.qos ?? 1,
      retain: this.options.retain ?? false,
    });
    return { outcome: 'applied', before: undefined, after: record.row };
  }

  async close(): Promise<void> {
    await this.client?.endAsync();
    this.client = undefined;
  }

  describe(): string {
    return `mqtt ${this.options.topic}`;
  }
}
