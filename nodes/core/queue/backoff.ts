// How long to wait before trying an event again: exponential from the contract's
// backoff_seconds, capped, with "equal jitter" so a fleet of runtimes that failed together
// does not retry together (half the delay is fixed, half random).

export const DEFAULT_MAX_BACKOFF_SECONDS = 300;

/**
 * A destination that is down is asked again at most this far apart, however long the outage: a
 * probe is one event and one connection attempt, and the backlog that built up meanwhile (the
 * mainframe's nightly window) should start draining within seconds of its return, not minutes.
 */
export const MAX_OUTAGE_PROBE_SECONDS = 15;
/** ... and not sooner than this, whatever `backoff_seconds` says (0 would spin). */
export const MIN_OUTAGE_PROBE_MS = 1000;

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

/**
 * The wait before the `outages`-th probe of a destination that is down: `backoff_seconds` doubled
 * per failed probe, with jitter, as data failures wait, but capped at MAX_OUTAGE_PROBE_SECONDS
 * (or a lower `maxBackoffSeconds`).
 */
export function outageProbeDelayMs(
  outages: number,
  backoffSeconds: number,
  maxBackoffSeconds = DEFAULT_MAX_BACKOFF_SECONDS,
  random: () => number = Math.random,
): number {
  const cap = Math.min(maxBackoffSeconds, MAX_OUTAGE_PROBE_SECONDS);
  return Math.max(MIN_OUTAGE_PROBE_MS, retryDelayMs(outages, backoffSeconds, cap, random));
}
