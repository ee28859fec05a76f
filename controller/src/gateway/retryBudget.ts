// The global retry cap (spec §5.2): retries may add at most `ratio` of the calls made
// (Finagle's RetryBudget), plus `minPerSecond` so that a quiet replica can still retry.
// Per replica, in memory: a budget guards this process's load on providers.
export class RetryBudget {
  readonly #ratio: number;
  readonly #minPerSecond: number;
  readonly #max: number;
  readonly #now: () => number;
  #tokens: number;
  #refilledAt: number;

  constructor(opts: { ratio?: number; minPerSecond?: number; now?: () => number } = {}) {
    this.#ratio = opts.ratio ?? 0.2;
    this.#minPerSecond = opts.minPerSecond ?? 10;
    this.#max = Math.max(10, this.#minPerSecond * 10);
    this.#now = opts.now ?? Date.now;
    this.#tokens = this.#minPerSecond;
    this.#refilledAt = this.#now();
  }

  /** A call was made: it earns `ratio` of a retry. */
  deposit(): void {
    this.#refill();
    this.#tokens = Math.min(this.#max, this.#tokens + this.#ratio);
  }

  /** Takes one retry from the budget; false when it is spent. */
  withdraw(): boolean {
    this.#refill();
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  #refill(): void {
    const now = this.#now();
    this.#tokens = Math.min(this.#max, this.#tokens + ((now - this.#refilledAt) / 1000) * this.#minPerSecond);
    this.#refilledAt = now;
  }
}
