// exs-source: where HMS events enter a job. Subscribes with a persistent MQTT session and
// acknowledges each event only once the job's journal holds it, so an event the broker handed
// over is never lost to a crash, a redeploy or a restart (Node-RED's own mqtt-in acknowledges
// first). Its output only shows the flow: the sync queue delivers from the journal.
import * as os from 'node:os';
import { DEFAULT_SESSION_EXPIRY_SECONDS, DurableMqttSource, type DurableSourceOptions } from '../core/connectors/durable-mqtt-source';
import { substituteEnv } from '../core/env';
import { jobOf, refuseInput } from '../shared/job-node';
import type { JobNodeConfig, NodeStatus, RED, RedNode } from '../shared/red';

interface SourceConfig extends JobNodeConfig {
  broker: string;
  topic: string;
  client_id?: string;
  session_expiry?: number | string;
  /** Node-RED's: the ids each output is wired to. */
  wires?: string[][];
}

/** Stable across restarts of this runtime, different between runtimes sharing a subscription. */
function defaultClientId(jobId: string): string {
  const instance = process.env.EXS_INSTANCE || os.hostname();
  return `exs-${jobId}-${instance}`.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 128);
}

function resolved(text: string, what: string): string {
  const { value, missing } = substituteEnv(text);
  if (missing.length > 0) throw new Error(`${what}: environment variable ${missing.join(', ')} is not set`);
  return value;
}

/** Status texts are message ids (locales/en-US/exs-source.json): the editor shows them translated. */
type SourceStatus = Parameters<NonNullable<DurableSourceOptions['onStatus']>>[0];
const SOURCE_STATUS: Record<SourceStatus, NodeStatus> = {
  connecting: { fill: 'yellow', shape: 'ring', text: 'exs-source.status.connecting' },
  connected: { fill: 'green', shape: 'dot', text: 'exs-source.status.connected' },
  offline: { fill: 'red', shape: 'ring', text: 'exs-source.status.offline' },
  error: { fill: 'red', shape: 'dot', text: 'exs-source.status.error' },
};

export = function registerExsSource(RED: RED) {
  function ExsSource(this: RedNode, config: SourceConfig) {
    RED.nodes.createNode(this, config);
    const job = jobOf(RED, this, config.job);
    if (!job) return;
    let source: DurableMqttSource;
    // Wired only to sync queues (the usual flow), the output just shows the flow: a queue ignores
    // journaled events and delivers them from the journal. Then no message leaves per event, which
    // spares every event a Node-RED hop (a message id, a deferred delivery, metrics). Anything else
    // wired here (a debug node, a function) gets each stored event. Decided again whenever the
    // wires change: a deploy of modified nodes rewires a node without restarting it, giving it a
    // new `wires` array. A wired node that does not exist right now (restarting) means "send" and
    // is not remembered, so the next event looks again.
    let decidedFor: unknown;
    let showsFlowOnly = false;
    const onlyQueuesListen = (): boolean => {
      const wires = (this as RedNode & { wires?: string[][] }).wires ?? config.wires ?? [];
      if (wires === decidedFor) return showsFlowOnly;
      const types = wires.flat().map((id) => (RED.nodes.getNode(id) as { type?: string } | null)?.type);
      if (types.some((type) => type === undefined)) return false;
      decidedFor = wires;
      showsFlowOnly = types.every((type) => type === 'exs-sync-queue');
      return showsFlowOnly;
    };
    try {
      const topic = resolved(config.topic || '', 'topic');
      if (!topic) throw new Error('no topic configured');
      source = new DurableMqttSource({
        url: resolved(config.broker || process.env.EXS_MQTT_URL || 'mqtt://127.0.0.1:1883', 'broker'),
        topic,
        clientId: config.client_id ? resolved(config.client_id, 'client id') : defaultClientId(job.id),
        sessionExpirySeconds: Number(config.session_expiry) || DEFAULT_SESSION_EXPIRY_SECONDS,
        // The importer may store `${VAR}` references as credentials; they are read here.
        username: this.credentials?.user ? resolved(this.credentials.user, 'user') : undefined,
        password: this.credentials?.password ? resolved(this.credentials.password, 'password') : undefined,
        store: async (eventTopic, payload) => {
          const seq = await job.accept(eventTopic, payload);
          if (!onlyQueuesListen()) this.send({ topic: eventTopic, payload, exs: { job: job.id, seq, journaled: true } });
        },
        onStatus: (status, detail) => {
          this.status(SOURCE_STATUS[status]);
          if (status === 'error' && detail) this.warn(detail);
        },
      });
    } catch (err) {
      refuseInput(this, 'exs-source.status.badConfig', (err as Error).message);
      return;
    }
    // Start only once the journal is open: an event acknowledged before that could not be stored.
    let closed = false;
    job.ready.then(
      () => {
        if (!closed) source.start();
      },
      (err: Error) => {
        this.status({ fill: 'red', shape: 'ring', text: 'exs-source.status.journalFailed' });
        this.error(`journal: ${err.message}`);
      },
    );
    this.on('close', (_removed, done) => {
      closed = true;
      source.stop().catch((err: Error) => this.warn(err.message)).finally(done);
    });
  }
  RED.nodes.registerType('exs-source', ExsSource, {
    credentials: { user: { type: 'text' }, password: { type: 'password' } },
  });
};
