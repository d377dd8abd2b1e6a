// Everything a connector node does that does not depend on the destination: wait for the
// mapper's schema, open the connector at deploy (a missing table is reported there, not per
// event) and again after an outage, keep each record's writes in arrival order, tell the job
// whether a failure is transient (pause and retry) or about the data (retry, then dead
// letter), and drain writes in flight before closing on redeploy. A developer adds a
// destination by implementing SyncConnector and calling this.
import type { DestinationSchema, JobSettings } from '../core/sync-job';
import type { ExsEnvelope, SyncConnector } from '../core/types';
import { jobOf } from './job-node';
import type { JobNodeConfig, NodeMessage, RED, RedNode } from './red';

/** How long a connector waits at deploy for its job's mapper to declare the columns. */
const SCHEMA_WAIT_MS = 5_000;
/** Node-RED gives a closing node 15 s; writes in flight get most of it. */
const DRAIN_MS = 10_000;

export type ConnectorFactory = (schema: DestinationSchema | undefined, job: JobSettings) => SyncConnector;

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Errors a connector marks transient (a DbError with `transient`, a lost connection). */
function isTransient(err: unknown): boolean {
  return Boolean((err as { transient?: boolean } | undefined)?.transient);
}

class DestinationNotReady extends Error {
  readonly transient = true;
}

export function runConnectorNode(red: RED, node: RedNode, config: JobNodeConfig, createConnector: ConnectorFactory): void {
  const job = jobOf(red, node, config.job);
  if (!job) return;
  let closing = false;
  let opening: Promise<SyncConnector> | undefined;
  /** A failed open is tried again at most this often, however many events arrive meanwhile. */
  const REOPEN_AFTER_MS = 1000;
  let lastFailure: { at: number; error: unknown } | undefined;
  let detachConflicts: (() => void) | undefined;

  /** The open connector; a failed open is forgotten so the next write tries again. */
  const connected = (): Promise<SyncConnector> => {
    if (!opening && lastFailure && Date.now() - lastFailure.at < REOPEN_AFTER_MS) return Promise.reject(lastFailure.error);
    if (!opening) {
      node.status({ fill: 'yellow', shape: 'ring', text: 'connecting' });
      const attempt = job.whenSchema(SCHEMA_WAIT_MS).then(async (schema) => {
        const connector = createConnector(schema, job.settings);
        try {
          await connector.open();
        } catch (err) {
          await connector.close().catch(() => undefined);
          throw err;
        }
        if (connector.listConflicts && connector.resolveParked) {
          const { listConflicts, resolveParked } = connector;
          detachConflicts = job.attachConflictDesk({
            list: () => listConflicts.call(connector),
            resolve: (key, take) => resolveParked.call(connector, key, take),
          });
        }
        return connector;
      });
      opening = attempt;
      attempt.then(
        (c) => node.status({ fill: 'green', shape: 'dot', text: c.describe().slice(0, 32) }),
        (err) => {
          if (opening === attempt) opening = undefined;
          lastFailure = { at: Date.now(), error: err };
          node.status({ fill: 'red', shape: 'ring', text: 'not ready' });
          node.error(`${job.id}: destination not ready: ${errorText(err)}`);
        },
      );
    }
    return opening;
  };
  connected().catch(() => undefined);

  // Events of one record are written in the order they arrived; different records in parallel.
  // Keys are compared as lower-case text, as a case-insensitive collation would.
  const writesInFlight = new Map<string, Promise<void>>();
  const inRecordOrder = (key: unknown, write: () => Promise<void>): void => {
    const id = String(key).toLowerCase();
    const next = (writesInFlight.get(id) ?? Promise.resolve()).then(write);
    writesInFlight.set(id, next);
    void next.finally(() => {
      if (writesInFlight.get(id) === next) writesInFlight.delete(id);
    });
  };

  const deadLetter = (msg: NodeMessage, envelope: ExsEnvelope, error: string): Array<NodeMessage | null> => [
    null,
    { ...msg, exs: { ...envelope, outcome: 'dead_letter', error } },
  ];

  node.on('input', (msg, send, done) => {
    const envelope = msg.exs as ExsEnvelope;
    if (!envelope?.record) {
      send(deadLetter(msg, envelope, 'message has no mapped record: wire an exs-mapper before the connector'));
      return done();
    }
    if (closing) return done(new Error('connector is closing; the event stays in the journal'));
    inRecordOrder(envelope.record.keyValue, async () => {
      try {
        const connector = await connected().catch((err) => {
          throw new DestinationNotReady(`destination not ready: ${errorText(err)}`);
        });
        const result = await connector.apply(envelope.record!, envelope.conflict);
        node.status({ fill: 'green', shape: 'dot', text: `${result.outcome} ${String(envelope.key)}`.slice(0, 32) });
        send([{ ...msg, exs: { ...envelope, result, outcome: result.outcome } }, null]);
      } catch (err) {
        const transient = isTransient(err);
        node.status({ fill: 'red', shape: 'ring', text: transient ? 'destination down' : 'write failed' });
        if (job.fail(envelope.seq, transient ? 'transient' : 'data') === 'dead_letter') {
          send(deadLetter(msg, envelope, errorText(err)));
        }
      }
      done();
    });
  });

  node.on('close', (_removed, done) => {
    closing = true;
    const drained = Promise.allSettled([...writesInFlight.values()]);
    const timeout = new Promise((resolve) => setTimeout(resolve, DRAIN_MS).unref());
    Promise.race([drained, timeout])
      .then(() => opening?.catch(() => undefined))
      .then((connector) => {
        detachConflicts?.();
        return connector?.close();
      })
      .catch((err) => node.error(errorText(err)))
      .finally(done);
  });
}
