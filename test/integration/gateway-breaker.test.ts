// PgBreakerStore shared by two replicas (two pools on one PostgreSQL database; two stores
// on one PGlite): counting failures in a row, opening for a cooldown, a single half-open
// trial, NOTIFY on opening and closing, and the same breaker consulted by PgLimiter.admit.
import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BreakerSettings } from "../../controller/src/gateway/ports.ts";
import { BREAKER_CHANNEL, PgBreakerStore } from "../../controller/src/store/pgBreakerStore.ts";
import { PgLimiter } from "../../controller/src/store/pgLimiter.ts";
import { replicaBackends, type Replicas } from "../support/replicas.ts";

const settings: BreakerSettings = { failureThreshold: 3, cooldownMs: 5000, trialTimeoutMs: 2000 };

describe.each(replicaBackends)("circuit breaker on $name", (backend) => {
  let r: Replicas;
  const clock = { t: 1_800_000_000_000 };
  let a: PgBreakerStore;
  let b: PgBreakerStore;

  beforeAll(async () => {
    r = await backend.open();
    a = new PgBreakerStore(r.a.db, { now: () => clock.t });
    b = new PgBreakerStore(r.b.db, { now: () => clock.t });
  });
  afterAll(async () => {
    await r?.close();
  });

  async function open(id: string): Promise<void> {
    for (let i = 1; i <= settings.failureThreshold; i++) {
      expect(await (i % 2 ? a : b).failure(id, settings)).toBe(i === settings.failureThreshold);
    }
  }

  it("opens after failureThreshold failures in a row counted by both replicas; a success resets the count", async () => {
    const id = randomUUID();
    expect(await a.failure(id, settings)).toBe(false);
    expect(await b.failure(id, settings)).toBe(false);
    await a.success(id);
    expect(await b.peek(id)).toEqual({ phase: "closed", failures: 0 });
    await open(id);
    expect(await a.enter(id, settings)).toEqual({ phase: "open", failures: 3, retryAfterMs: 5000 });
    // A late failure of a call that started before it opened neither re-opens nor extends it.
    clock.t += 1200;
    expect(await a.failure(id, settings)).toBe(false);
    expect(await b.enter(id, settings)).toEqual({ phase: "open", failures: 4, retryAfterMs: 3800 });
  });

  it("half-open lets exactly one trial through across both replicas; a failed trial re-opens it", async () => {
    const id = randomUUID();
    await open(id);
    clock.t += settings.cooldownMs;
    expect(await b.peek(id)).toEqual({ phase: "half-open", failures: 3, trial: false });
    const seen = await Promise.all(
      [...Array(10).keys()].flatMap(() => [a.enter(id, settings), b.enter(id, settings)]),
    );
    expect(seen.filter((s) => s.phase === "half-open")).toEqual([
      { phase: "half-open", failures: 3, trial: true },
    ]);
    expect(seen.filter((s) => s.phase === "open")).toHaveLength(19);
    for (const s of seen.filter((x) => x.phase === "open")) expect(s).toMatchObject({ retryAfterMs: 2000 });

    expect(await b.failure(id, settings)).toBe(true);
    expect(await a.enter(id, settings)).toEqual({ phase: "open", failures: 4, retryAfterMs: 5000 });
    clock.t += settings.cooldownMs;
    expect(await a.enter(id, settings)).toMatchObject({ phase: "half-open", trial: true });
    await b.success(id);
    expect(await b.enter(id, settings)).toEqual({ phase: "closed", failures: 0 });
  });

  it("lets another trial through when the first does not report within trialTimeoutMs", async () => {
    const id = randomUUID();
    await open(id);
    clock.t += settings.cooldownMs;
    expect(await a.enter(id, settings)).toMatchObject({ phase: "half-open", trial: true });
    clock.t += settings.trialTimeoutMs! - 1;
    expect(await b.enter(id, settings)).toMatchObject({ phase: "open", retryAfterMs: 1 });
    clock.t += 1;
    expect(await b.enter(id, settings)).toMatchObject({ phase: "half-open", trial: true });
  });

  it("a success on a closed breaker with no failures writes nothing", async () => {
    const id = randomUUID();
    await b.success(id);
    const version = () =>
      sql<{ xmin: string; ctid: string }>`
        select xmin::text as xmin, ctid::text as ctid from gateway_breakers where instance_id = ${id}`
        .execute(r.a.db)
        .then((x) => x.rows);
    expect(await version()).toEqual([]);
    await a.failure(id, settings);
    await a.success(id);
    const before = await version();
    expect(before).toHaveLength(1);
    for (const s of [a, b, a]) await s.success(id);
    expect(await version()).toEqual(before);
    await b.failure(id, settings);
    expect(await version()).not.toEqual(before);
  });

  it("announces opening and closing on connector_breaker_changed, to the other replica too", async () => {
    const id = randomUUID();
    const heard: string[] = [];
    const unlisten = await r.b.subscribe(
      BREAKER_CHANNEL,
      (p) => heard.push(p),
      () => undefined,
    );
    try {
      await open(id);
      await expect.poll(() => heard).toEqual([id]);
      clock.t += settings.cooldownMs;
      await a.enter(id, settings);
      await a.success(id);
      await expect.poll(() => heard).toEqual([id, id]);
      // Neither a success on the closed breaker nor a failure below the threshold is news.
      await b.success(id);
      await b.failure(id, settings);
      await open(randomUUID());
      await expect.poll(() => heard.length).toBe(3);
      expect(heard.slice(0, 2)).toEqual([id, id]);
    } finally {
      await unlisten();
    }
  });

  it("admit consults the breaker in the same round trip: open refuses, half-open admits one trial", async () => {
    const la = new PgLimiter(r.a, { now: () => clock.t });
    const lb = new PgLimiter(r.b, { now: () => clock.t });
    const id = randomUUID();
    const req = {
      instanceId: id,
      buckets: [{ key: `instance:${id}`, rps: 1000, burst: 10 }],
      maxParallel: 50,
      backpressure: "reject" as const,
      queueDepth: 0,
      maxWaitMs: 1000,
      leaseMs: 60_000,
      breaker: settings,
    };
    expect(await la.admit(req)).toMatchObject({ admitted: true, breaker: { phase: "closed", failures: 0 } });
    await open(id);
    expect(await lb.admit(req)).toEqual({ admitted: false, reason: "circuit_open", retryAfterMs: 5000 });

    clock.t += settings.cooldownMs;
    const seen = await Promise.all([...Array(8).keys()].flatMap(() => [la.admit(req), lb.admit(req)]));
    const admitted = seen.filter((s) => s.admitted);
    expect(admitted).toHaveLength(1);
    expect(admitted[0]).toMatchObject({ breaker: { phase: "half-open", trial: true } });
    for (const s of seen.filter((x) => !x.admitted)) {
      expect(s).toEqual({ admitted: false, reason: "circuit_open", retryAfterMs: 2000 });
    }
    // The refused calls took no token: of a burst of 10, only the trial's is gone.
    await b.success(id);
    let left = 0;
    while ((await la.admit(req)).admitted) left++;
    expect(left).toBe(9);
    await Promise.all([la.close(), lb.close()]);
  });
});
