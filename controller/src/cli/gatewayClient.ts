// connectorctl's client of the gateway's HTTP API (controller/src/gateway/http.ts): each call
// one request with the caller's bearer token and a deadline, on Node's fetch; answers parsed
// as JSON; problem details, answers that are none, and a gateway out of reach all leave as a
// GatewayError. The token goes in the Authorization header and nowhere else.
import { errorChainMessage } from "../api/errors.ts";
import type { JobRecord, JobState, NormalizedResponse } from "../api/invocation.ts";
import type { ErrorClass, JsonObject } from "../api/types.ts";
import { GatewayError, type Failure } from "./gatewayFailure.ts";
import { truncate } from "./table.ts";

export const DEFAULT_GATEWAY_URL = "http://127.0.0.1:8090";

export interface GatewayTarget {
  /** http(s)://host:port, with a path prefix when the gateway is served under one. */
  url: string;
  token: string;
  /** The longest any one request may take. */
  timeoutMs: number;
}

export interface InvokeRequest {
  input: JsonObject;
  idempotencyKey?: string;
  mode?: "sync" | "async";
  approval?: string;
}

/** A sync operation's normalized response, or the job an async one became. */
export type InvokeAnswer =
  { kind: "response"; response: NormalizedResponse } | { kind: "job"; jobId: string };

export interface ApprovalRequest {
  operation: string;
  input: JsonObject;
  requester: string;
  ttlSeconds?: number;
}

export interface IssuedApproval {
  approval: string;
  approvalId: string;
  expiresAt: string;
}

export interface JobQuery {
  namespace: string;
  name?: string;
  state?: JobState;
  limit?: number;
}

const ERROR_CLASSES: readonly string[] = [
  "transient",
  "permanent",
  "validation_error",
  "policy_denied",
  "quota_exceeded",
] satisfies ErrorClass[];

/** The gateway's URL for messages: never the user and password a URL may carry. */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    return u.toString().replace(/\/$/, "");
  } catch {
    return "(the gateway URL)";
  }
}

/** A problem document as the gateway writes it (gateway/problems.ts), or undefined. */
function problemIn(status: number, body: unknown, requestId: string | undefined): Failure | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const p = body as Record<string, unknown>;
  if (typeof p.errorClass !== "string" || !ERROR_CLASSES.includes(p.errorClass)) return undefined;
  if (typeof p.reason !== "string") return undefined;
  const problems = Array.isArray(p.problems)
    ? p.problems.filter(
        (x): x is { path: string; message: string } =>
          typeof x?.path === "string" && typeof x?.message === "string",
      )
    : [];
  return {
    status: typeof p.status === "number" ? p.status : status,
    errorClass: p.errorClass as ErrorClass,
    reason: p.reason,
    detail: typeof p.detail === "string" ? p.detail : String(p.title ?? ""),
    ...(typeof p.rule === "string" ? { rule: p.rule } : {}),
    ...(problems.length ? { problems } : {}),
    ...(typeof p.instance === "string" ? { requestId: p.instance } : requestId ? { requestId } : {}),
    ...(typeof p.retryAfterSeconds === "number" ? { retryAfterSeconds: p.retryAfterSeconds } : {}),
  };
}

export function gatewayClient(target: GatewayTarget, fetchFn: typeof fetch = fetch) {
  const base = target.url.replace(/\/+$/, "");
  const shown = displayUrl(target.url);

  async function call(method: "GET" | "POST", path: string, body?: unknown) {
    let res: Response;
    try {
      res = await fetchFn(`${base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${target.token}`,
          accept: "application/json, application/problem+json",
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(target.timeoutMs),
      });
    } catch (err) {
      const timedOut = (err as Error)?.name === "TimeoutError";
      throw new GatewayError({
        errorClass: "transient",
        reason: timedOut ? "GatewayTimeout" : "GatewayUnreachable",
        detail: timedOut
          ? `the gateway at ${shown} did not answer ${method} ${path} within ${target.timeoutMs / 1000}s`
          : `cannot reach the gateway at ${shown}: ${errorChainMessage(err)}`,
      });
    }
    const requestId = res.headers.get("x-request-id") ?? undefined;
    // Whatever answered may echo the request (a debugging proxy): never show the token again.
    const text = (await res.text().catch(() => "")).replaceAll(target.token, "[REDACTED]");
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (res.status >= 400) {
      throw new GatewayError(
        problemIn(res.status, parsed, requestId) ?? {
          status: res.status,
          reason: "UnexpectedAnswer",
          detail: `${method} ${shown}${path} answered HTTP ${res.status} without problem details${text ? `: ${truncate(text, 200)}` : ""}`,
          ...(requestId ? { requestId } : {}),
        },
      );
    }
    if (typeof parsed !== "object" || parsed === null)
      throw new GatewayError({
        status: res.status,
        reason: "UnexpectedAnswer",
        detail: `${method} ${shown}${path} answered HTTP ${res.status} with no JSON object (is ${shown} the gateway?)`,
      });
    return { status: res.status, body: parsed as Record<string, unknown> };
  }

  const seg = encodeURIComponent;
  return {
    async invoke(ns: string, name: string, operation: string, req: InvokeRequest): Promise<InvokeAnswer> {
      const r = await call(
        "POST",
        `/v1/namespaces/${seg(ns)}/connectors/${seg(name)}/operations/${seg(operation)}`,
        req,
      );
      if (r.status === 202 && typeof r.body.jobId === "string") return { kind: "job", jobId: r.body.jobId };
      return { kind: "response", response: r.body as unknown as NormalizedResponse };
    },
    async approve(ns: string, name: string, req: ApprovalRequest): Promise<IssuedApproval> {
      const r = await call("POST", `/v1/namespaces/${seg(ns)}/connectors/${seg(name)}/approvals`, req);
      return r.body as unknown as IssuedApproval;
    },
    async job(id: string): Promise<JobRecord> {
      return (await call("GET", `/v1/jobs/${seg(id)}`)).body as unknown as JobRecord;
    },
    async cancelJob(id: string): Promise<JobRecord> {
      return (await call("POST", `/v1/jobs/${seg(id)}/cancel`)).body as unknown as JobRecord;
    },
    async jobs(q: JobQuery): Promise<JobRecord[]> {
      const query = new URLSearchParams({ namespace: q.namespace });
      if (q.name) query.set("name", q.name);
      if (q.state) query.set("state", q.state);
      if (q.limit) query.set("limit", String(q.limit));
      const r = await call("GET", `/v1/jobs?${query}`);
      return (r.body.items ?? []) as JobRecord[];
    },
  };
}

export type GatewayClient = ReturnType<typeof gatewayClient>;
