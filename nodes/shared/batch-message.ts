// How EXS nodes carry events between them. A message holds one event (msg.payload the event,
// msg.exs its envelope) or, when the sync queue is set to batch, several: msg.payload an array
// of events and msg.exs.batch the array of their envelopes, index for index. Every EXS node
// takes both shapes and answers in the shape it was given, so a flow can mix them (a function
// node that wants one event per message sits behind a queue whose batch is 1).
//
// Why batches: each Node-RED hop costs a message id, hooks, a metric check and a scheduled
// delivery. Five hops per event were a fifth of the runtime's CPU under load; a batch of a
// hundred events pays them once.
import type { ExsEnvelope } from '../core/types';
import type { NodeMessage } from './red';

/** The sync queue's batch size in new nodes and imported flows: hops are paid once per hundred events, and no node holds the event loop long. */
export const DEFAULT_BATCH = 100;
const MAX_BATCH = 1000;

/** The sync queue's batch size from its setting; missing means a flow from before batches: one event per message. */
export function batchSizeOf(value: unknown): number {
  const size = Math.floor(Number(value));
  return Number.isFinite(size) && size >= 1 ? Math.min(size, MAX_BATCH) : 1;
}

/** One event as the nodes handle it: the event (or its raw text) and its envelope. */
export interface EventItem {
  payload: unknown;
  exs: ExsEnvelope;
}

/** `msg.exs` of a batch message. */
export interface BatchEnvelope {
  job: string;
  batch: ExsEnvelope[];
}

export function isBatchMessage(msg: NodeMessage): boolean {
  return Array.isArray((msg.exs as Partial<BatchEnvelope> | undefined)?.batch);
}

/**
 * The events a message carries. A batch message whose payload and envelopes do not line up
 * (a function node changed one and not the other) is refused: pairing them up by guess could
 * write one event's data under another's sequence number.
 */
export function itemsOf(msg: NodeMessage): EventItem[] {
  if (!isBatchMessage(msg)) return [{ payload: msg.payload, exs: msg.exs as ExsEnvelope }];
  const envelopes = (msg.exs as BatchEnvelope).batch;
  const payloads = msg.payload;
  if (!Array.isArray(payloads) || payloads.length !== envelopes.length) {
    throw new Error(`a batch message needs msg.payload as an array of ${envelopes.length} events, one per msg.exs.batch envelope`);
  }
  return envelopes.map((exs, i) => ({ payload: payloads[i], exs }));
}

/** The topic all events share, or undefined when they came on different topics. */
function commonTopic(items: EventItem[]): string | undefined {
  const topic = items[0]?.exs.topic;
  return items.every((item) => item.exs.topic === topic) ? topic : undefined;
}

/** A batch message of these events, keeping the other properties of `template` (the input message). */
export function batchMessage(template: NodeMessage, items: EventItem[]): NodeMessage {
  const job = items[0]?.exs.job ?? (template.exs as Partial<BatchEnvelope> | undefined)?.job ?? '';
  return { ...template, topic: commonTopic(items), payload: items.map((item) => item.payload), exs: { job, batch: items.map((item) => item.exs) } satisfies BatchEnvelope };
}

/** A one-event message, keeping the other properties of `template` (the input message). */
export function eventMessage(template: NodeMessage, item: EventItem): NodeMessage {
  return { ...template, payload: item.payload, exs: item.exs };
}

/**
 * What goes out of one output for these events, in the shape the input had: one batch message,
 * a message per event, or nothing when there are none.
 */
export function messagesFor(template: NodeMessage, asBatch: boolean, items: EventItem[]): NodeMessage | NodeMessage[] | null {
  if (items.length === 0) return null;
  if (asBatch) return batchMessage(template, items);
  return items.length === 1 ? eventMessage(template, items[0]) : items.map((item) => eventMessage(template, item));
}
