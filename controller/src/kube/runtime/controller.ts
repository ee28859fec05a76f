// A controller in controller-runtime's sense: keys go into a work queue (from watches, the
// periodic resync and requeues), N workers take them (one worker per key at a time), and
// each run of the reconcile function ends in one of three ways: a result (forget the key's
// backoff; requeue after a delay if asked), a TerminalError (forget; only a change to the
// object brings the key back), or any other error (retry with the key's backoff, or the
// error's Retry-After when longer). The queue owns retries; the reconcile function never
// sleeps and never holds retry state.
import { randomUUID } from "node:crypto";
import { jitter } from "../../api/clock.ts";
import { classify, TerminalError } from "../../api/errors.ts";
import type { Logger } from "../../api/logger.ts";
import { aborted, type Runnable } from "../../api/runnable.ts";
import { WorkQueue, type QueueMetrics } from "./workqueue.ts";

export interface ReconcileContext {
  key: string;
  reconcileId: string;
  log: Logger;
  /** Aborted at the reconcile's deadline or when the controller stops. */
  signal: AbortSignal;
  /** When `signal` fires (ms since the epoch), so a reconciler can keep time back for status. */
  deadline: number;
}

export interface ReconcileResult {
  requeueAfterMs?: number;
}

/** Reconciles the object cached under a key; `undefined` when it is gone from the cache. */
export type ReconcileFn<T> = (obj: T | undefined, ctx: ReconcileContext) => Promise<ReconcileResult>;

export type ReconcileOutcome = "success" | "requeue_after" | "error" | "terminal";

export interface ControllerMetrics {
  queue?: QueueMetrics;
  finished?(outcome: ReconcileOutcome, seconds: number): void;
}

/** A source of objects: the informer cache, read by key. */
export interface ObjectCache<T> {
  get(key: string): T | undefined;
  /** Every key, for the periodic resync. */
  keys(): Iterable<string>;
}

export interface ControllerOptions<T> {
  name: string;
  cache: ObjectCache<T>;
  reconcile: ReconcileFn<T>;
  log: Logger & { child(bindings: object): Logger };
  concurrency: number;
  /** Re-enqueue every key this often, ±10 % (0: never). */
  resyncMs?: number;
  /** The deadline of one reconcile (default 90 s). */
  reconcileTimeoutMs?: number;
  /** Whether only the leader runs it (default true). */
  needLeaderElection?: boolean;
  metrics?: ControllerMetrics;
  /** Copies the cached object before the reconcile may change it (default structuredClone). */
  copy?: (obj: T) => T;
}

export class Controller<T> implements Runnable {
  readonly name: string;
  readonly needLeaderElection: boolean;
  readonly queue: WorkQueue;
  readonly #o: ControllerOptions<T>;
  #active = 0;

  constructor(opts: ControllerOptions<T>) {
    this.#o = opts;
    this.name = opts.name;
    this.needLeaderElection = opts.needLeaderElection ?? true;
    this.queue = new WorkQueue(opts.metrics?.queue ? { metrics: opts.metrics.queue } : {});
  }

  /** Workers busy right now. */
  get activeWorkers(): number {
    return this.#active;
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  resyncAll(): void {
    for (const key of this.#o.cache.keys()) this.queue.add(key);
  }

  /** Runs the workers until `signal` aborts, then lets running reconciles finish. */
  async start(signal: AbortSignal): Promise<void> {
    this.resyncAll();
    const resync = this.#scheduleResync();
    const workers = Array.from({ length: this.#o.concurrency }, () => this.#work(signal));
    await aborted(signal);
    clearTimeout(resync.timer);
    this.queue.shutDown();
    await Promise.all(workers);
  }

  #scheduleResync(): { timer: NodeJS.Timeout | undefined } {
    const handle: { timer: NodeJS.Timeout | undefined } = { timer: undefined };
    const every = this.#o.resyncMs ?? 0;
    if (every <= 0) return handle;
    const next = () => {
      handle.timer = setTimeout(
        () => {
          this.resyncAll();
          next();
        },
        jitter(every, 0.1),
      );
      handle.timer.unref();
    };
    next();
    return handle;
  }

  async #work(stopping: AbortSignal): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      this.#active++;
      try {
        await this.#process(key, stopping);
      } finally {
        this.#active--;
        this.queue.done(key);
      }
    }
  }

  async #process(key: string, stopping: AbortSignal): Promise<void> {
    const cached = this.#o.cache.get(key);
    const reconcileId = randomUUID();
    const log = this.#o.log.child({ controller: this.name, key, reconcileId });
    const timeoutMs = this.#o.reconcileTimeoutMs ?? 90_000;
    const started = performance.now();
    const ctx: ReconcileContext = {
      key,
      reconcileId,
      log,
      signal: AbortSignal.any([stopping, AbortSignal.timeout(timeoutMs)]),
      deadline: Date.now() + timeoutMs,
    };
    const finished = (outcome: ReconcileOutcome) =>
      this.#o.metrics?.finished?.(outcome, (performance.now() - started) / 1000);
    try {
      const copy = this.#o.copy ?? structuredClone;
      const result = await this.#o.reconcile(cached === undefined ? undefined : copy(cached), ctx);
      this.queue.forget(key);
      if (result.requeueAfterMs !== undefined) this.queue.addAfter(key, result.requeueAfterMs);
      finished(result.requeueAfterMs !== undefined ? "requeue_after" : "success");
    } catch (err) {
      if (err instanceof TerminalError) {
        this.queue.forget(key);
        log.info(
          { errorClass: err.error.errorClass, reason: err.error.reason },
          "reconcile failed; not retried",
        );
        finished("terminal");
        return;
      }
      const e = classify(err);
      log.warn(
        { errorClass: e.errorClass, reason: e.reason, err: e.message, retries: this.queue.numRequeues(key) },
        "reconcile will be retried",
      );
      this.queue.addRateLimited(key, e.retryAfterMs ?? 0);
      finished("error");
    }
  }
}
