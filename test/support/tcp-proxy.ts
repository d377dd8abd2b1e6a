// A TCP proxy inside the test process, in front of a real server (PostgreSQL, say): cut() is a
// database outage as the client sees it - every open connection is reset and new ones are
// dropped on accept - without touching the server other tests and processes share.
import * as net from 'node:net';

export interface TcpProxy {
  /** The port clients connect to (127.0.0.1). */
  readonly port: number;
  /** Open client connections. */
  readonly connections: number;
  readonly isCut: boolean;
  /** Connections accepted and relayed so far. */
  readonly accepted: number;
  /** Connections refused while cut. */
  readonly refused: number;
  /** Resets every connection and refuses new ones until restore(). */
  cut(): void;
  restore(): void;
  /** Stops listening and resets everything. */
  close(): Promise<void>;
}

export interface TcpProxyOptions {
  targetHost?: string;
  targetPort: number;
  /** Default: any free port. */
  listenPort?: number;
}

function reset(socket: net.Socket): void {
  // A reset (RST), as from a server that went away, rather than an orderly close.
  if (typeof socket.resetAndDestroy === 'function' && !socket.destroyed && socket.readyState !== 'opening') socket.resetAndDestroy();
  else socket.destroy();
}

export async function startTcpProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  const targetHost = options.targetHost ?? '127.0.0.1';
  const pairs = new Set<[net.Socket, net.Socket]>();
  let cut = false;
  let accepted = 0;
  let refused = 0;

  const server = net.createServer((client) => {
    client.on('error', () => undefined);
    if (cut) {
      refused += 1;
      reset(client);
      return;
    }
    accepted += 1;
    client.setNoDelay(true);
    const upstream = net.connect({ host: targetHost, port: options.targetPort });
    upstream.setNoDelay(true);
    upstream.on('error', () => undefined);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    const drop = () => {
      if (!pairs.delete(pair)) return;
      client.destroy();
      upstream.destroy();
    };
    client.on('close', drop);
    upstream.on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listenPort ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;

  const resetAll = () => {
    for (const pair of [...pairs]) {
      pairs.delete(pair);
      reset(pair[0]);
      reset(pair[1]);
    }
  };

  return {
    port,
    get connections() {
      return pairs.size;
    },
    get isCut() {
      return cut;
    },
    get accepted() {
      return accepted;
    },
    get refused() {
      return refused;
    },
    cut() {
      cut = true;
      resetAll();
    },
    restore() {
      cut = false;
    },
    close() {
      cut = true;
      resetAll();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
