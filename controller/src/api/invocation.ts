// The invocation model of the gateway (DESIGN §9, spec §2, §9.2, §10.1, §16): who calls,
// what they asked for, and what they get back, as plain values shared by the HTTP API,
// the job worker, the policy code and the stores.
import type { ErrorClass, JsonValue } from "./types.ts";

/** The caller, as the API server's TokenReview authenticated them. */
export interface Principal {
  /** username (e.g. system:serviceaccount:team-a:agent, or alice@example.com) */
  user: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

export type ExecutionMode = "sync" | "async";

/** One invocation of an operation on a Connector, as the gateway hands it to execution. */
export interface InvocationTarget {
  namespace: string;
  /** The Connector's name. */
  name: string;
  operation: string;
}

/** Spec §16: what every operation returns. */
export interface NormalizedResponse {
  metadata: ResponseMetadata;
  data: JsonValue;
  warnings: string[];
  /** JSON pointers of the fields replaced by "[REDACTED]". */
  redactionsApplied: string[];
  truncated: boolean;
}

export interface ResponseMetadata {
  requestId: string;
  correlationId: string;
  namespace: string;
  connector: string;
  connectorInstanceId: string;
  type: string;
  operation: string;
  executionMode: ExecutionMode;
  durationMs: number;
  providerStatusCode: number | null;
  retryCount: number;
  /** Set when the response is a replay of an earlier call with the same idempotency key. */
  idempotentReplay?: boolean;
}

/** Async jobs (spec §2.2). */
export type JobState = "pending" | "running" | "succeeded" | "failed" | "canceled";

export interface JobRecord {
  id: string;
  state: JobState;
  target: InvocationTarget;
  requester: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  attempts: number;
  /** The normalized response, once succeeded. */
  result?: NormalizedResponse;
  /** The failure, once failed (problem details, never a secret). */
  error?: { class: ErrorClass; reason: string; message: string };
  /** The dead letter this job went to after its retries ran out. */
  deadLetterId?: string;
}

/** A job whose retries ran out; replaying it runs the same input with the same idempotency key. */
export interface DeadLetter {
  id: string;
  jobId: string;
  target: InvocationTarget;
  requester: string;
  failedAt: string;
  error: { class: ErrorClass; reason: string; message: string };
  replayedAs?: string;
}
