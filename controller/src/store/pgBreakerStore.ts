// The BreakerStore of gateway/ports.ts over PostgreSQL: one breaker per instance, shared by
// the controller and every gateway replica (the gateway_breaker_* functions of
// migrations/003_gateway_limits.ts). Opening and closing NOTIFY BREAKER_CHANNEL with the
// instance id, so the controller can show CircuitOpen at once.
import { sql } from "kysely";
import type { Kysely } from "kysely";
import type { BreakerSettings, BreakerState, BreakerStore } from "../gateway/ports.ts";
import type { Database } from "./schema.ts";

export { BREAKER_CHANNEL } from "./migrations/003_gateway_limits.ts";

export interface PgBreakerStoreOptions {
  /** Epoch milliseconds. Default: the database's clock, the one clock all replicas share. */
  now?: () => number;
}

interface StateRow {
  phase: BreakerState["phase"];
  failures: number;
  retry_after_ms: number | null;
  trial: boolean;
}

export class PgBreakerStore implements BreakerStore {
  readonly #db: Kysely<Database>;
  readonly #now: (() => number) | undefined;

  constructor(db: Kysely<Database>, opts: PgBreakerStoreOptions = {}) {
    this.#db = db;
    this.#now = opts.now;
  }

  async enter(instanceId: string, settings: BreakerSettings): Promise<BreakerState> {
    const trialMs = Math.ceil(settings.trialTimeoutMs ?? settings.cooldownMs);
    const { rows } = await sql<StateRow>`
      select * from gateway_breaker_enter(${instanceId}, ${trialMs}::bigint, ${this.#clock()}::numeric)`.execute(
      this.#db,
    );
    return toState(rows[0]);
  }

  async peek(instanceId: string): Promise<BreakerState> {
    const { rows } = await sql<StateRow>`
      select case when b.opened_until is null then 'closed'
                  when b.opened_until > t.now then 'open'
                  else 'half-open' end as phase,
             b.failures,
             ceil(extract(epoch from b.opened_until - t.now) * 1000)::bigint as retry_after_ms,
             false as trial
        from gateway_breakers b,
             (select gateway_ts(gateway_now_ms(${this.#clock()}::numeric)) as now) t
       where b.instance_id = ${instanceId}`.execute(this.#db);
    return toState(rows[0]);
  }

  async success(instanceId: string): Promise<void> {
    await sql`select gateway_breaker_success(${instanceId})`.execute(this.#db);
  }

  async failure(instanceId: string, settings: BreakerSettings): Promise<boolean> {
    const { rows } = await sql<{ opened: boolean }>`
      select gateway_breaker_failure(${instanceId}, ${settings.failureThreshold}::integer,
        ${Math.ceil(settings.cooldownMs)}::bigint, ${this.#clock()}::numeric) as opened`.execute(this.#db);
    return rows[0]?.opened === true;
  }

  #clock(): number | null {
    return this.#now?.() ?? null;
  }
}

function toState(row: StateRow | undefined): BreakerState {
  if (!row || row.phase === "closed") return { phase: "closed", failures: row?.failures ?? 0 };
  if (row.phase === "open")
    return { phase: "open", failures: row.failures, retryAfterMs: row.retry_after_ms ?? 0 };
  return { phase: "half-open", failures: row.failures, trial: row.trial };
}
