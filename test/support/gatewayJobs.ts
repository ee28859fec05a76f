// Helpers of gateway-jobs.test.ts: job specs and responses, a recording worker, polling, and
// a replica in a child process (jobReplica.ts) to SIGKILL.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import type { JobRecord, NormalizedResponse } from "../../controller/src/api/invocation.ts";
import type { JsonObject } from "../../controller/src/api/types.ts";
import type { JobOutcome, JobSpec } from "../../controller/src/gateway/ports.ts";
import type { PgBossJobQueue } from "../../controller/src/store/jobs.ts";

export type Handler = Parameters<PgBossJobQueue["work"]>[0];
export interface Call {
  jobId: string;
  attempt: number;
  spec: JobSpec;
  at: number;
}

let seq = 0;
export function spec(input: JsonObject, over: Partial<JobSpec> = {}): JobSpec {
  seq++;
  return {
    target: { namespace: "team-a", name: "mail", operation: "send" },
    input,
    requester: { user: "alice@example.org", groups: ["team-a"] },
    requestId: `req-${seq}`,
    correlationId: `corr-${seq}`,
    idempotencyKey: `key-${seq}`,
    retry: { limit: 2, delayMs: 1000, maxDelayMs: 10_000 },
    timeoutMs: 5000,
    ...over,
  };
}

export function response(data: JsonObject): NormalizedResponse {
  return {
    metadata: {
      requestId: "r",
      correlationId: "c",
      namespace: "team-a",
      connector: "mail",
      connectorInstanceId: "i",
      type: "smtp",
      operation: "send",
      executionMode: "async",
      durationMs: 1,
      providerStatusCode: 250,
      retryCount: 0,
    },
    data,
    warnings: [],
    redactionsApplied: [],
    truncated: false,
  };
}

export const transient = (reason = "Flaky"): JobOutcome => ({
  ok: false,
  error: { class: "transient", reason, message: "try again later" },
  retry: true,
});

export async function waitFor<T>(read: () => Promise<T>, done: (v: T) => boolean, ms = 20_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (done(v)) return v;
    if (Date.now() > until) throw new Error(`timed out; last value: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const settled = (r: JobRecord | undefined) =>
  r !== undefined && ["succeeded", "failed", "canceled"].includes(r.state);

/** Runs `handler` on a replica until the returned stop() is awaited; records every call. */
export function worker(q: PgBossJobQueue, handler: Handler, concurrency = 2) {
  const calls: Call[] = [];
  const ac = new AbortController();
  const done = q.work(
    (s, ctx) => {
      calls.push({ jobId: ctx.jobId, attempt: ctx.attempt, spec: s, at: Date.now() });
      return handler(s, ctx);
    },
    { concurrency },
    ac.signal,
  );
  return {
    calls,
    async stop() {
      ac.abort();
      await done;
    },
  };
}

/** Runs test/support/jobReplica.ts with `args`; SIGKILL it through `process`. */
export function spawnReplica(args: string[]) {
  const proc: ChildProcess = spawn(process.execPath, ["test/support/jobReplica.ts", ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: proc.stdout! }).on("line", (l) => {
    lines.push(l);
    waiters.splice(0).forEach((w) => w());
  });
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  return {
    process: proc,
    exited,
    async line(re: RegExp): Promise<string> {
      for (;;) {
        const found = lines.find((l) => re.test(l));
        if (found !== undefined) return found;
        if (proc.exitCode !== null)
          throw new Error(`replica exited (${proc.exitCode}): ${lines.join(" | ")}`);
        await Promise.race([
          new Promise<void>((r) => waiters.push(r)),
          new Promise((r) => setTimeout(r, 500)),
        ]);
      }
    },
  };
}
