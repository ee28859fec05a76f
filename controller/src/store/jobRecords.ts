// How a gateway job is kept in pg-boss, and read back as the API's JobRecord and DeadLetter.
//
// A job's pg-boss `data` is its JobSpec (the input may carry user data, never a credential:
// the worker resolves those). Its `output` is what the worker settled it with (JobOutput);
// anything else there was written by pg-boss itself (an expiry, a lost heartbeat, a shutdown)
// and is reported as a transient interruption without its text.
import type { ErrorClass, JsonValue } from "../api/types.ts";
import type { DeadLetter, JobRecord, JobState, NormalizedResponse } from "../api/invocation.ts";
import type { JobSpec } from "../gateway/ports.ts";

export interface JobFailure {
  class: ErrorClass;
  reason: string;
  message: string;
}

/** What the worker stores as a settled job's pg-boss output. */
export type JobOutput = { ok: true; result: NormalizedResponse } | { ok: false; error: JobFailure };

/** What `replay` stores as a dead letter's pg-boss output once it has been re-enqueued. */
export interface ReplayOutput {
  replayedAs: string;
}

/** pg-boss's job states, as its `job_state` enum spells them. */
export type BossState = "created" | "retry" | "active" | "completed" | "cancelled" | "failed";

const STATES: Record<BossState, JobState> = {
  created: "pending",
  retry: "pending",
  active: "running",
  completed: "succeeded",
  failed: "failed",
  cancelled: "canceled",
};

/** Our state of a pg-boss state (undefined for one we do not know). */
export function ourState(bossState: string): JobState | undefined {
  return Object.hasOwn(STATES, bossState) ? STATES[bossState as BossState] : undefined;
}

/** The pg-boss states that are our `state`, for filtering in SQL. */
export function bossStates(state: JobState): BossState[] {
  return (Object.keys(STATES) as BossState[]).filter((s) => STATES[s] === state);
}

/** One row of pg-boss's job table, as jobs.ts selects it. */
export interface BossJobRow {
  id: string;
  state: BossState;
  data: JobSpec;
  created_on: Date | string;
  started_on: Date | string | null;
  completed_on: Date | string | null;
  retry_count: number;
  output: JsonValue | null;
  source_id?: string | null;
  source_output?: JsonValue | null;
  dead_letter_id?: string | null;
}

export function toJobRecord(row: BossJobRow): JobRecord {
  const state = STATES[row.state];
  const record: JobRecord = {
    id: row.id,
    state,
    target: row.data.target,
    requester: row.data.requester.user,
    createdAt: iso(row.created_on),
    // pg-boss counts retries, and counts one only when a claimed job is claimed again.
    attempts: row.started_on === null ? 0 : row.retry_count + 1,
  };
  if (row.started_on !== null) record.startedAt = iso(row.started_on);
  if (row.completed_on !== null) record.finishedAt = iso(row.completed_on);
  const output = asJobOutput(row.output);
  if (state === "succeeded" && output?.ok === true) record.result = output.result;
  if (state === "failed") record.error = failureOf(row.output);
  if (row.dead_letter_id) record.deadLetterId = row.dead_letter_id;
  return record;
}

/** A row of the dead-letter queue: pg-boss copied the failed job there with its provenance. */
export function toDeadLetter(row: BossJobRow): DeadLetter {
  const letter: DeadLetter = {
    id: row.id,
    jobId: row.source_id ?? "",
    target: row.data.target,
    requester: row.data.requester.user,
    failedAt: iso(row.created_on),
    error: failureOf(row.source_output ?? null),
  };
  const replayed = replayedAs(row);
  if (replayed !== undefined) letter.replayedAs = replayed;
  return letter;
}

export function replayedAs(row: Pick<BossJobRow, "state" | "output">): string | undefined {
  const out = row.output as Partial<ReplayOutput> | null;
  return row.state === "completed" && typeof out?.replayedAs === "string" ? out.replayedAs : undefined;
}

function asJobOutput(output: JsonValue | null): JobOutput | undefined {
  if (output === null || typeof output !== "object" || Array.isArray(output)) return undefined;
  if (output["ok"] === true && typeof output["result"] === "object") return output as unknown as JobOutput;
  if (output["ok"] === false && typeof output["error"] === "object") return output as unknown as JobOutput;
  return undefined;
}

/** The failure a settled output records; pg-boss's own (expiry, shutdown) become "Interrupted". */
function failureOf(output: JsonValue | null): JobFailure {
  const ours = asJobOutput(output);
  if (ours?.ok === false) return ours.error;
  return {
    class: "transient",
    reason: "Interrupted",
    message: "the job's run ended without an outcome (its worker stopped or it outlived its timeout)",
  };
}

function iso(value: Date | string): string {
  return (value instanceof Date ? value : new Date(value)).toISOString();
}
