// The ports of the gateway: interfaces only. kube/ (TokenReview, SubjectAccessReview),
// store/ (PostgreSQL: limits, breakers, idempotency, audit) and the job engine implement
// them; the gateway's tests use in-memory versions of the same interfaces. Everything that
// must hold across gateway replicas lives behind these, in PostgreSQL.
import type { BreakerSettings, BreakerState } from "../api/breaker.ts";
import type { Logger } from "../api/logger.ts";
import type { AuditEvent, InstanceRow, ProbeInput } from "../api/model.ts";
import type { Connector, ErrorClass, JsonObject, JsonValue, TypeVersion } from "../api/types.ts";
import type {
  DeadLetter,
  InvocationTarget,
  JobRecord,
  NormalizedResponse,
  Principal,
} from "../api/invocation.ts";

/** TokenReview: who a bearer token belongs to (undefined: not authenticated). Cached briefly. */
export interface Authenticator {
  authenticate(token: string, signal?: AbortSignal): Promise<Principal | undefined>;
}

export interface ResourceAttributes {
  verb: string;
  namespace: string;
  /** Always "connectors" for the gateway's checks. */
  resource: string;
  name?: string;
  subresource?: string;
}

/** SubjectAccessReview: may this principal do this? Cached briefly. */
export interface Authorizer {
  allowed(
    principal: Principal,
    attributes: ResourceAttributes,
    signal?: AbortSignal,
  ): Promise<{ allowed: boolean; reason?: string }>;
}

// ---- limits (spec §6, §14), exact across replicas -------------------------------------

/** One token bucket: `rps` sustained, `burst` at once (GCRA). */
export interface RateBucket {
  /** e.g. "instance:<id>", "user:<name>", "project:<id>" */
  key: string;
  rps: number;
  burst: number;
}

export interface AdmissionRequest {
  instanceId: string;
  /** All-or-nothing: a call takes one token from every bucket, or from none. */
  buckets: RateBucket[];
  /** maxParallelInvocations of the instance (no cap when absent). */
  maxParallel?: number;
  /** When every slot is taken: refuse at once, or wait in a queue of at most `queueDepth`. */
  backpressure: "reject" | "queue";
  queueDepth: number;
  /** How long a queued call may wait for a slot (the operation's timeout). */
  maxWaitMs: number;
  /** How long a slot is held before it counts as abandoned (a replica that died holding it). */
  leaseMs: number;
  /**
   * The instance's breaker, consulted in the same round trip (an open breaker refuses with
   * `circuit_open`; half-open admits only the single trial). Absent: not consulted.
   */
  breaker?: BreakerSettings;
}

export type Admission =
  | {
      admitted: true;
      slot: Slot | undefined;
      /**
       * With `req.breaker`: closed, or half-open with this call as its trial. Closed at zero
       * failures means a success need not be reported (BreakerStore.success would not write).
       */
      breaker?: BreakerState;
    }
  | { admitted: false; reason: "rate_limited"; bucket: string; retryAfterMs: number }
  | { admitted: false; reason: "busy"; retryAfterMs: number }
  | { admitted: false; reason: "queue_full"; retryAfterMs: number }
  | { admitted: false; reason: "circuit_open"; retryAfterMs: number };

/** A held slot of an instance's maxParallelInvocations. */
export interface Slot {
  instanceId: string;
  id: string;
}

export interface Limiter {
  /**
   * One token from every bucket and a slot, or nothing. A queued call that waited
   * `maxWaitMs` is `busy`; one whose signal aborts throws the signal's reason.
   */
  admit(req: AdmissionRequest, signal?: AbortSignal): Promise<Admission>;
  release(slot: Slot): Promise<void>;
}

// ---- the circuit breaker, shared by the controller and every gateway replica -------------

export type { BreakerSettings, BreakerState, BreakerStore } from "../api/breaker.ts";

// ---- idempotency (spec §2.3) -------------------------------------------------------------

export interface IdempotencyScope {
  namespace: string;
  name: string;
  operation: string;
  key: string;
}

/** What is kept of a finished call, to answer its duplicates with. */
export interface StoredOutcome {
  status: number;
  /** The normalized response, or the problem document of a failure that must not be repeated. */
  body: JsonValue;
  /** For an async call: the job it created. */
  jobId?: string;
}

export type IdempotencyClaim =
  | { kind: "new" }
  | { kind: "replay"; outcome: StoredOutcome }
  | { kind: "in_progress" }
  /** The key was used with a different input. */
  | { kind: "conflict" };

export interface IdempotencyStore {
  /**
   * Claims the key for this request (by the hash of its canonical input), or says who has it.
   * An in-progress claim is its claimer's for `leaseMs` (the store's default when absent; make
   * it outlast the operation's timeout): past it, the claimer is taken for dead and the same
   * request may claim the key again. A key whose TTL passed is free for any request.
   */
  claim(
    scope: IdempotencyScope,
    requestHash: string,
    ttlMs: number,
    leaseMs?: number,
  ): Promise<IdempotencyClaim>;
  /**
   * Waits (up to `waitMs`) for an in-progress claim to finish; undefined if it did not, or if
   * the claim went away meanwhile (released, or its lease passed): the caller may claim again.
   */
  wait(scope: IdempotencyScope, waitMs: number, signal?: AbortSignal): Promise<StoredOutcome | undefined>;
  complete(scope: IdempotencyScope, outcome: StoredOutcome): Promise<void>;
  /** Lets the key be used again (a transient failure the caller may retry). */
  release(scope: IdempotencyScope): Promise<void>;
}

// ---- async jobs (spec §2.2) --------------------------------------------------------------

export interface JobSpec {
  target: InvocationTarget;
  input: JsonObject;
  requester: Principal;
  requestId: string;
  correlationId: string;
  idempotencyKey?: string;
  /** From the operation's retryPolicy (transient failures only). */
  retry: { limit: number; delayMs: number; maxDelayMs: number };
  /** The operation's timeout: a run past it is aborted. */
  timeoutMs: number;
}

/** What the worker's handler reports for one run. */
export type JobOutcome =
  | { ok: true; result: NormalizedResponse }
  /**
   * `retry: true` for a transient failure: the engine runs the job again while attempts remain
   * (`JobSpec.retry.limit`, with backoff) and dead-letters it when they run out. `retry: false`:
   * the job fails at once, with no retry and no dead letter.
   */
  | { ok: false; error: { class: ErrorClass; reason: string; message: string }; retry: boolean };

export interface JobQueue {
  enqueue(spec: JobSpec): Promise<{ id: string }>;
  get(id: string): Promise<JobRecord | undefined>;
  list(filter: {
    namespace?: string;
    name?: string;
    state?: JobRecord["state"];
    limit?: number;
  }): Promise<JobRecord[]>;
  /** Cancels a pending job, or aborts a running one (on whichever replica runs it). */
  cancel(id: string): Promise<JobRecord | undefined>;
  deadLetters(filter: { namespace?: string; limit?: number }): Promise<DeadLetter[]>;
  deadLetter(id: string): Promise<DeadLetter | undefined>;
  /** Enqueues the dead letter's job again: same input, same idempotency key. */
  replay(deadLetterId: string): Promise<{ id: string }>;
  /**
   * Runs jobs with `handler` on this replica (`concurrency` at once) until the signal aborts.
   * `attempt` counts the job's runs: 1 for its first, 2 for its first retry.
   */
  work(
    handler: (
      spec: JobSpec,
      ctx: { jobId: string; attempt: number; signal: AbortSignal },
    ) => Promise<JobOutcome>,
    opts: { concurrency: number },
    signal: AbortSignal,
  ): Promise<void>;
}

// ---- execution -------------------------------------------------------------------------

/** What a driver returned for one operation (drivers/run.ts runOperation). */
export interface DriverResult {
  data: JsonValue;
  providerStatusCode?: number;
  warnings?: string[];
  remoteChangeIds?: string[];
}

/** Runs one attempt of an operation through the type's driver (egress, deadline, scrubbing). Throws ConnectorError. */
export type OperationRunner = (
  operation: string,
  input: JsonObject,
  call: ProbeInput,
  log: Logger,
) => Promise<DriverResult>;

/** The credentials of a Connector, resolved for one call with the tenant's identity and dropped after it. */
export interface CredentialSource {
  resolve(
    connector: Connector,
    version: TypeVersion,
    row: InstanceRow,
    signal: AbortSignal,
  ): Promise<Record<string, string> | undefined>;
}

/** The instance row of a Connector (the applied generation), as the controller wrote it. */
export interface InstanceSource {
  get(connector: Connector, signal?: AbortSignal): Promise<InstanceRow | undefined>;
}

/** Approvals are accepted once: true the first time an id is used, false on a replay. */
export interface ApprovalLedger {
  use(id: string, expiresAt: Date): Promise<boolean>;
}

/** Audit rows, written in batches off the hot path; `flush` writes what is waiting (on SIGTERM too). */
export interface AuditSink {
  record(event: AuditEvent): void;
  flush(): Promise<void>;
}
