// The gateway's API beyond invoking: jobs and dead letters, approvals, the catalog and a
// Connector's status. Each authenticates, checks RBAC on the Connector concerned, and
// answers a plain value or a problem document.
import { ConnectorError, classify } from "../api/errors.ts";
import type { Principal } from "../api/invocation.ts";
import type { ConnectorType, JsonObject } from "../api/types.ts";
import { DEFAULT_APPROVAL_TTL_MS, inputHash, issueApproval } from "./approvals.ts";
import { authenticate, authorize, findOperation, resolveConnector, resolveForCaller } from "./caller.ts";
import type { InvokeDeps, Reply } from "./invoke.ts";
import { APPROVE_VERB, VERB_OF_ACTION } from "./policy.ts";
import { PolicyDenied, problemOf } from "./problems.ts";

/** Runs an endpoint: its value as 200 (or the status it sets), any error as problem details. */
export async function answer(requestId: string, fn: () => Promise<Reply | object>): Promise<Reply> {
  try {
    const out = await fn();
    return "status" in out && "body" in out ? (out as Reply) : { status: 200, body: out };
  } catch (err) {
    const problem = problemOf(classify(err), requestId);
    return {
      status: problem.status,
      body: problem,
      ...(problem.retryAfterSeconds !== undefined
        ? { headers: { "retry-after": String(problem.retryAfterSeconds) } }
        : {}),
    };
  }
}

async function caller(d: InvokeDeps, authorization: string | undefined): Promise<Principal> {
  return authenticate(d, authorization);
}

export async function getJob(d: InvokeDeps, authorization: string | undefined, id: string) {
  const principal = await caller(d, authorization);
  const job = await d.jobs.get(id);
  if (!job) throw new ConnectorError("validation_error", "JobNotFound", `job ${id} does not exist`);
  await authorize(d, principal, "get", job.target.namespace, job.target.name);
  return job;
}

export async function cancelJob(d: InvokeDeps, authorization: string | undefined, id: string) {
  const principal = await caller(d, authorization);
  const job = await d.jobs.get(id);
  if (!job) throw new ConnectorError("validation_error", "JobNotFound", `job ${id} does not exist`);
  await authorize(d, principal, "invoke", job.target.namespace, job.target.name);
  if (job.state === "succeeded" || job.state === "failed" || job.state === "canceled")
    throw new ConnectorError(
      "validation_error",
      "JobNotCancelable",
      `job ${id} has already ${job.state === "canceled" ? "been canceled" : job.state}`,
    );
  return (await d.jobs.cancel(id)) ?? job;
}

export async function listJobs(
  d: InvokeDeps,
  authorization: string | undefined,
  q: {
    namespace: string;
    name?: string;
    state?: "pending" | "running" | "succeeded" | "failed" | "canceled";
    limit?: number;
  },
) {
  const principal = await caller(d, authorization);
  await authorize(d, principal, q.name ? "get" : "list", q.namespace, q.name);
  return { items: await d.jobs.list(q) };
}

export async function listDeadLetters(
  d: InvokeDeps,
  authorization: string | undefined,
  q: { namespace: string; limit?: number },
) {
  const principal = await caller(d, authorization);
  await authorize(d, principal, "list", q.namespace, undefined);
  return { items: await d.jobs.deadLetters(q) };
}

export async function replayDeadLetter(
  d: InvokeDeps,
  authorization: string | undefined,
  id: string,
): Promise<Reply> {
  const principal = await caller(d, authorization);
  const letter = await d.jobs.deadLetter(id);
  if (!letter)
    throw new ConnectorError("validation_error", "DeadLetterNotFound", `dead letter ${id} does not exist`);
  await authorize(d, principal, "invoke", letter.target.namespace, letter.target.name);
  const job = await d.jobs.replay(id);
  return {
    status: 202,
    body: { jobId: job.id, state: "pending" },
    headers: { location: `/v1/jobs/${job.id}` },
  };
}

export interface ApprovalRequest {
  operation: string;
  input?: JsonObject;
  /** The principal who will make the call (username as the API server's TokenReview names it). */
  requester: string;
  ttlSeconds?: number;
}

/** Dual control: a principal with the `approve` verb, not the requester, approves one exact call. */
export async function approve(
  d: InvokeDeps,
  authorization: string | undefined,
  ns: string,
  name: string,
  req: ApprovalRequest,
) {
  const approver = await caller(d, authorization);
  const { connector, type, version } = await resolveForCaller(d, approver, ns, name);
  await authorize(d, approver, APPROVE_VERB, ns, name);
  const op = findOperation(version, req.operation);
  if (!op)
    throw new ConnectorError(
      "validation_error",
      "UnknownOperation",
      `type ${type.metadata.name} has no operation ${JSON.stringify(req.operation.slice(0, 128))}`,
    );
  if (op.class === "forbidden")
    throw new PolicyDenied(
      "class-c-forbidden",
      `operation ${op.name} is class C (forbidden): it can never be approved`,
    );
  if (op.class === "auto")
    throw new ConnectorError(
      "validation_error",
      "ApprovalNotNeeded",
      `operation ${op.name} is class A (auto) and needs no approval`,
    );
  if (req.requester === approver.user)
    throw new PolicyDenied(
      "self-approval",
      "an approval must come from a different principal than the requester",
    );
  const input = d.schemas.checkInput(type, version, op, req.input ?? {});
  const { token, claims } = issueApproval(
    d.approvalKey,
    {
      uid: connector.metadata.uid ?? "",
      namespace: ns,
      name,
      operation: op.name,
      inputHash: inputHash(input),
      requester: req.requester,
      approver: approver.user,
    },
    d.clock.now().getTime(),
    (req.ttlSeconds ?? DEFAULT_APPROVAL_TTL_MS / 1000) * 1000,
  );
  d.audit.record({
    requestId: claims.jti,
    correlationId: connector.metadata.uid ?? null,
    actor: approver.user,
    namespace: ns,
    name,
    operation: "approval_issued",
    executionMode: null,
    outcome: "success",
    details: {
      approvalId: claims.jti,
      approvedOperation: op.name,
      requester: req.requester,
      expiresAt: new Date(claims.expiresAt).toISOString(),
    },
  });
  return {
    status: 201,
    body: { approval: token, approvalId: claims.jti, expiresAt: new Date(claims.expiresAt).toISOString() },
  };
}

/** What the catalog offers (spec §19.9 discover): types, versions, operations with their schemas. */
export async function catalog(
  d: InvokeDeps & { types(): ConnectorType[] },
  authorization: string | undefined,
) {
  await caller(d, authorization);
  return {
    types: d.types().map((t) => ({
      name: t.metadata.name,
      displayName: t.spec.displayName,
      description: t.spec.description ?? null,
      versions: t.spec.versions
        .filter((v) => v.lifecycle !== "retired")
        .map((v) => ({
          version: v.version,
          lifecycle: v.lifecycle,
          operations: v.operations
            .filter((o) => o.class !== "forbidden")
            .map((o) => ({
              name: o.name,
              mode: o.mode,
              class: o.class,
              action: o.action,
              verb: VERB_OF_ACTION[o.action],
              maxTimeoutMs: o.maxTimeoutMs,
              supportsIdempotency: o.supportsIdempotency ?? false,
              maxPayloadBytes: o.maxPayloadBytes ?? null,
              inputSchema: o.inputSchema ?? null,
              outputSchema: o.outputSchema ?? null,
            })),
        })),
    })),
  };
}

/** A Connector's status as `kubectl get` would show it, for callers without cluster access. */
export async function connectorStatus(
  d: InvokeDeps,
  authorization: string | undefined,
  ns: string,
  name: string,
) {
  const principal = await caller(d, authorization);
  await authorize(d, principal, "get", ns, name);
  const { connector } = resolveConnector(d, ns, name);
  return {
    namespace: ns,
    name,
    uid: connector.metadata.uid,
    type: connector.spec.type,
    typeVersion: connector.spec.typeVersion,
    enabled: connector.spec.enabled ?? true,
    status: connector.status ?? {},
  };
}
