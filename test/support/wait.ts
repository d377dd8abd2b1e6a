// Waiting in tests for something that happens elsewhere (a broker, a runtime, a database):
// look again and again, bounded, and say what was awaited when it does not come.

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface WaitOptions {
  /** Give up after this long. Default 30 s. */
  timeoutMs?: number;
  /** The pause between two looks. Default 100 ms. */
  intervalMs?: number;
  /** Runs (and is awaited) before each look, e.g. to publish a probe event until a flow listens. */
  onTick?: () => unknown;
  /** More to say when the wait times out: the state of what was awaited. */
  detail?: () => string | Promise<string>;
}

/**
 * Calls `probe` (sync or async) until it returns something other than undefined or false, and
 * resolves with that. After `timeoutMs` it rejects with an error that names `what` was awaited.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  { timeoutMs = 30_000, intervalMs = 100, onTick, detail }: WaitOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (onTick) await onTick();
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) {
      const more = detail ? `\n${await detail()}` : '';
      throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${more}`);
    }
    await sleep(intervalMs);
  }
}
