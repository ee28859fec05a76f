// PgLimiter as two gateway replicas see it (two pools on one PostgreSQL database; two
// limiters on one PGlite): exact rates, all-or-nothing buckets, Retry-After, slots held as
// leases, and the queue shared across replicas.
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Admission, AdmissionRequest, RateBucket, Slot } from "../../controller/src/gateway/ports.ts";
import { PgLimiter, type PgLimiterOptions } from "../../controller/src/store/pgLimiter.ts";
import { replicaBackends, track, type Replicas } from "../support/replicas.ts";
import { countStatements } from "../support/statementCounter.ts";

describe.each(replicaBackends)("gateway limits on $name", (backend) => {
  let r: Replicas;
  const limiters: PgLimiter[] = [];

  beforeAll(async () => {
    r = await backend.open();
  });
  afterAll(async () => {
    for (const l of limiters) await l.close();
    await r?.close();
  });

  /** One limiter on each replica. */
  function pair(opts: PgLimiterOptions = {}): [PgLimiter, PgLimiter] {
    const a = new PgLimiter(r.a, opts);
    const b = new PgLimiter(r.b, opts);
    limiters.push(a, b);
    return [a, b];
  }

  function fakeClock() {
    const clock = { t: 1_800_000_000_000, now: () => clock.t };
    return clock;
  }

  function request(over: Partial<AdmissionRequest> = {}): AdmissionRequest {
    return {
      instanceId: randomUUID(),
      buckets: [],
      backpressure: "reject",
      queueDepth: 0,
      maxWaitMs: 30_000,
      leaseMs: 60_000,
      ...over,
    };
  }

  /** Places in the queue, or slots held. */
  async function count(table: "gateway_waiters" | "gateway_slots", instanceId: string): Promise<number> {
    const held = table === "gateway_slots" ? sql`and holder is not null` : sql``;
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from ${sql.table(table)} where instance_id = ${instanceId} ${held}`.execute(
      r.a.db,
    );
    return rows[0]!.n;
  }

  function slotOf(a: Admission): Slot {
    if (!a.admitted || !a.slot) throw new Error(`expected a slot, got ${JSON.stringify(a)}`);
    return a.slot;
  }

  it.each([
    { rps: 7, burst: 3 },
    // 1000/6 rounds up in numeric: the boundary calls must still be admitted.
    { rps: 6, burst: 2 },
  ])("admits exactly rps × window + burst across both replicas ($rps rps, burst $burst)", async (cfg) => {
    const clock = fakeClock();
    const [a, b] = pair({ now: clock.now });
    const req = request({ buckets: [{ key: `instance:${randomUUID()}`, ...cfg }] });
    const windowMs = 3000;
    const start = clock.t;
    const admitted = { a: 0, b: 0 };
    for (let at = 0; ; at = Math.min(at + 37, windowMs)) {
      clock.t = start + at;
      // Twelve calls at once, more than a step can admit, spread over both replicas.
      const calls = [...Array(6).keys()].flatMap(() => [
        a.admit(req).then((x) => x.admitted && admitted.a++),
        b.admit(req).then((x) => x.admitted && admitted.b++),
      ]);
      await Promise.all(calls);
      expect(admitted.a + admitted.b).toBe(cfg.burst + Math.floor((at * cfg.rps) / 1000));
      if (at === windowMs) break;
    }
    expect(admitted.a + admitted.b).toBe(cfg.burst + (cfg.rps * windowMs) / 1000);
    expect(admitted.a).toBeGreaterThan(0);
    expect(admitted.b).toBeGreaterThan(0);
  });

  it("takes a token from every bucket or from none: a call the project refuses leaves the instance's token", async () => {
    const clock = fakeClock();
    const [a, b] = pair({ now: clock.now });
    const id = randomUUID();
    const instance: RateBucket = { key: `instance:${id}`, rps: 1, burst: 2 };
    const user: RateBucket = { key: `user:${id}`, rps: 1, burst: 5 };
    const project: RateBucket = { key: `project:${id}`, rps: 1, burst: 1 };
    const all = request({ buckets: [project, instance, user] });

    expect(await a.admit(all)).toMatchObject({ admitted: true });
    for (const l of [b, a, b]) {
      expect(await l.admit(all)).toEqual({
        admitted: false,
        reason: "rate_limited",
        bucket: project.key,
        retryAfterMs: 1000,
      });
    }
    // The instance bucket lost one token of its two, the user bucket one of its five.
    const only = (bucket: RateBucket) => request({ instanceId: all.instanceId, buckets: [bucket] });
    expect(await b.admit(only(instance))).toMatchObject({ admitted: true });
    expect(await a.admit(only(instance))).toMatchObject({ reason: "rate_limited", bucket: instance.key });
    for (let i = 0; i < 4; i++) expect(await b.admit(only(user))).toMatchObject({ admitted: true });
    expect(await a.admit(only(user))).toMatchObject({ reason: "rate_limited", bucket: user.key });
  });

  it.each([
    { rps: 4, burst: 2, wait: 250 },
    { rps: 3, burst: 1, wait: 334 },
  ])("says exactly when to come back ($rps rps: $wait ms)", async ({ rps, burst, wait }) => {
    const clock = fakeClock();
    const [a, b] = pair({ now: clock.now });
    const req = request({ buckets: [{ key: `user:${randomUUID()}`, rps, burst }] });
    for (let i = 0; i < burst; i++) expect(await a.admit(req)).toMatchObject({ admitted: true });
    expect(await b.admit(req)).toMatchObject({ admitted: false, retryAfterMs: wait });
    clock.t += wait - 1;
    expect(await a.admit(req)).toMatchObject({ admitted: false, retryAfterMs: 1 });
    clock.t += 1;
    expect(await b.admit(req)).toMatchObject({ admitted: true });
  });

  it("never holds more than maxParallel slots across both replicas under concurrent calls", async () => {
    const [a, b] = pair();
    const req = request({ maxParallel: 3 });
    let held = 0;
    let most = 0;
    let busy = 0;
    const worker = async (l: PgLimiter) => {
      for (let i = 0; i < 25; i++) {
        const x = await l.admit(req);
        if (!x.admitted) {
          busy++;
          continue;
        }
        // Counted inside the slot's lifetime in the database: never more than it allows.
        most = Math.max(most, ++held);
        await sleep(Math.random() * 4);
        held--;
        await l.release(slotOf(x));
      }
    };
    await Promise.all([...Array(8).keys()].flatMap(() => [worker(a), worker(b)]));
    expect(most).toBe(3);
    expect(busy).toBeGreaterThan(0);
    expect(await count("gateway_slots", req.instanceId)).toBe(0);
  });

  it("frees the slot of a replica that died holding it once leaseMs has passed; its late release frees nothing", async () => {
    const clock = fakeClock();
    const [a, b] = pair({ now: clock.now });
    const req = request({ maxParallel: 1, leaseMs: 1000 });
    const lapsed = await a.admit(req);
    clock.t += 999;
    expect(await b.admit(req)).toMatchObject({ admitted: false, reason: "busy" });
    clock.t += 1;
    const taken = await b.admit(req);
    expect(taken).toMatchObject({ admitted: true });
    await a.release(slotOf(lapsed)); // the same slot, now b's
    expect(await a.admit(req)).toMatchObject({ admitted: false, reason: "busy" });
    await b.release(slotOf(taken));
    expect(await a.admit(req)).toMatchObject({ admitted: true });
  });

  it("queues across replicas and serves the waiters in order, one per release, woken by NOTIFY", async () => {
    // No poll within the test's time: only a NOTIFY can wake a waiter.
    const [a, b] = pair({ pollMs: 600_000 });
    const req = request({ maxParallel: 1, backpressure: "queue", queueDepth: 5 });
    let holder = await a.admit(req);
    const waiters = [];
    for (const l of [a, b, a, b]) {
      waiters.push(track(l.admit(req)));
      await expect.poll(() => count("gateway_waiters", req.instanceId)).toBe(waiters.length);
    }
    for (let i = 0; i < waiters.length; i++) {
      await sleep(30);
      expect(waiters.map((w) => w.done)).toEqual(waiters.map((_, j) => j < i));
      await (i % 2 === 0 ? b : a).release(slotOf(holder));
      holder = await waiters[i]!.promise;
      expect(holder).toMatchObject({ admitted: true });
    }
    await a.release(slotOf(holder));
    expect(await count("gateway_waiters", req.instanceId)).toBe(0);
    expect(await count("gateway_slots", req.instanceId)).toBe(0);
  });

  it("caps the queue at queueDepth across replicas; a waiter whose signal aborts leaves it", async () => {
    const [a, b] = pair({ pollMs: 600_000 });
    const req = request({ maxParallel: 1, backpressure: "queue", queueDepth: 2 });
    const holder = await a.admit(req);
    const gone = new AbortController();
    const first = track(a.admit(req, gone.signal));
    await expect.poll(() => count("gateway_waiters", req.instanceId)).toBe(1);
    const second = track(b.admit(req));
    await expect.poll(() => count("gateway_waiters", req.instanceId)).toBe(2);
    expect(await a.admit(req)).toMatchObject({ admitted: false, reason: "queue_full" });
    expect(await b.admit(req)).toMatchObject({ admitted: false, reason: "queue_full" });

    gone.abort(new Error("the caller went away"));
    await expect(first.promise).rejects.toThrow("the caller went away");
    expect(await count("gateway_waiters", req.instanceId)).toBe(1);
    const third = track(a.admit(req));
    await expect.poll(() => count("gateway_waiters", req.instanceId)).toBe(2);

    await b.release(slotOf(holder));
    const next = await second.promise;
    expect(third.done).toBe(false);
    await a.release(slotOf(next));
    await b.release(slotOf(await third.promise));
  });

  it("answers busy when no slot frees within maxWaitMs, and gives its place back", async () => {
    const [a, b] = pair({ pollMs: 50 });
    const req = request({ maxParallel: 1, backpressure: "queue", queueDepth: 1, maxWaitMs: 300 });
    const holder = await a.admit(req);
    const started = Date.now();
    expect(await b.admit(req)).toMatchObject({ admitted: false, reason: "busy" });
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(await count("gateway_waiters", req.instanceId)).toBe(0);
    await a.release(slotOf(holder));
  });

  it("a waiter whose replica stops asking loses its place; a lapsed lease frees the slot without a release", async () => {
    // `stalled` never asks again and its places lapse after 200 ms; `live` polls every 50 ms.
    const stalled = new PgLimiter(r.a, { pollMs: 600_000, waiterTtlMs: 200 });
    const live = new PgLimiter(r.b, { pollMs: 50 });
    limiters.push(stalled, live);
    const req = request({ maxParallel: 1, backpressure: "queue", queueDepth: 5, leaseMs: 800 });
    await live.admit(req); // held until its lease lapses: no release, so no NOTIFY
    const dies = new AbortController();
    const ahead = track(stalled.admit(req, dies.signal));
    await expect.poll(() => count("gateway_waiters", req.instanceId)).toBe(1);
    const behind = track(live.admit(req));

    const served = await behind.promise;
    expect(served).toMatchObject({ admitted: true });
    expect(ahead.done).toBe(false);
    expect(await count("gateway_waiters", req.instanceId)).toBe(0);
    dies.abort(new Error("replica stopped"));
    await expect(ahead.promise).rejects.toThrow("replica stopped");
    await live.release(slotOf(served));
  });

  it("admits in one SQL statement and releases in one", async () => {
    const counted = countStatements(r.a.db);
    const l = new PgLimiter({ db: counted.db, subscribe: r.a.subscribe });
    limiters.push(l);
    const req = request({
      buckets: [
        { key: `instance:${randomUUID()}`, rps: 100, burst: 10 },
        { key: `user:${randomUUID()}`, rps: 100, burst: 10 },
        { key: `project:${randomUUID()}`, rps: 100, burst: 10 },
      ],
      maxParallel: 4,
      backpressure: "queue",
      queueDepth: 4,
      breaker: { failureThreshold: 5, cooldownMs: 1000 },
    });
    const admitted = await l.admit(req);
    expect(counted.count).toBe(1);
    await l.release(slotOf(admitted));
    expect(counted.count).toBe(2);
  });
});
