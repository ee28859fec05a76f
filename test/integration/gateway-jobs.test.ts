// PgBossJobQueue as two gateway replicas share it: on a real PostgreSQL server each replica has
// its own pools; on PGlite both run in this process on the one database. A third replica runs
// in a child process, to be SIGKILLed in the middle of a job.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobOutcome } from "../../controller/src/gateway/ports.ts";
import { openDatabase, type OpenedDatabase } from "../../controller/src/store/database.ts";
import { PgBossJobQueue, type PgBossJobQueueOptions } from "../../controller/src/store/jobs.ts";
import { response, settled, spawnReplica, spec, transient, waitFor, worker } from "../support/gatewayJobs.ts";
import { openReplicaDatabases, type ReplicaDatabases } from "../support/replicaDatabases.ts";

// Short expiry and supervision so an abandoned job comes back within seconds; a heartbeat far
// longer than any wait here, so only the NOTIFY can abort a canceled job in time.
const OPTIONS: PgBossJobQueueOptions = {
  maxResultBytes: 2048,
  superviseIntervalSeconds: 1,
  expiryGraceMs: 1000,
  pollingIntervalSeconds: 0.5,
  heartbeatSeconds: 120,
};

interface Backend {
  name: string;
  dialect: "pg" | "pglite";
  /** How to run a replica in a child process; `reopen`: the data directory after it died. */
  child(
    env: ReplicaDatabases,
  ): Promise<{ args: string[]; reopen?: () => Promise<OpenedDatabase>; cleanup(): Promise<void> }>;
}

const backends: Backend[] = [
  {
    name: "PostgreSQL",
    dialect: "pg",
    async child(env) {
      return { args: ["--url", env.url!], cleanup: async () => undefined };
    },
  },
  {
    name: "PGlite",
    dialect: "pglite",
    async child() {
      // PGlite is one process's: the "other replica" is this process reopening the data
      // directory after the first one was killed, as `make run` restarts.
      const dir = await mkdtemp(join(tmpdir(), "gateway-jobs-pglite-"));
      return {
        args: ["--data-dir", dir],
        reopen: () => openDatabase({ dataDir: dir }),
        cleanup: () => rm(dir, { recursive: true, force: true }),
      };
    },
  },
];

describe.each(backends)("gateway jobs on $name", (backend) => {
  let env: ReplicaDatabases;
  let a: PgBossJobQueue;
  let b: PgBossJobQueue;

  beforeAll(async () => {
    env = await openReplicaDatabases(backend.dialect);
    a = await PgBossJobQueue.open(env.a, OPTIONS);
    b = await PgBossJobQueue.open(env.b, OPTIONS);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await env?.close();
  });

  it("runs a job to success on the other replica and keeps its result", async () => {
    const w = worker(b, async (s) => ({ ok: true, result: response({ echoed: s.input }) }));
    const { id } = await a.enqueue(spec({ to: "bob@example.org" }));
    const job = await waitFor(() => a.get(id), settled);
    await w.stop();
    expect(job).toMatchObject({
      id,
      state: "succeeded",
      target: { namespace: "team-a", name: "mail", operation: "send" },
      requester: "alice@example.org",
      attempts: 1,
      result: response({ echoed: { to: "bob@example.org" } }),
    });
    expect(Date.parse(job!.finishedAt!)).toBeGreaterThanOrEqual(Date.parse(job!.startedAt!));
    expect(job!.error).toBeUndefined();
    expect((await b.list({ namespace: "team-a", state: "succeeded" })).map((j) => j.id)).toContain(id);
    expect(await b.list({ namespace: "team-b" })).toEqual([]);
    expect(await a.get("00000000-0000-4000-8000-000000000000")).toBeUndefined();
    expect(await a.get("not-a-uuid")).toBeUndefined();
  });

  it("fails a permanent failure at once, without retry or dead letter", async () => {
    const error = { class: "permanent" as const, reason: "MailboxUnknown", message: "no such mailbox" };
    const w = worker(b, async () => ({ ok: false, error, retry: false }));
    const { id } = await a.enqueue(spec({ to: "nobody@example.org" }));
    const job = await waitFor(() => a.get(id), settled);
    await w.stop();
    // pg-boss leaves a job it will retry in "retry" (pending): "failed" means no retry is due.
    expect(job).toMatchObject({ state: "failed", attempts: 1, error });
    expect(job!.deadLetterId).toBeUndefined();
    expect((await a.deadLetters({ namespace: "team-a" })).map((d) => d.jobId)).not.toContain(id);
    expect(w.calls.filter((c) => c.jobId === id)).toHaveLength(1);
  });

  it("retries a transient failure with exponential backoff, then succeeds", async () => {
    const w = worker(b, async (_s, ctx) =>
      ctx.attempt < 3 ? transient() : { ok: true, result: response({}) },
    );
    const { id } = await a.enqueue(
      spec({ n: 1 }, { retry: { limit: 2, delayMs: 1000, maxDelayMs: 10_000 } }),
    );
    const job = await waitFor(() => a.get(id), settled);
    await w.stop();
    expect(job).toMatchObject({ state: "succeeded", attempts: 3 });
    const runs = w.calls.filter((c) => c.jobId === id);
    expect(runs.map((c) => c.attempt)).toEqual([1, 2, 3]);
    // pg-boss waits delay·2^(n-1)·(1 + jitter) before retry n: at least 1 s, then 2 s.
    expect(runs[1]!.at - runs[0]!.at).toBeGreaterThanOrEqual(950);
    expect(runs[2]!.at - runs[1]!.at).toBeGreaterThanOrEqual(1950);
  });

  it("dead-letters a job whose retries ran out; a replay runs the same input and key as a new job", async () => {
    const original = spec(
      { to: "carol@example.org", body: "hello" },
      { retry: { limit: 1, delayMs: 1000, maxDelayMs: 1000 } },
    );
    const failing = new Set<string>();
    const w = worker(b, async (_s, ctx) =>
      failing.has(ctx.jobId) ? transient("Unavailable") : { ok: true, result: response({ sent: true }) },
    );
    const { id } = await a.enqueue(original);
    failing.add(id);
    const job = await waitFor(() => a.get(id), settled);
    expect(job).toMatchObject({
      state: "failed",
      attempts: 2,
      error: { class: "transient", reason: "Unavailable" },
    });
    expect(job!.deadLetterId).toBeDefined();
    const letters = await b.deadLetters({ namespace: "team-a" });
    const letter = letters.find((d) => d.id === job!.deadLetterId);
    expect(letter).toMatchObject({
      jobId: id,
      target: original.target,
      requester: "alice@example.org",
      error: job!.error,
    });
    expect(letter!.replayedAs).toBeUndefined();

    const replay = await b.replay(letter!.id);
    expect(replay.id).not.toBe(id);
    expect(await a.replay(letter!.id)).toEqual(replay); // one replay, however often asked
    const rerun = await waitFor(() => a.get(replay.id), settled);
    await w.stop();
    expect(rerun).toMatchObject({ state: "succeeded", attempts: 1 });
    const ran = w.calls.filter((c) => c.jobId === replay.id);
    expect(ran).toHaveLength(1);
    expect(ran[0]!.spec.input).toEqual(original.input);
    expect(ran[0]!.spec.idempotencyKey).toBe(original.idempotencyKey);
    expect((await a.deadLetters({ namespace: "team-a" })).find((d) => d.id === letter!.id)?.replayedAs).toBe(
      replay.id,
    );
    await expect(a.replay("00000000-0000-4000-8000-000000000000")).rejects.toThrow(/no dead letter/);
  });

  it("cancels a pending job: it never runs", async () => {
    const { id } = await a.enqueue(spec({ n: "canceled" }));
    expect(await b.cancel(id)).toMatchObject({ id, state: "canceled", attempts: 0 });
    const { id: later } = await a.enqueue(spec({ n: "after" }));
    const w = worker(b, async () => ({ ok: true, result: response({}) }), 1);
    await waitFor(() => a.get(later), settled);
    await w.stop();
    expect(w.calls.map((c) => c.jobId)).not.toContain(id);
    expect(await a.get(id)).toMatchObject({ state: "canceled" });
  });

  it("cancels a running job: its handler's signal fires on the replica that runs it", async () => {
    let aborted: ((reason: unknown) => void) | undefined;
    const abortedWith = new Promise<unknown>((resolve) => (aborted = resolve));
    const w = worker(b, (_s, ctx) => {
      return new Promise<JobOutcome>((resolve) => {
        ctx.signal.addEventListener("abort", () => {
          aborted!(ctx.signal.reason);
          resolve(transient("Aborted"));
        });
      });
    });
    const { id } = await a.enqueue(spec({ n: "long" }, { timeoutMs: 60_000 }));
    await waitFor(
      async () => w.calls.length,
      (n) => n > 0,
    );
    expect(await a.get(id)).toMatchObject({ state: "running", attempts: 1 });
    await a.cancel(id);
    // The heartbeat (120 s) cannot be what aborts it within this wait.
    const reason = await Promise.race([
      abortedWith,
      new Promise((r) => setTimeout(() => r("not aborted"), 5000)),
    ]);
    expect(String(reason)).toMatch(/canceled/);
    await w.stop();
    expect(await a.get(id)).toMatchObject({ state: "canceled" }); // the handler's outcome did not land
  });

  it("runs a job again on another replica when the one running it is SIGKILLed", async () => {
    const c = await backend.child(env);
    const job = spec(
      { n: "orphan" },
      { timeoutMs: 1000, retry: { limit: 2, delayMs: 1000, maxDelayMs: 1000 } },
    );
    let id = "";
    if (c.reopen === undefined) id = (await a.enqueue(job)).id;
    const child = spawnReplica([
      ...c.args,
      "--options",
      JSON.stringify(OPTIONS),
      ...(c.reopen ? ["--enqueue", JSON.stringify(job)] : []),
    ]);
    try {
      const started = await child.line(/^started /);
      id ||= started.split(" ")[1]!;
      expect(started).toBe(`started ${id} 1`);
      child.process.kill("SIGKILL");
      await child.exited;
      const database = c.reopen ? await c.reopen() : undefined;
      const survivor = database ? await PgBossJobQueue.open(database, OPTIONS) : b;
      try {
        const w = worker(survivor, async () => ({ ok: true, result: response({ recovered: true }) }));
        const done = await waitFor(() => survivor.get(id), settled, 30_000);
        await w.stop();
        expect(done).toMatchObject({
          state: "succeeded",
          attempts: 2,
          result: response({ recovered: true }),
        });
        expect(w.calls.map((x) => [x.jobId, x.attempt])).toEqual([[id, 2]]);
      } finally {
        if (database) {
          await survivor.close();
          await database.close();
        }
      }
    } finally {
      child.process.kill("SIGKILL");
      await c.cleanup();
    }
  }, 300_000); // a fresh PGlite data directory alone takes tens of seconds

  it("refuses a result over maxResultBytes: the job fails for good with ResultTooLarge", async () => {
    const w = worker(b, async (s) => ({
      ok: true,
      result: response({ blob: "x".repeat(Number(s.input["size"])) }),
    }));
    const { id: big } = await a.enqueue(spec({ size: 4000 }));
    const { id: small } = await a.enqueue(spec({ size: 100 }));
    const [bigJob, smallJob] = [
      await waitFor(() => a.get(big), settled),
      await waitFor(() => a.get(small), settled),
    ];
    await w.stop();
    expect(bigJob).toMatchObject({
      state: "failed",
      attempts: 1,
      error: { class: "permanent", reason: "ResultTooLarge" },
    });
    expect(bigJob!.result).toBeUndefined();
    expect(bigJob!.deadLetterId).toBeUndefined();
    expect(smallJob).toMatchObject({ state: "succeeded" });
  });

  it("work() runs at most `concurrency` jobs at once and, stopped, lets the jobs in flight finish", async () => {
    let inFlight = 0;
    let most = 0;
    const w = worker(
      b,
      async () => {
        most = Math.max(most, ++inFlight);
        await new Promise((r) => setTimeout(r, 400));
        inFlight--;
        return { ok: true, result: response({}) };
      },
      3,
    );
    const ids = await Promise.all([1, 2, 3, 4, 5, 6].map(async (n) => (await a.enqueue(spec({ n }))).id));
    await waitFor(
      async () => w.calls.length,
      (n) => n >= 3,
    );
    await w.stop(); // returns once the jobs it had started are settled
    expect(most).toBe(3);
    const started = new Set(w.calls.map((c) => c.jobId));
    for (const id of ids) {
      const job = await a.get(id);
      expect(job!.state).toBe(started.has(id) ? "succeeded" : "pending");
      if (job!.state === "pending") await a.cancel(id); // nothing left for the next test's workers
    }
  });
});
