// A work queue with client-go's guarantees: a key waiting is not added twice, a key being
// processed is never handed to a second worker (a change meanwhile re-queues it after
// `done`), failures back off per key (exponential, capped) under a global token bucket,
// success forgets the backoff, and delayed adds serve requeue-after.

export interface QueueMetrics {
  add?(): void;
  depth?(n: number): void;
  queueLatency?(seconds: number): void;
  workDuration?(seconds: number): void;
  retry?(): void;
}

export interface WorkQueueOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Global rate limit for retries: tokens per second and bucket size. */
  qps?: number;
  burst?: number;
  metrics?: QueueMetrics;
  now?: () => number;
}

export class WorkQueue {
  readonly #queue: string[] = [];
  readonly #dirty = new Set<string>();
  readonly #processing = new Map<string, number>();
  readonly #addedAt = new Map<string, number>();
  readonly #delayed = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  readonly #failures = new Map<string, number>();
  readonly #waiters: ((key: string | undefined) => void)[] = [];
  readonly #opts: Required<Omit<WorkQueueOptions, "metrics">> & { metrics: QueueMetrics };
  #tokens: number;
  #lastRefill: number;
  #shuttingDown = false;

  constructor(opts: WorkQueueOptions = {}) {
    this.#opts = {
      baseDelayMs: opts.baseDelayMs ?? 5,
      maxDelayMs: opts.maxDelayMs ?? 1000_000,
      qps: opts.qps ?? 10,
      burst: opts.burst ?? 100,
      metrics: opts.metrics ?? {},
      now: opts.now ?? Date.now,
    };
    this.#tokens = this.#opts.burst;
    this.#lastRefill = this.#opts.now();
  }

  get length(): number {
    return this.#queue.length;
  }

  /** Keys being processed now and how long each has run, for the unfinished-work metrics. */
  processingSince(): number[] {
    return [...this.#processing.values()];
  }

  add(key: string): void {
    if (this.#shuttingDown || this.#dirty.has(key)) return;
    this.#opts.metrics.add?.();
    this.#dirty.add(key);
    if (!this.#addedAt.has(key)) this.#addedAt.set(key, this.#opts.now());
    if (this.#processing.has(key)) return; // re-queued by done()
    const waiter = this.#waiters.shift();
    if (waiter) {
      this.#hand(key, waiter);
      return;
    }
    this.#queue.push(key);
    this.#opts.metrics.depth?.(this.#queue.length);
  }

  /** Adds the key after a delay; an earlier pending delayed add of the same key wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.#shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = this.#opts.now() + delayMs;
    const pending = this.#delayed.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.#delayed.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.#delayed.set(key, { at, timer });
  }

  /** Re-adds a failed key after its backoff (or the caller's Retry-After, if longer). */
  addRateLimited(key: string, atLeastMs = 0): void {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    this.#opts.metrics.retry?.();
    const perKey = Math.min(this.#opts.baseDelayMs * 2 ** failures, this.#opts.maxDelayMs);
    this.addAfter(key, Math.max(perKey, this.#globalDelay(), atLeastMs));
  }

  numRequeues(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  forget(key: string): void {
    this.#failures.delete(key);
  }

  /** Resolves with the next key, or undefined once the queue is shut down and drained. */
  get(): Promise<string | undefined> {
    const key = this.#queue.shift();
    if (key !== undefined) {
      this.#opts.metrics.depth?.(this.#queue.length);
      return new Promise((resolve) => this.#hand(key, resolve));
    }
    if (this.#shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  done(key: string): void {
    const started = this.#processing.get(key);
    if (started !== undefined) this.#opts.metrics.workDuration?.((this.#opts.now() - started) / 1000);
    this.#processing.delete(key);
    if (this.#dirty.has(key)) {
      this.#dirty.delete(key); // add() below marks it again
      this.add(key);
    }
  }

  shutDown(): void {
    this.#shuttingDown = true;
    for (const { timer } of this.#delayed.values()) clearTimeout(timer);
    this.#delayed.clear();
    for (const w of this.#waiters.splice(0)) w(undefined);
  }

  #hand(key: string, resolve: (key: string) => void): void {
    const now = this.#opts.now();
    const added = this.#addedAt.get(key);
    if (added !== undefined) this.#opts.metrics.queueLatency?.((now - added) / 1000);
    this.#addedAt.delete(key);
    this.#dirty.delete(key);
    this.#processing.set(key, now);
    resolve(key);
  }

  /** Token bucket: the wait before the next retry token, taking one. */
  #globalDelay(): number {
    const now = this.#opts.now();
    this.#tokens = Math.min(
      this.#opts.burst,
      this.#tokens + ((now - this.#lastRefill) / 1000) * this.#opts.qps,
    );
    this.#lastRefill = now;
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens / this.#opts.qps) * 1000);
  }
}
