// The Limiter of gateway/ports.ts over PostgreSQL, exact across gateway replicas: one call of
// gateway_admit (migrations/003_gateway_limits.ts) decides the breaker, every rate bucket
// and the slot together; one call of gateway_free gives the slot back. A queued call
// holds no connection while it waits: it sleeps until a NOTIFY or its poll, then asks again.
import { sql } from "kysely";
import type { Kysely } from "kysely";
import type { Admission, AdmissionRequest, BreakerState, Limiter, Slot } from "../gateway/ports.ts";
import type { OpenedDatabase } from "./database.ts";
import type { Database } from "./schema.ts";
import { SlotWaiters } from "./slotWaiters.ts";

export interface PgLimiterOptions {
  /** How often a queued call asks again without being woken (default 250 ms). */
  pollMs?: number;
  /** A queued call's place lapses after this long without asking (its replica died); default 10 × pollMs. */
  waiterTtlMs?: number;
  /** The Retry-After of `busy` and `queue_full`: nobody knows when a slot frees (default 1000 ms). */
  busyRetryAfterMs?: number;
  /** Epoch milliseconds. Default: the database's clock, the one clock all replicas share. */
  now?: () => number;
}

interface AdmitRow {
  outcome: "admitted" | "rate_limited" | "circuit_open" | "busy" | "queue_full" | "queued";
  bucket: string | null;
  retry_after_ms: number | null;
  slot_id: string | null;
  waiter_id: string | null;
  waiter_seq: number | null;
  breaker_failures: number | null;
  trial: boolean | null;
}

export class PgLimiter implements Limiter {
  readonly #db: Kysely<Database>;
  readonly #waiters: SlotWaiters;
  readonly #pollMs: number;
  readonly #waiterTtlMs: number;
  readonly #busyRetryAfterMs: number;
  readonly #now: (() => number) | undefined;

  constructor(database: Pick<OpenedDatabase, "db" | "subscribe">, opts: PgLimiterOptions = {}) {
    this.#db = database.db;
    this.#waiters = new SlotWaiters(database.subscribe);
    this.#pollMs = opts.pollMs ?? 250;
    this.#waiterTtlMs = opts.waiterTtlMs ?? 10 * this.#pollMs;
    this.#busyRetryAfterMs = opts.busyRetryAfterMs ?? 1000;
    this.#now = opts.now;
  }

  async admit(req: AdmissionRequest, signal?: AbortSignal): Promise<Admission> {
    checkRequest(req);
    signal?.throwIfAborted();
    // Listening before the first try, so that a release right after it reaches this replica.
    if (req.backpressure === "queue" && req.maxParallel !== undefined) await this.#waiters.listen();
    const row = await this.#ask(req, undefined, req.maxWaitMs);
    if (row.outcome !== "queued") return this.#answer(req, row);
    return this.#wait(req, row, signal);
  }

  async release(slot: Slot): Promise<void> {
    // The id is the slot's number and its holder's id (see gateway_admit).
    const [n, holder] = slot.id.split(":");
    await sql`
      select gateway_free(${slot.instanceId}, ${Number(n)}::integer, ${holder}::uuid, null,
                          ${this.#now?.() ?? null}::numeric)`.execute(this.#db);
  }

  /** Stops listening; calls still queued go on polling until their maxWaitMs. */
  close(): Promise<void> {
    return this.#waiters.close();
  }

  async #wait(req: AdmissionRequest, queued: AdmitRow, signal?: AbortSignal): Promise<Admission> {
    const deadline = Date.now() + req.maxWaitMs;
    const me = this.#waiters.join(req.instanceId);
    let waiter = queued.waiter_id!;
    me.seq = queued.waiter_seq!;
    let admitted = false;
    try {
      for (;;) {
        const left = deadline - Date.now();
        if (left <= 0) {
          await this.#leave(req.instanceId, waiter);
          return { admitted: false, reason: "busy", retryAfterMs: this.#busyRetryAfterMs };
        }
        await me.sleep(Math.min(this.#pollMs, left), signal);
        if (signal?.aborted) {
          await this.#leave(req.instanceId, waiter);
          throw signal.reason;
        }
        const row = await this.#ask(req, waiter, left);
        if (row.outcome === "queued") {
          waiter = row.waiter_id!;
          me.seq = row.waiter_seq!;
          continue;
        }
        const answer = this.#answer(req, row);
        admitted = answer.admitted;
        if (answer.admitted && signal?.aborted) {
          if (answer.slot) await this.release(answer.slot);
          throw signal.reason;
        }
        return answer;
      }
    } finally {
      me.leave();
      // Another slot may be free too: the next local waiter asks rather than wait for a poll.
      if (admitted) this.#waiters.wake(req.instanceId);
    }
  }

  async #leave(instanceId: string, waiter: string): Promise<void> {
    // A place not given back lapses after waiterTtlMs; failing to leave is no reason to fail.
    await sql`select gateway_free(${instanceId}, null, null, ${waiter}::uuid, ${this.#now?.() ?? null}::numeric)`
      .execute(this.#db)
      .catch(() => undefined);
  }

  async #ask(req: AdmissionRequest, waiter: string | undefined, waitMs: number): Promise<AdmitRow> {
    const buckets = JSON.stringify(req.buckets.map(({ key, rps, burst }) => ({ key, rps, burst })));
    const trialMs = req.breaker ? (req.breaker.trialTimeoutMs ?? req.breaker.cooldownMs) : null;
    const { rows } = await sql<AdmitRow>`
      select * from gateway_admit(
        ${req.instanceId}, ${buckets}::jsonb, ${req.maxParallel ?? null}::integer,
        ${req.backpressure === "queue"}::boolean, ${req.queueDepth}::integer,
        ${Math.ceil(waitMs)}::bigint, ${Math.ceil(req.leaseMs)}::bigint, ${waiter ?? null}::uuid,
        ${this.#waiterTtlMs}::bigint, ${trialMs === null ? null : Math.ceil(trialMs)}::bigint,
        ${this.#now?.() ?? null}::numeric)`.execute(this.#db);
    const row = rows[0];
    if (!row) throw new Error("gateway_admit returned no row");
    return row;
  }

  #answer(req: AdmissionRequest, row: AdmitRow): Admission {
    switch (row.outcome) {
      case "admitted": {
        const slot = row.slot_id === null ? undefined : { instanceId: req.instanceId, id: row.slot_id };
        if (!req.breaker) return { admitted: true, slot };
        const failures = row.breaker_failures ?? 0;
        const breaker: BreakerState = row.trial
          ? { phase: "half-open", failures, trial: true }
          : { phase: "closed", failures };
        return { admitted: true, slot, breaker };
      }
      case "rate_limited":
        return {
          admitted: false,
          reason: "rate_limited",
          bucket: row.bucket!,
          retryAfterMs: row.retry_after_ms!,
        };
      case "circuit_open":
        return { admitted: false, reason: "circuit_open", retryAfterMs: row.retry_after_ms! };
      case "busy":
      case "queue_full":
        return { admitted: false, reason: row.outcome, retryAfterMs: this.#busyRetryAfterMs };
      case "queued":
        throw new Error("a queued admission has no answer yet");
    }
  }
}

function checkRequest(req: AdmissionRequest): void {
  const keys = new Set<string>();
  for (const b of req.buckets) {
    if (keys.has(b.key)) throw new RangeError(`rate bucket ${b.key} appears twice`);
    keys.add(b.key);
    if (!(b.rps > 0 && Number.isFinite(b.rps))) throw new RangeError(`rate bucket ${b.key}: rps must be > 0`);
    if (!(Number.isInteger(b.burst) && b.burst >= 1)) {
      throw new RangeError(`rate bucket ${b.key}: burst must be an integer >= 1`);
    }
  }
  if (req.maxParallel !== undefined && !(Number.isInteger(req.maxParallel) && req.maxParallel >= 1)) {
    throw new RangeError("maxParallel must be an integer >= 1");
  }
  if (!(req.leaseMs > 0) || !(req.maxWaitMs >= 0) || !(req.queueDepth >= 0)) {
    throw new RangeError("leaseMs must be > 0, maxWaitMs and queueDepth >= 0");
  }
}
