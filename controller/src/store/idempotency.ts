// Idempotency records of the gateway (spec §2.3), shared by every replica: one row per
// (namespace, connector, operation, key) holding the hash of the request's canonical input
// and, once the call finished, what to answer its duplicates with.
//
// A claim is held under a lease: a replica that dies mid-call leaves its claim in progress,
// and once the lease passes the same request may claim the key again, instead of waiting out
// the whole TTL. A lease should outlast the operation's timeout (claim's `leaseMs`).
import { createHash } from "node:crypto";
import { sql } from "kysely";
import type { JsonValue } from "../api/types.ts";
import type {
  IdempotencyClaim,
  IdempotencyScope,
  IdempotencyStore,
  StoredOutcome,
} from "../gateway/ports.ts";
import type { OpenedDatabase } from "./database.ts";
import { listen, type Listener } from "./listener.ts";

/** Completions and releases are announced here; the payload is scopeDigest(scope). */
export const IDEMPOTENCY_CHANNEL = "gateway_idempotency_done";

export interface PgIdempotencyStoreOptions {
  /** The default lease of an in-progress claim. */
  leaseMs?: number;
  /** How often wait() reads the record: the fallback for a NOTIFY it missed. */
  pollMs?: number;
}

interface ClaimRow {
  kind: "new" | "replay" | "in_progress" | "conflict";
  status: number | null;
  body: JsonValue | null;
  job_id: string | null;
}

interface RecordRow {
  state: "in_progress" | "completed";
  status: number | null;
  body: JsonValue | null;
  job_id: string | null;
  /** An in-progress claim whose lease (or a record whose TTL) has passed. */
  stale: boolean;
}

export class PgIdempotencyStore implements IdempotencyStore {
  readonly #database: OpenedDatabase;
  readonly #leaseMs: number;
  readonly #pollMs: number;
  /** wait()ers by scope digest, woken by the NOTIFY of a completion or release. */
  readonly #waiters = new Map<string, Set<() => void>>();
  #listener: Promise<Listener> | undefined;

  constructor(database: OpenedDatabase, opts: PgIdempotencyStoreOptions = {}) {
    this.#database = database;
    this.#leaseMs = opts.leaseMs ?? 120_000;
    this.#pollMs = opts.pollMs ?? 500;
  }

  async claim(
    scope: IdempotencyScope,
    requestHash: string,
    ttlMs: number,
    leaseMs = this.#leaseMs,
  ): Promise<IdempotencyClaim> {
    // One statement. A live record is answered from `existing` without writing anything (a
    // duplicate's replay takes no row lock and commits nothing). Otherwise the INSERT claims
    // the key, or takes over a record whose TTL or lease passed; its ON CONFLICT re-checks
    // that on the row as it is now. A claim that loses a race to a concurrent one sees
    // neither its own row nor (in its snapshot) the winner's, returns nothing, and runs again.
    for (let tries = 0; ; tries++) {
      const r = await sql<ClaimRow>`
        with existing as (
          select request_hash, state, status, body, job_id,
                 expires_at <= now()
                   or (state = 'in_progress' and lease_until <= now() and request_hash = ${requestHash})
                   as reclaimable
            from gateway_idempotency where ${isScope(scope)}
        ),
        claimed as (
          insert into gateway_idempotency as g
            (namespace, name, operation, key, request_hash, state, lease_until, expires_at)
          select ${scope.namespace}::text, ${scope.name}::text, ${scope.operation}::text, ${scope.key}::text,
                 ${requestHash}::text, 'in_progress', ${after(leaseMs)}, ${after(ttlMs)}
           where not exists (select 1 from existing where not reclaimable)
          on conflict (namespace, name, operation, key) do update
            set request_hash = excluded.request_hash, state = 'in_progress', status = null,
                body = null, job_id = null, lease_until = excluded.lease_until,
                expires_at = excluded.expires_at, created_at = now(), completed_at = null
            where g.expires_at <= now()
               or (g.state = 'in_progress' and g.lease_until <= now()
                   and g.request_hash = excluded.request_hash)
          returning 1
        )
        select 'new' as kind, null::integer as status, null::jsonb as body, null::text as job_id
          from claimed
        union all
        select case when request_hash <> ${requestHash} then 'conflict'
                    when state = 'completed' then 'replay'
                    else 'in_progress' end,
               status, body, job_id
          from existing
         where not reclaimable and not exists (select 1 from claimed)`.execute(this.#database.db);
      const row = r.rows[0];
      if (row !== undefined) return toClaim(row);
      if (tries >= 5) throw new Error("idempotency claim kept racing a concurrent claim");
    }
  }

  async complete(scope: IdempotencyScope, outcome: StoredOutcome): Promise<void> {
    await sql`
      with done as (
        update gateway_idempotency
           set state = 'completed', status = ${outcome.status}, body = ${JSON.stringify(outcome.body)}::jsonb,
               job_id = ${outcome.jobId ?? null}, lease_until = null, completed_at = now()
         where ${isScope(scope)} and state = 'in_progress'
        returning 1
      )
      select pg_notify(${IDEMPOTENCY_CHANNEL}, ${scopeDigest(scope)}) from done`.execute(this.#database.db);
  }

  async release(scope: IdempotencyScope): Promise<void> {
    await sql`
      with gone as (
        delete from gateway_idempotency where ${isScope(scope)} and state = 'in_progress' returning 1
      )
      select pg_notify(${IDEMPOTENCY_CHANNEL}, ${scopeDigest(scope)}) from gone`.execute(this.#database.db);
  }

  /**
   * Resolves with the outcome once the claim completes; with undefined when `waitMs` passes,
   * the signal aborts, or the claim goes away (released, or its lease or TTL passed: the
   * caller may claim the key itself).
   */
  async wait(
    scope: IdempotencyScope,
    waitMs: number,
    signal?: AbortSignal,
  ): Promise<StoredOutcome | undefined> {
    const digest = scopeDigest(scope);
    await this.#listen().catch(() => undefined); // without it, the poll alone
    return new Promise((resolve, reject) => {
      let settled = false;
      let reading = false;
      const finish = (value: StoredOutcome | undefined, err?: unknown) => {
        if (settled) return;
        settled = true;
        clearInterval(poll);
        clearTimeout(deadline);
        signal?.removeEventListener("abort", onAbort);
        const set = this.#waiters.get(digest);
        set?.delete(check);
        if (set?.size === 0) this.#waiters.delete(digest);
        if (err !== undefined) reject(err);
        else resolve(value);
      };
      const check = () => {
        if (settled || reading) return;
        reading = true;
        this.#read(scope).then(
          (row) => {
            reading = false;
            if (row === undefined || row.stale) finish(undefined);
            else if (row.state === "completed") finish(outcomeOf(row));
          },
          (err: unknown) => finish(undefined, err),
        );
      };
      const onAbort = () => finish(undefined);
      const poll = setInterval(check, this.#pollMs);
      const deadline = setTimeout(() => finish(undefined), waitMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      if (signal?.aborted) return finish(undefined);
      let set = this.#waiters.get(digest);
      if (set === undefined) this.#waiters.set(digest, (set = new Set()));
      set.add(check);
      check();
    });
  }

  async #read(scope: IdempotencyScope): Promise<RecordRow | undefined> {
    const r = await sql<RecordRow>`
      select state, status, body, job_id,
             expires_at <= now() or (state = 'in_progress' and lease_until <= now()) as stale
        from gateway_idempotency where ${isScope(scope)}`.execute(this.#database.db);
    return r.rows[0];
  }

  #listen(): Promise<Listener> {
    this.#listener ??= listen(this.#database, IDEMPOTENCY_CHANNEL, (digest) => {
      for (const check of this.#waiters.get(digest) ?? []) check();
    }).catch((err: unknown) => {
      this.#listener = undefined;
      throw err;
    });
    return this.#listener;
  }

  /** Deletes up to `limit` records whose TTL has passed; returns how many. */
  async sweep(limit = 1000): Promise<number> {
    const r = await sql<{ n: number }>`
      with gone as (
        delete from gateway_idempotency
         where (namespace, name, operation, key) in (
           select namespace, name, operation, key from gateway_idempotency
            where expires_at <= now() limit ${limit})
        returning 1
      )
      select count(*)::integer as n from gone`.execute(this.#database.db);
    return r.rows[0]?.n ?? 0;
  }

  /** Stops listening (waits in progress fall back to their poll). */
  async close(): Promise<void> {
    const listener = this.#listener;
    this.#listener = undefined;
    await (await listener?.catch(() => undefined))?.close();
  }
}

function after(ms: number) {
  return sql`now() + ${ms}::double precision * interval '1 millisecond'`;
}

function isScope(s: IdempotencyScope) {
  return sql`(namespace, name, operation, key) = (${s.namespace}, ${s.name}, ${s.operation}, ${s.key})`;
}

/** Short enough for a NOTIFY payload whatever the key's length. */
function scopeDigest(s: IdempotencyScope): string {
  return createHash("sha256")
    .update(JSON.stringify([s.namespace, s.name, s.operation, s.key]))
    .digest("hex")
    .slice(0, 32);
}

function toClaim(row: ClaimRow): IdempotencyClaim {
  if (row.kind === "replay") return { kind: "replay", outcome: outcomeOf(row) };
  return { kind: row.kind };
}

function outcomeOf(row: {
  status: number | null;
  body: JsonValue | null;
  job_id: string | null;
}): StoredOutcome {
  const outcome: StoredOutcome = { status: row.status ?? 0, body: row.body };
  if (row.job_id !== null) outcome.jobId = row.job_id;
  return outcome;
}
