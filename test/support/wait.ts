// Waiting in tests: poll until something holds, with a deadline and a message that says
// what was awaited (and the last error seen), so a timeout reads like the failure it is.

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** A reason to stop waiting at once (a process that died), checked before every try. */
  giveUpIf?: () => string | undefined;
}

/**
 * Polls `check` until it returns a value (not undefined or false) and returns that value.
 * A check that throws counts as "not yet"; its error is in the timeout's message.
 */
export async function eventually<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  options: number | WaitOptions = {},
): Promise<T> {
  const {
    timeoutMs = 30_000,
    intervalMs = 100,
    giveUpIf,
  } = typeof options === "number" ? { timeoutMs: options } : options;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const reason = giveUpIf?.();
    if (reason !== undefined) throw new Error(`gave up waiting for ${what}: ${reason}`);
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${errorText(last)}` : ""}`,
      );
    await sleep(intervalMs);
  }
}

/** `p`, or a rejection with `message` after `ms`. */
export async function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
