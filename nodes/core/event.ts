// Turning what arrives on the wire into an HMS event, or into a reason it cannot be one.
// Every rejection keeps the raw text so the dead letter holds the original.

export const DEFAULT_MAX_EVENT_BYTES = 256 * 1024;

export type ParsedEvent =
  | { ok: true; event: Record<string, unknown> }
  | { ok: false; error: string; raw: string };

export function parseEvent(payload: unknown, maxBytes = DEFAULT_MAX_EVENT_BYTES): ParsedEvent {
  if (payload !== null && typeof payload === 'object' && !Buffer.isBuffer(payload) && !Array.isArray(payload)) {
    return { ok: true, event: payload as Record<string, unknown> };
  }
  const text = Buffer.isBuffer(payload) ? payload.toString('utf8') : typeof payload === 'string' ? payload : JSON.stringify(payload) ?? String(payload);
  const size = Buffer.byteLength(text, 'utf8');
  // Keep only a prefix of an oversize event: the reason matters more than a megabyte of it.
  if (size > maxBytes) return { ok: false, error: `event is ${size} bytes, over the ${maxBytes}-byte limit`, raw: text.slice(0, 1024) };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `event is not JSON: ${(err as Error).message}`, raw: text };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
    return { ok: false, error: `event must be a JSON object, got ${kind}`, raw: text };
  }
  return { ok: true, event: value as Record<string, unknown> };
}
