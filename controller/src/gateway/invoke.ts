// POST /v1/namespaces/{ns}/connectors/{name}/operations/{op}, top to bottom: authenticate,
// resolve the Connector, RBAC, input, approval and policy, state, idempotency, admission
// (the replica's in-flight guard, then rate limits and parallelism across replicas), then
// execute now (sync) or enqueue a job (async). Every outcome, refusals included, leaves as
// one audit row and one metric; errors leave as problem details.
import { canonicalJson, sha256 } from "../api/canonical.ts";
import type { Clock } from "../api/clock.ts";
import type { Logger } from "../api/logger.ts";
import { ConnectorError, classify } from "../api/errors.ts";
import type { ExecutionMode, NormalizedResponse } from "../api/invocation.ts";
import { joinPath } from "../api/problems.ts";
import type { JsonObject, JsonValue, Operation } from "../api/types.ts";
import { verifyApproval } from "./approvals.ts";
import { invocationAudit, type AuditContext } from "./audit.ts";
import {
  authenticate,
  instanceOf,
  requireActive,
  authorize,
  findOperation,
  resolveForCaller,
  type CallerDeps,
} from "./caller.ts";
import { execute, type ExecuteDeps } from "./execute.ts";
import { admit, type AdmissionDeps } from "./admission.ts";
import { byteSize } from "./payload.ts";
import { decide, VERB_OF_ACTION, type ApprovalCheck } from "./policy.ts";
import type {
  ApprovalLedger,
  AuditSink,
  IdempotencyScope,
  IdempotencyStore,
  JobQueue,
  StoredOutcome,
} from "./ports.ts";
import { invalidField, PolicyDenied, problemOf, statusOf } from "./problems.ts";

export interface InvokeBody {
  input?: JsonObject;
  idempotencyKey?: string;
  mode?: ExecutionMode;
  /** An approval token for a class B operation. */
  approval?: string;
}

export interface InvokeRequest {
  authorization: string | undefined;
  namespace: string;
  name: string;
  operation: string;
  body: InvokeBody;
  requestId: string;
  correlationId: string;
  /** Aborted when the caller goes away. */
  signal: AbortSignal;
}

export interface Reply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export interface InvocationMetrics {
  finished(type: string, operation: string, outcome: string, seconds: number): void;
}

export interface InvokeDeps extends CallerDeps, ExecuteDeps, AdmissionDeps {
  idempotency: IdempotencyStore;
  jobs: JobQueue;
  approvalKey: Buffer;
  ledger: ApprovalLedger;
  audit: AuditSink;
  idempotencyTtlMs: number;
  /** How long a duplicate waits for the first call with its key to finish. */
  idempotencyWaitMs: number;
  clock: Clock;
  log: Logger;
  metrics?: InvocationMetrics;
}

export async function invoke(d: InvokeDeps, req: InvokeRequest): Promise<Reply> {
  const started = performance.now();
  const ctx: AuditContext = {
    requestId: req.requestId,
    correlationId: req.correlationId,
    namespace: req.namespace,
    name: req.name,
    operation: req.operation,
  };
  let claimed: IdempotencyScope | undefined;
  try {
    const principal = (ctx.principal = await authenticate(d, req.authorization, req.signal));
    const resolved = await resolveForCaller(d, principal, req.namespace, req.name, req.signal);
    const op = findOperation(resolved.version, req.operation);
    ctx.type = resolved.type.metadata.name;
    await authorize(
      d,
      principal,
      op ? VERB_OF_ACTION[op.action] : "invoke",
      req.namespace,
      req.name,
      req.signal,
    );
    if (!op)
      throw invalidField(
        "UnknownOperation",
        "params.op",
        "is no operation of the Connector's type",
        `connector type ${ctx.type} version ${resolved.version.version} has no operation ${JSON.stringify(req.operation.slice(0, 128))}`,
      );
    const row = (ctx.row = await instanceOf(d, resolved, req.signal));
    const mode = (ctx.mode = req.body.mode ?? op.mode);
    const input = d.schemas.checkInput(resolved.type, resolved.version, op, req.body.input ?? {});
    if (op.maxPayloadBytes !== undefined && byteSize(input) > op.maxPayloadBytes)
      throw invalidField("PayloadTooLarge", "input", `is larger than ${op.maxPayloadBytes} bytes`);
    // A job's input is stored (jsonb), and PostgreSQL stores no U+0000 and no lone surrogate.
    const unstorable = mode === "async" ? unstorablePath(input, "input") : undefined;
    if (unstorable)
      throw invalidField(
        "InvalidInput",
        unstorable,
        "contains U+0000 or a lone surrogate, which a job cannot keep",
      );
    const approval = checkApproval(d, req, resolved.connector.metadata.uid ?? "", input, principal.user);
    ctx.approval = approval;
    const decision = decide({
      principal,
      operationName: req.operation,
      operation: op,
      policy: row.policy,
      approval,
    });
    ctx.rule = decision.rule;
    if (!decision.allowed) throw new PolicyDenied(decision.rule, decision.message);
    if (mode !== op.mode)
      throw invalidField(
        "ModeNotSupported",
        "mode",
        `must be ${op.mode}`,
        `operation ${op.name} runs ${op.mode === "async" ? "only as a job (mode: async)" : "only synchronously (mode: sync)"}`,
      );
    const active = requireActive(resolved, row);

    // The key first: a duplicate of a finished call is answered with its outcome, even though
    // the approval it carries was used up by the call it duplicates.
    const key = req.body.idempotencyKey;
    if (key !== undefined) {
      const scope: IdempotencyScope = { namespace: req.namespace, name: req.name, operation: op.name, key };
      const hash = sha256(canonicalJson({ input, mode }));
      const earlier = await claimIdempotency(d, scope, hash, leaseOf(op), req.signal);
      if (earlier) {
        // Audited as itself: a duplicate answered from the store, the provider not called.
        ctx.idempotentReplay = true;
        const failed = earlier.status >= 400 ? storedFailure(earlier) : undefined;
        finish(d, ctx, started, failed?.errorClass ?? "success", failed);
        return replayed(earlier);
      }
      claimed = scope;
    }
    if (approval.jti && !(await d.ledger.use(approval.jti, new Date(approval.expiresAt!)))) {
      // Not the call's outcome: the key stays free for the same call with a fresh approval.
      if (claimed) await d.idempotency.release(claimed);
      claimed = undefined;
      throw new PolicyDenied(
        "approval-replayed",
        "this approval has already been used (approvals are accepted once)",
      );
    }
    const reply = await admit(d, { principal, row: active, op, mode }, req.signal, async (breaker) => {
      if (mode === "async") {
        const job = await d.jobs.enqueue({
          target: { namespace: req.namespace, name: req.name, operation: op.name },
          input,
          requester: principal,
          requestId: req.requestId,
          correlationId: req.correlationId,
          ...(key !== undefined ? { idempotencyKey: key } : {}),
          retry: {
            limit: Math.min(op.retryPolicy?.maxRetries ?? 0, d.maxRetries),
            delayMs: op.retryPolicy?.initialDelayMs ?? 1000,
            maxDelayMs: op.retryPolicy?.maxDelayMs ?? 60_000,
          },
          timeoutMs: op.maxTimeoutMs,
        });
        ctx.jobId = job.id;
        return {
          status: 202,
          body: { jobId: job.id, state: "pending" },
          headers: { location: `/v1/jobs/${job.id}` },
        };
      }
      const signal = AbortSignal.any([req.signal, AbortSignal.timeout(op.maxTimeoutMs)]);
      const done = await execute(d, {
        ...resolved,
        op,
        row: active,
        input,
        signal,
        log: d.log,
        retries: "policy",
        breaker,
        onAttempt: (retryCount, status) => {
          ctx.retryCount = retryCount;
          ctx.providerStatusCode = status ?? null;
        },
      });
      ctx.providerStatusCode = done.providerStatusCode;
      ctx.retryCount = done.retryCount;
      const response: NormalizedResponse = {
        metadata: {
          requestId: req.requestId,
          correlationId: req.correlationId,
          namespace: req.namespace,
          connector: req.name,
          connectorInstanceId: active.id,
          type: resolved.type.metadata.name,
          operation: op.name,
          executionMode: "sync",
          durationMs: Math.round(performance.now() - started),
          providerStatusCode: done.providerStatusCode,
          retryCount: done.retryCount,
        },
        data: done.data,
        warnings: done.warnings,
        redactionsApplied: done.redactionsApplied,
        truncated: done.truncated,
      };
      return { status: 200, body: response };
    });
    if (claimed)
      await d.idempotency.complete(claimed, {
        status: reply.status,
        body: reply.body as never,
        ...(ctx.jobId ? { jobId: ctx.jobId } : {}),
      });
    finish(d, ctx, started, "success");
    return reply;
  } catch (err) {
    const e = classify(err);
    const problem = problemOf(e, req.requestId);
    if (claimed) await settleFailedClaim(d, claimed, e, problem).catch(() => {});
    finish(d, ctx, started, e.errorClass, e);
    return {
      status: problem.status,
      body: problem,
      ...(problem.retryAfterSeconds !== undefined
        ? { headers: { "retry-after": String(problem.retryAfterSeconds) } }
        : {}),
    };
  }
}

// eslint-disable-next-line no-control-regex
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** The path of the first string (value or key) PostgreSQL's jsonb cannot hold, if any. */
function unstorablePath(value: JsonValue, at: string): string | undefined {
  if (typeof value === "string") return UNSTORABLE.test(value) ? at : undefined;
  if (value === null || typeof value !== "object") return undefined;
  for (const [k, v] of Object.entries(value)) {
    const path = Array.isArray(value) ? `${at}[${k}]` : joinPath(at, k);
    if (!Array.isArray(value) && UNSTORABLE.test(k)) return path;
    const found = unstorablePath(v, path);
    if (found) return found;
  }
  return undefined;
}

function checkApproval(
  d: InvokeDeps,
  req: InvokeRequest,
  uid: string,
  input: JsonObject,
  requester: string,
): ApprovalCheck & { jti?: string; expiresAt?: number } {
  if (req.body.approval === undefined) return { presented: false };
  const v = verifyApproval(d.approvalKey, req.body.approval, {
    uid,
    namespace: req.namespace,
    name: req.name,
    operation: req.operation,
    input,
    requester,
    now: d.clock.now().getTime(),
  });
  if (!v.ok) return { presented: true, problem: v.problem };
  return { presented: true, approver: v.claims.approver, jti: v.claims.jti, expiresAt: v.claims.expiresAt };
}

/** undefined: this call owns the key now; otherwise what an earlier call with it answered. */
/** Past this margin beyond its longest run, a claim's replica is taken for dead. */
const IDEMPOTENCY_LEASE_MARGIN_MS = 10_000;

/**
 * How long a call holds its idempotency key: a sync call may wait for a slot as long as the
 * operation's timeout, then run that long. After it, the same call may be run again (its
 * replica died), instead of every retry meeting IdempotencyInProgress for the store's default.
 */
function leaseOf(op: Operation): number {
  return 2 * op.maxTimeoutMs + IDEMPOTENCY_LEASE_MARGIN_MS;
}

async function claimIdempotency(
  d: InvokeDeps,
  scope: IdempotencyScope,
  hash: string,
  leaseMs: number,
  signal: AbortSignal,
): Promise<StoredOutcome | undefined> {
  const claim = await d.idempotency.claim(scope, hash, d.idempotencyTtlMs, leaseMs);
  if (claim.kind === "new") return undefined;
  if (claim.kind === "replay") return claim.outcome;
  if (claim.kind === "conflict")
    throw invalidField(
      "IdempotencyConflict",
      "idempotencyKey",
      "was used with a different input",
      `idempotency key ${JSON.stringify(scope.key.slice(0, 64))} was used with a different input`,
    );
  const outcome = await d.idempotency.wait(scope, d.idempotencyWaitMs, signal);
  if (outcome) return outcome;
  throw new ConnectorError(
    "transient",
    "IdempotencyInProgress",
    `a call with idempotency key ${JSON.stringify(scope.key.slice(0, 64))} is still in progress`,
    { retryAfterMs: 1000 },
  );
}

function replayed(outcome: StoredOutcome): Reply {
  const body = outcome.body as unknown as NormalizedResponse;
  if (outcome.status === 200 && body?.metadata)
    return { status: 200, body: { ...body, metadata: { ...body.metadata, idempotentReplay: true } } };
  return {
    status: outcome.status,
    body: outcome.body,
    ...(outcome.jobId ? { headers: { location: `/v1/jobs/${outcome.jobId}` } } : {}),
  };
}

/** The failure a stored problem document describes (a duplicate of a call that failed for good). */
function storedFailure(outcome: StoredOutcome): ConnectorError {
  const p = outcome.body as { errorClass?: ConnectorError["errorClass"]; reason?: string; detail?: string };
  return new ConnectorError(
    p.errorClass ?? "permanent",
    p.reason ?? "IdempotentReplay",
    p.detail ?? `the call with this idempotency key answered ${outcome.status}`,
  );
}

/** A failure that would happen again is the answer for the key; a passing one frees it for a retry. */
async function settleFailedClaim(
  d: InvokeDeps,
  scope: IdempotencyScope,
  e: ConnectorError,
  problem: object,
): Promise<void> {
  if (e.errorClass === "transient" || e.errorClass === "quota_exceeded" || statusOf(e) >= 500)
    await d.idempotency.release(scope);
  else await d.idempotency.complete(scope, { status: statusOf(e), body: problem as never });
}

function finish(
  d: InvokeDeps,
  ctx: AuditContext,
  started: number,
  outcome: string,
  err?: ConnectorError,
): void {
  const seconds = (performance.now() - started) / 1000;
  d.metrics?.finished(ctx.type ?? "unknown", ctx.operation, outcome, seconds);
  // An unauthenticated caller is nobody to audit: the API server's own audit log has the attempt.
  if (ctx.principal) d.audit.record(invocationAudit(ctx, Math.round(seconds * 1000), err));
}
