// The gateway's async jobs (spec §2.2) on pg-boss: one queue for the jobs and one dead-letter
// queue that pg-boss fills when a job's retries run out. Every replica opens its own
// PgBossJobQueue on the shared database; any replica can answer for any job.
//
// pg-boss owns the state machine (created/retry → active → completed | failed | cancelled,
// retries with exponential backoff and jitter, expiry of a run whose replica died, the copy
// into the dead-letter queue). Reads go to its job table directly: it has no call that lists
// by state newest first, or that finds a failed job's dead letter in the same query.
import { createHash, randomUUID } from "node:crypto";
import { sql } from "kysely";
import type { PgBoss } from "pg-boss";
import type { DeadLetter, JobRecord } from "../api/invocation.ts";
import type { JobQueue, JobSpec } from "../gateway/ports.ts";
import { databaseUnavailable, type OpenedDatabase } from "./database.ts";
import { createBoss, DEFAULT_BOSS_SCHEMA, type JobEngineOptions } from "./jobEngine.ts";
import {
  bossStates,
  replayedAs,
  toDeadLetter,
  toJobRecord,
  type BossJobRow,
  type ReplayOutput,
  ourState,
} from "./jobRecords.ts";
import { JOB_CANCEL_CHANNEL, runWorker, type WorkHandler } from "./jobWorker.ts";

/** pg-boss refuses an expiry over 24 hours. */
const MAX_EXPIRY_SECONDS = 86_400;

export interface PgBossJobQueueOptions extends JobEngineOptions {
  /** pg-boss queue name; the dead letters go to `<queue>.dead`. */
  queue?: string;
  /** A result larger than this (as JSON, in bytes) is not stored: the job fails with ResultTooLarge. */
  maxResultBytes: number;
  /** The global cap on an operation's retry limit (spec §5.2). */
  maxRetries?: number;
  /** How long a finished job, with its result, stays readable. */
  keepFinishedSeconds?: number;
  /** How long a dead letter waits for a replay. */
  keepDeadLettersSeconds?: number;
  /** pg-boss heartbeat of a running job (>= 10): a replica that stops beating loses the job. */
  heartbeatSeconds?: number;
  /** Time past a job's timeoutMs before pg-boss takes its run for abandoned. */
  expiryGraceMs?: number;
  /** A worker's poll when no NOTIFY wakes it. */
  pollingIntervalSeconds?: number;
  /** pg-boss's background errors (a failed maintenance pass, a lost connection). */
  onError?: (err: Error) => void;
}

export class PgBossJobQueue implements JobQueue {
  readonly #boss: PgBoss;
  readonly #database: OpenedDatabase;
  readonly #opts: Required<Omit<PgBossJobQueueOptions, keyof JobEngineOptions | "onError">>;
  readonly #schema: string;
  readonly #dlq: string;

  private constructor(database: OpenedDatabase, boss: PgBoss, opts: PgBossJobQueueOptions) {
    this.#database = database;
    this.#boss = boss;
    this.#schema = opts.schema ?? DEFAULT_BOSS_SCHEMA;
    this.#opts = {
      queue: opts.queue ?? "connector-gateway",
      maxResultBytes: opts.maxResultBytes,
      maxRetries: opts.maxRetries ?? 10,
      keepFinishedSeconds: opts.keepFinishedSeconds ?? 7 * 86_400,
      keepDeadLettersSeconds: opts.keepDeadLettersSeconds ?? 30 * 86_400,
      heartbeatSeconds: opts.heartbeatSeconds ?? 30,
      expiryGraceMs: opts.expiryGraceMs ?? 5_000,
      pollingIntervalSeconds: opts.pollingIntervalSeconds ?? 2,
    };
    this.#dlq = `${this.#opts.queue}.dead`;
  }

  /** Starts pg-boss (installing or migrating its schema) and creates the two queues. */
  static async open(database: OpenedDatabase, opts: PgBossJobQueueOptions): Promise<PgBossJobQueue> {
    const boss = createBoss(database, opts);
    // An EventEmitter "error" with no listener would throw from pg-boss's timers.
    boss.on("error", (err) => opts.onError?.(err));
    await boss.start();
    const q = new PgBossJobQueue(database, boss, opts);
    try {
      await q.#createQueues();
    } catch (err) {
      await boss.stop({ graceful: false });
      throw err;
    }
    return q;
  }

  async #createQueues(): Promise<void> {
    // A dead letter waits in `created` (nobody works this queue) until replayed.
    await this.#boss.createQueue(this.#dlq, {
      retentionSeconds: this.#opts.keepDeadLettersSeconds,
      deleteAfterSeconds: this.#opts.keepDeadLettersSeconds,
    });
    await this.#boss.createQueue(this.#opts.queue, {
      deadLetter: this.#dlq,
      deleteAfterSeconds: this.#opts.keepFinishedSeconds,
      notify: true,
    });
  }

  /** Stops this replica's pg-boss (its workers first: in-flight jobs finish). */
  async close(): Promise<void> {
    await this.#boss.stop({ graceful: true });
  }

  async enqueue(spec: JobSpec): Promise<{ id: string }> {
    try {
      return { id: await this.#send(spec, randomUUID()) };
    } catch (err) {
      throw databaseUnavailable(err);
    }
  }

  async #send(spec: JobSpec, id: string): Promise<string> {
    // pg-boss counts retry delays in whole seconds, and at least one with backoff on.
    const delay = Math.max(1, Math.round(spec.retry.delayMs / 1000));
    await this.#boss.send(this.#opts.queue, spec, {
      id,
      // Copied into the dead letter: how a failed job finds its dead letter.
      singletonKey: id,
      retryLimit: Math.max(0, Math.min(spec.retry.limit, this.#opts.maxRetries)),
      retryDelay: delay,
      retryBackoff: true,
      retryDelayMax: Math.max(delay, Math.ceil(spec.retry.maxDelayMs / 1000)),
      // The handler's signal fires at timeoutMs; pg-boss takes the run for abandoned a grace later.
      expireInSeconds: Math.min(
        MAX_EXPIRY_SECONDS,
        Math.ceil((spec.timeoutMs + this.#opts.expiryGraceMs) / 1000),
      ),
      heartbeatSeconds: this.#opts.heartbeatSeconds,
    });
    return id;
  }

  async get(id: string): Promise<JobRecord | undefined> {
    if (!isUuid(id)) return undefined;
    const rows = await this.#selectJobs(sql`j.id = ${id}::uuid`, 1);
    return rows[0] && toJobRecord(rows[0]);
  }

  async list(filter: {
    namespace?: string;
    name?: string;
    state?: JobRecord["state"];
    limit?: number;
  }): Promise<JobRecord[]> {
    const conds = [sql`true`];
    if (filter.namespace !== undefined) conds.push(sql`j.data->'target'->>'namespace' = ${filter.namespace}`);
    if (filter.name !== undefined) conds.push(sql`j.data->'target'->>'name' = ${filter.name}`);
    if (filter.state !== undefined) conds.push(sql`j.state::text = any(${bossStates(filter.state)}::text[])`);
    const rows = await this.#selectJobs(sql.join(conds, sql` and `), clampLimit(filter.limit));
    return rows.map(toJobRecord);
  }

  async #selectJobs(where: ReturnType<typeof sql>, limit: number): Promise<BossJobRow[]> {
    const job = sql.table(`${this.#schema}.job`);
    const r = await sql<BossJobRow>`
      select j.id::text as id, j.state::text as state, j.data, j.created_on, j.started_on,
             j.completed_on, j.retry_count, j.output,
             (select d.id::text from ${job} d
               where j.state = 'failed' and d.name = ${this.#dlq} and d.singleton_key = j.id::text
               limit 1) as dead_letter_id
        from ${job} j
       where j.name = ${this.#opts.queue} and ${where}
       order by j.created_on desc, j.id
       limit ${limit}`.execute(this.#database.db);
    return r.rows;
  }

  async cancel(id: string): Promise<JobRecord | undefined> {
    if (!isUuid(id)) return undefined;
    // pg-boss's cancel keeps a pending job from running and fences a running one's settle; the
    // NOTIFY aborts the running handler now, on whichever replica has it (its heartbeat would
    // notice too, but only within heartbeatSeconds).
    await this.#boss.cancel(this.#opts.queue, id);
    await sql`select pg_notify(${JOB_CANCEL_CHANNEL}, ${id})`.execute(this.#database.db);
    return this.get(id);
  }

  async deadLetters(filter: { namespace?: string; limit?: number }): Promise<DeadLetter[]> {
    const ns =
      filter.namespace === undefined ? sql`true` : sql`data->'target'->>'namespace' = ${filter.namespace}`;
    const rows = await this.#selectDeadLetters(sql`${ns}`, clampLimit(filter.limit));
    return rows.map(toDeadLetter);
  }

  async deadLetter(id: string): Promise<DeadLetter | undefined> {
    if (!isUuid(id)) return undefined;
    const rows = await this.#selectDeadLetters(sql`id = ${id}::uuid`, 1);
    return rows[0] && toDeadLetter(rows[0]);
  }

  /** Jobs by our state, and the dead letters waiting (one query, for the metrics at scrape time). */
  async counts(): Promise<{ byState: Record<JobRecord["state"], number>; deadLetters: number }> {
    const r = await sql<{ name: string; state: string; n: number }>`
      select name, state::text as state, count(*)::int as n
        from ${sql.table(`${this.#schema}.job`)}
       where name in (${this.#opts.queue}, ${this.#dlq})
       group by name, state`.execute(this.#database.db);
    const byState: Record<JobRecord["state"], number> = {
      pending: 0,
      running: 0,
      succeeded: 0,
      failed: 0,
      canceled: 0,
    };
    let deadLetters = 0;
    for (const row of r.rows) {
      if (row.name === this.#dlq) {
        if (row.state === "created" || row.state === "retry") deadLetters += row.n;
        continue;
      }
      const state = ourState(row.state);
      if (state) byState[state] += row.n;
    }
    return { byState, deadLetters };
  }

  async #selectDeadLetters(where: ReturnType<typeof sql>, limit: number): Promise<BossJobRow[]> {
    const r = await sql<BossJobRow>`
      select id::text as id, state::text as state, data, created_on, started_on, completed_on,
             retry_count, output, source_id::text as source_id, source_output
        from ${sql.table(`${this.#schema}.job`)}
       where name = ${this.#dlq} and ${where}
       order by created_on desc, id
       limit ${limit}`.execute(this.#database.db);
    return r.rows;
  }

  /**
   * Enqueues the dead letter's job again. The new job's id is derived from the dead letter's,
   * so replaying twice (or concurrently, or again after a crash between the two steps) makes
   * one job: the send is a no-op when that id exists, and the dead letter records it.
   */
  async replay(deadLetterId: string): Promise<{ id: string }> {
    const [row] = isUuid(deadLetterId)
      ? await this.#selectDeadLetters(sql`id = ${deadLetterId}::uuid`, 1)
      : [];
    if (row === undefined) throw new DeadLetterNotFound(deadLetterId);
    const already = replayedAs(row);
    if (already !== undefined) return { id: already };
    const id = replayId(deadLetterId);
    await this.#send(row.data, id);
    const output: ReplayOutput = { replayedAs: id };
    await this.#boss.complete(this.#dlq, deadLetterId, output, { includeQueued: true });
    return { id };
  }

  work(handler: WorkHandler, opts: { concurrency: number }, signal: AbortSignal): Promise<void> {
    return runWorker(
      {
        boss: this.#boss,
        database: this.#database,
        queue: this.#opts.queue,
        schema: this.#schema,
        maxResultBytes: this.#opts.maxResultBytes,
        pollingIntervalSeconds: this.#opts.pollingIntervalSeconds,
      },
      handler,
      opts,
      signal,
    );
  }
}

export class DeadLetterNotFound extends Error {
  constructor(id: string) {
    super(`no dead letter ${id}`);
    this.name = "DeadLetterNotFound";
  }
}

/** A UUID (version 8: custom) that only this dead letter's replay produces. */
function replayId(deadLetterId: string): string {
  const h = createHash("sha256").update(`replay:${deadLetterId}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x80;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString("hex");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

function isUuid(id: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id);
}

function clampLimit(limit: number | undefined): number {
  return Math.max(1, Math.min(limit ?? 100, 1000));
}
