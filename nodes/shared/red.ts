// The slice of Node-RED's runtime API that EXS nodes use, typed here so the nodes compile
// without depending on Node-RED's internal packages (which differ between 4.x and 5.x).

export interface NodeStatus {
  fill?: 'red' | 'green' | 'yellow' | 'blue' | 'grey';
  shape?: 'ring' | 'dot';
  text?: string;
}

export interface NodeMessage {
  _msgid?: string;
  topic?: string;
  payload?: unknown;
  [key: string]: unknown;
}

/** One message, or per output: a message, several (an array), or none. */
export type SendFunction = (msg: NodeMessage | null | Array<NodeMessage | NodeMessage[] | null>) => void;
export type DoneFunction = (err?: Error) => void;

export interface RedNode {
  id: string;
  type: string;
  /** The flow (tab) the node is on. */
  z?: string;
  /** Inside a subflow instance: the node's id in the subflow (the instance gives it an id of its own). */
  _alias?: string;
  name?: string;
  credentials?: Record<string, string | undefined>;
  on(event: 'input', listener: (msg: NodeMessage, send: SendFunction, done: DoneFunction) => void): void;
  on(event: 'close', listener: (removed: boolean, done: () => void) => void): void;
  status(status: NodeStatus): void;
  send(msg: NodeMessage | null | Array<NodeMessage | NodeMessage[] | null>): void;
  error(err: unknown, msg?: NodeMessage): void;
  warn(message: unknown): void;
  log(message: unknown): void;
}

export interface ExpressLike {
  get(path: string, ...handlers: Array<(req: any, res: any, next: any) => void>): void;
  post(path: string, ...handlers: Array<(req: any, res: any, next: any) => void>): void;
}

/** What `flows:started` tells of a deploy: its type, the nodes it changed, and the flows now deployed (every node's configuration). */
export interface DeployInfo {
  type?: string;
  diff?: Partial<Record<'added' | 'changed' | 'removed' | 'rewired' | 'linked' | 'flowChanged', string[]>>;
  config?: {
    flows?: Array<{
      id: string;
      type?: string;
      z?: string;
      wires?: string[][];
      links?: string[];
      /** A subflow's definition: for each of its outputs, the nodes inside it (and their ports) wired to it. */
      out?: Array<{ wires?: Array<{ id: string; port?: number }> }>;
    }>;
  };
}

export interface RED {
  /** Editor plugins (Node-RED 1.3+). */
  plugins?: { registerPlugin(id: string, definition: object): void };
  /** Pushes a message to every open editor (RED.comms.subscribe there). */
  comms?: { publish(topic: string, data: unknown, retain?: boolean): void };
  /** The HTTP server Node-RED listens on. */
  server?: { address(): { address: string; family: string; port: number } | string | null };
  /** The runtime's events: `flows:starting` and `flows:started` frame each deploy. */
  events?: {
    on(event: string, listener: (info: DeployInfo) => void): void;
    removeListener(event: string, listener: (info: DeployInfo) => void): void;
  };
  nodes: {
    createNode(node: object, config: object): void;
    registerType(type: string, constructor: Function, options?: object): void;
    getNode(id: string): unknown;
  };
  settings: { userDir?: string; [key: string]: unknown };
  httpAdmin: ExpressLike;
  auth: { needsPermission(permission: string): (req: any, res: any, next: any) => void };
  log: { info(m: string): void; warn(m: string): void; error(m: string): void };
  _(id: string, params?: object): string;
}

/** Base config every EXS flow node shares: a reference to its exs-job. */
export interface JobNodeConfig {
  id: string;
  name?: string;
  job: string;
}
