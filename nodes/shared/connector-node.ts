// Everything a connector node does that does not depend on the destination: wait for the
// mapper's schema, open the connector once at deploy (a missing table is reported there,
// not per event), apply records, route failures to the dead-letter output, close on redeploy.
// A developer adds a destination by implementing SyncConnector and calling this.
import type { DestinationSchema } from '../core/sync-job';
import type { ExsEnvelope, SyncConnector } from '../core/types';
import { jobOf } from './job-node';
import type { JobNodeConfig, NodeMessage, RED, RedNode } from './red';

/** How long a connector waits at deploy for its job's mapper to declare the columns. */
const SCHEMA_WAIT_MS = 5_000;

export type ConnectorFactory = (schema: DestinationSchema | undefined) => SyncConnector;

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function runConnectorNode(red: RED, node: RedNode, config: JobNodeConfig, createConnector: ConnectorFactory): void {
  const job = jobOf(red, node, config.job);
  if (!job) return;
  node.status({ fill: 'yellow', shape: 'ring', text: 'connecting' });
  let connector: SyncConnector | undefined;
  const opening: Promise<SyncConnector> = job.whenSchema(SCHEMA_WAIT_MS).then(async (schema) => {
    connector = createConnector(schema);
    await connector.open();
    return connector;
  });
  opening.then(
    (c) => node.status({ fill: 'green', shape: 'dot', text: c.describe().slice(0, 32) }),
    (err) => {
      node.status({ fill: 'red', shape: 'ring', text: 'not ready' });
      node.error(`${job.id}: destination not ready: ${errorText(err)}`);
    },
  );
  // Keep an unhandled rejection from reaching the process: the error is reported above.
  opening.catch(() => undefined);

  const toDeadLetter = (msg: NodeMessage, envelope: ExsEnvelope, error: string): Array<NodeMessage | null> => [
    null,
    { ...msg, exs: { ...envelope, outcome: 'dead_letter', error } },
  ];

  // Events of one record are written in the order they arrived; different records in parallel.
  const writesInFlight = new Map<string, Promise<void>>();
  const inKeyOrder = (key: unknown, write: () => Promise<void>): void => {
    const id = JSON.stringify(key);
    const previous = writesInFlight.get(id) ?? Promise.resolve();
    const next = previous.then(write);
    writesInFlight.set(id, next);
    void next.finally(() => {
      if (writesInFlight.get(id) === next) writesInFlight.delete(id);
    });
  };

  node.on('input', (msg, send, done) => {
    const envelope = msg.exs as ExsEnvelope;
    if (!envelope?.record) {
      send(toDeadLetter(msg, envelope, 'message has no mapped record: wire an exs-mapper before the connector'));
      return done();
    }
    inKeyOrder(envelope.record.keyValue, () => opening
      .then(
        (c) => c.apply(envelope.record!, envelope.conflict),
        (err) => {
          throw new Error(`destination not ready: ${errorText(err)}`);
        },
      )
      .then(
        (result) => {
          node.status({ fill: 'green', shape: 'dot', text: `${result.outcome} ${String(envelope.key)}`.slice(0, 32) });
          send([{ ...msg, exs: { ...envelope, result, outcome: result.outcome } }, null]);
          done();
        },
        (err) => {
          node.status({ fill: 'red', shape: 'ring', text: 'write failed' });
          send(toDeadLetter(msg, envelope, errorText(err)));
          done();
        },
      ));
  });

  node.on('close', (_removed, done) => {
    opening
      .catch(() => undefined)
      .then(() => connector?.close())
      .catch((err) => node.error(errorText(err)))
      .finally(done);
  });
}
