// Time: a clock that tests can hold still, a sleep that an AbortSignal ends, and jitter.
// Every wait with backoff in the controller goes through these.

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** `ms` scaled by a random factor in [1 - fraction, 1 + fraction]. */
export function jitter(ms: number, fraction: number, random: () => number = Math.random): number {
  return ms * (1 + fraction * (2 * random() - 1));
}
