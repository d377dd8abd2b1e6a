// How long to wait before trying an event again: exponential from the contract's
// backoff_seconds, capped, with "equal jitter" so a fleet of runtimes that failed together
// does not retry together (half the delay is fixed, half random).

export const DEFAULT_MAX_BACKOFF_SECONDS = 300;

export function retryDelayMs(
  attempt: number,
  backoffSeconds: number,
  maxBackoffSeconds = DEFAULT_MAX_BACKOFF_SECONDS,
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, attempt - 1);
  const ceiling = Math.min(maxBackoffSeconds, backoffSeconds * 2 ** Math.min(exponent, 30)) * 1000;
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}
