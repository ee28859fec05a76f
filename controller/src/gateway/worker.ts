// The job worker: runs an async operation (spec §2.2) on whichever replica the job engine
// hands it to. The Connector is read again (it may have changed since the call was
// accepted), the instance must still be active, a parallelism slot is waited for, and the
// operation runs once: the job engine retries transient failures per the operation's policy
// and dead-letters what exhausts them.
import { ConnectorError, classify } from "../api/errors.ts";
import type { NormalizedResponse } from "../api/invocation.ts";
import { invocationAudit, type AuditContext } from "./audit.ts";
import { findOperation, instanceOf, requireActive, resolveConnector } from "./caller.ts";
import { circuitOpen } from "./admission.ts";
import { execute, retryable } from "./execute.ts";
import type { InvokeDeps } from "./invoke.ts";
import type { JobOutcome, JobSpec } from "./ports.ts";

export async function runJob(
  d: InvokeDeps,
  spec: JobSpec,
  job: { jobId: string; attempt: number; signal: AbortSignal },
): Promise<JobOutcome> {
  const started = performance.now();
  const { namespace, name, operation } = spec.target;
  const ctx: AuditContext = {
    requestId: spec.requestId,
    correlationId: spec.correlationId,
    namespace,
    name,
    operation,
    principal: spec.requester,
    mode: "async",
    jobId: job.jobId,
    retryCount: retriesBefore(job.attempt),
  };
  let op;
  try {
    const resolved = resolveConnector(d, namespace, name);
    ctx.type = resolved.type.metadata.name;
    op = findOperation(resolved.version, operation);
    if (!op || op.class === "forbidden")
      throw new ConnectorError(
        "permanent",
        "UnknownOperation",
        `operation ${operation} is no longer runnable on this connector's type`,
      );
    const row = requireActive(resolved, (ctx.row = await instanceOf(d, resolved, job.signal)));
    const slot = await d.limiter.admit(
      {
        instanceId: row.id,
        buckets: [],
        ...(row.limits?.maxParallelInvocations ? { maxParallel: row.limits.maxParallelInvocations } : {}),
        backpressure: "queue",
        queueDepth: Math.max(1, row.limits?.queueDepth ?? 1),
        maxWaitMs: op.maxTimeoutMs,
        leaseMs: op.maxTimeoutMs + 30_000,
        breaker: { ...d.breakerSettings, trialTimeoutMs: op.maxTimeoutMs },
      },
      job.signal,
    );
    if (!slot.admitted && slot.reason === "circuit_open") throw circuitOpen(slot.retryAfterMs);
    if (!slot.admitted)
      throw new ConnectorError(
        "transient",
        "Busy",
        "no parallelism slot of this connector came free in time",
        {
          retryAfterMs: slot.retryAfterMs,
        },
      );
    try {
      const signal = AbortSignal.any([job.signal, AbortSignal.timeout(op.maxTimeoutMs)]);
      const done = await execute(d, {
        ...resolved,
        op,
        row,
        input: spec.input,
        signal,
        log: d.log,
        retries: "none",
        breaker: slot.breaker ?? { phase: "closed", failures: 0 },
        onAttempt: (_retry, status) => (ctx.providerStatusCode = status ?? null),
      });
      ctx.providerStatusCode = done.providerStatusCode;
      const result: NormalizedResponse = {
        metadata: {
          requestId: spec.requestId,
          correlationId: spec.correlationId,
          namespace,
          connector: name,
          connectorInstanceId: row.id,
          type: resolved.type.metadata.name,
          operation,
          executionMode: "async",
          durationMs: Math.round(performance.now() - started),
          providerStatusCode: done.providerStatusCode,
          retryCount: retriesBefore(job.attempt),
        },
        data: done.data,
        warnings: done.warnings,
        redactionsApplied: done.redactionsApplied,
        truncated: done.truncated,
      };
      d.audit.record(invocationAudit(ctx, Math.round(performance.now() - started)));
      d.metrics?.finished(ctx.type, operation, "success", (performance.now() - started) / 1000);
      return { ok: true, result };
    } finally {
      if (slot.slot) await d.limiter.release(slot.slot);
    }
  } catch (err) {
    const e = classify(err);
    d.audit.record(invocationAudit(ctx, Math.round(performance.now() - started), e));
    d.metrics?.finished(ctx.type ?? "unknown", operation, e.errorClass, (performance.now() - started) / 1000);
    const passing = e.errorClass === "transient" || e.errorClass === "quota_exceeded";
    return {
      ok: false,
      error: { class: e.errorClass, reason: e.reason, message: e.message },
      retry:
        passing &&
        (op ? retryable(e, op) || ["InstanceNotActive", "Busy", "CircuitOpen"].includes(e.reason) : true),
    };
  }
}

/** The retries before this run: the job engine counts runs from 1 (the first is no retry). */
function retriesBefore(attempt: number): number {
  return Math.max(0, attempt - 1);
}
