// The worker side of PgBossJobQueue: runs jobs through the gateway's handler on this replica
// and settles each with pg-boss according to the handler's outcome.
//
//   ok                         → completed, the result as its output (refused above the cap)
//   failed, retry: true        → failed through pg-boss: retried with backoff while attempts
//                                remain, then failed and copied into the dead-letter queue
//   failed, retry: false       → failed at once: no retry, no dead letter
//
// The handler's signal fires on the operation's timeout, on a cancel (NOTIFY from any
// replica), and when pg-boss finds this replica's claim on the job gone (heartbeat, expiry).
import { sql } from "kysely";
import type { JobWithMetadata, PgBoss } from "pg-boss";
import type { JobOutcome, JobQueue, JobSpec } from "../gateway/ports.ts";
import type { OpenedDatabase } from "./database.ts";
import type { JobFailure, JobOutput } from "./jobRecords.ts";
import { listen } from "./listener.ts";

export type WorkHandler = Parameters<JobQueue["work"]>[0];

/** Every worker LISTENs here; the payload is the id of a job to abort. */
export const JOB_CANCEL_CHANNEL = "gateway_job_cancel";

export interface WorkerContext {
  boss: PgBoss;
  database: OpenedDatabase;
  queue: string;
  schema: string;
  maxResultBytes: number;
  pollingIntervalSeconds: number;
}

type Settlement = { id: string; status: "completed" | "failed"; output: JobOutput };

/** Runs until `signal` aborts, then stops fetching and waits for the jobs in flight to settle. */
export async function runWorker(
  ctx: WorkerContext,
  handler: WorkHandler,
  opts: { concurrency: number },
  signal: AbortSignal,
): Promise<void> {
  if (signal.aborted) return;
  const running = new Map<string, AbortController>();
  const cancels = await listen(ctx.database, JOB_CANCEL_CHANNEL, (id) =>
    running.get(id)?.abort(new Error("the job was canceled")),
  );
  const workIds: string[] = [];
  try {
    // One pg-boss worker per slot rather than one with localConcurrency: a pg-boss worker
    // waits out its polling interval after every job, unless notified, and only a worker
    // registered alone can be told apart (notifyWorker) to fetch the next job right away.
    for (let i = 0; i < Math.max(1, opts.concurrency); i++) {
      // Set before this worker's first job reaches the handler: its first fetch is a query away.
      let workId = "";
      workId = await ctx.boss.work(
        ctx.queue,
        {
          batchSize: 1,
          includeMetadata: true,
          perJobResults: true,
          pollingIntervalSeconds: ctx.pollingIntervalSeconds,
          // NOTIFY wakes workers for new jobs only: a retry coming due is found by the poll.
          notifyPollingIntervalSeconds: ctx.pollingIntervalSeconds,
        },
        async (jobs: JobWithMetadata<JobSpec>[]) => {
          const settled = await Promise.all(jobs.map((job) => runOne(ctx, handler, running, job)));
          ctx.boss.notifyWorker(workId); // more may be waiting: fetch again without the poll delay
          return settled;
        },
      );
      workIds.push(workId);
    }
    if (!signal.aborted) {
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
    }
  } finally {
    // wait: true returns once the handlers in flight have returned and their jobs are settled.
    await Promise.all(workIds.map((id) => ctx.boss.offWork(ctx.queue, { id, wait: true })));
    await cancels.close();
  }
}

async function runOne(
  ctx: WorkerContext,
  handler: WorkHandler,
  running: Map<string, AbortController>,
  job: JobWithMetadata<JobSpec>,
): Promise<Settlement> {
  const spec = job.data;
  const canceled = new AbortController();
  running.set(job.id, canceled);
  let outcome: JobOutcome;
  try {
    const signal = AbortSignal.any([job.signal, canceled.signal, AbortSignal.timeout(spec.timeoutMs)]);
    outcome = await handler(spec, { jobId: job.id, attempt: job.retryCount + 1, signal });
  } catch {
    // The handler is meant to classify every failure; one that throws is a bug, not the
    // provider's fault, so its text (which might hold anything) is not kept.
    outcome = {
      ok: false,
      error: { class: "transient", reason: "WorkerError", message: "the job's handler failed unexpectedly" },
      retry: true,
    };
  } finally {
    running.delete(job.id);
  }
  return settle(ctx, job, outcome);
}

async function settle(
  ctx: WorkerContext,
  job: JobWithMetadata<JobSpec>,
  outcome: JobOutcome,
): Promise<Settlement> {
  if (outcome.ok) {
    const bytes = Buffer.byteLength(JSON.stringify(outcome.result));
    if (bytes <= ctx.maxResultBytes)
      return { id: job.id, status: "completed", output: { ok: true, result: outcome.result } };
    return failForGood(ctx, job, {
      class: "permanent",
      reason: "ResultTooLarge",
      message: `the result is ${bytes} bytes, over the limit of ${ctx.maxResultBytes}`,
    });
  }
  if (outcome.retry) return { id: job.id, status: "failed", output: { ok: false, error: outcome.error } };
  return failForGood(ctx, job, outcome.error);
}

/**
 * pg-boss has no call that fails a job for good without dead-lettering it (its "deadletter"
 * result does dead-letter it; upstream suggests cancel or delete instead, timgit/pg-boss#516,
 * and declined a failWithoutRetry, timgit/pg-boss#450), so this attempt's row is first told it
 * has no retry left and no dead-letter queue; the fail that follows then leaves it `failed`. Fenced to this attempt
 * of an active job: a job canceled or taken over meanwhile is left alone. gateway-jobs.test.ts
 * ("fails a permanent failure at once") fails if pg-boss's columns change under this.
 */
async function failForGood(
  ctx: WorkerContext,
  job: JobWithMetadata<JobSpec>,
  error: JobFailure,
): Promise<Settlement> {
  await sql`
    update ${sql.table(`${ctx.schema}.job`)}
       set retry_limit = retry_count, dead_letter = null
     where name = ${ctx.queue} and id = ${job.id}::uuid and retry_count = ${job.retryCount}
       and state = 'active'`.execute(ctx.database.db);
  return { id: job.id, status: "failed", output: { ok: false, error } };
}
