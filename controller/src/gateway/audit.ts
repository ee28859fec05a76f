// One audit row per invocation (spec §10.1), refusals included, with the policy context
// of §9.2 in its details: never an input, a result or a credential.
import type { ConnectorError } from "../api/errors.ts";
import type { ExecutionMode, Principal } from "../api/invocation.ts";
import type { AuditEvent, InstanceRow } from "../api/model.ts";

export interface AuditContext {
  requestId: string;
  correlationId: string;
  namespace: string;
  name: string;
  operation: string;
  principal?: Principal;
  type?: string;
  row?: InstanceRow | undefined;
  mode?: ExecutionMode;
  rule?: string;
  approval?: { approver?: string; jti?: string };
  providerStatusCode?: number | null;
  retryCount?: number;
  jobId?: string;
  /** Answered from the idempotency store: the provider was not called. */
  idempotentReplay?: boolean;
}

export function invocationAudit(ctx: AuditContext, durationMs: number, err?: ConnectorError): AuditEvent {
  const outcome = !err ? "success" : err.errorClass === "policy_denied" ? "denied" : "failure";
  return {
    requestId: ctx.requestId,
    correlationId: ctx.correlationId,
    actor: ctx.principal?.user ?? null,
    projectId: ctx.row?.projectId ?? null,
    connectorInstanceId: ctx.row?.id ?? null,
    namespace: ctx.namespace,
    name: ctx.name,
    operation: ctx.operation,
    executionMode: ctx.mode ?? null,
    outcome,
    durationMs,
    providerStatusCode: ctx.providerStatusCode ?? err?.providerStatusCode ?? null,
    retryCount: ctx.retryCount ?? 0,
    details: {
      kind: "invocation",
      // The policy evaluation context of spec §9.2.
      context: {
        userId: ctx.principal?.user ?? null,
        groups: ctx.principal?.groups ?? [],
        projectId: ctx.row?.projectId ?? null,
        connectorInstanceId: ctx.row?.id ?? null,
        connectorType: ctx.type ?? null,
        operation: ctx.operation,
        executionMode: ctx.mode ?? null,
      },
      ...(ctx.rule ? { policyRule: ctx.rule } : {}),
      ...(ctx.approval?.jti ? { approvalId: ctx.approval.jti, approver: ctx.approval.approver ?? null } : {}),
      ...(ctx.jobId ? { jobId: ctx.jobId } : {}),
      ...(ctx.idempotentReplay ? { idempotentReplay: true } : {}),
      ...(err ? { errorClass: err.errorClass, reason: err.reason, message: err.message } : {}),
    },
  };
}
