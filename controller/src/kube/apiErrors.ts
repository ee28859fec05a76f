// The one place that turns a failed Kubernetes API call into a ConnectorError. client-node's
// errors print whole bodies and headers; what leaves here is the status code, the API's own
// message, and for network failures the code of the cause (an unreachable API server says
// "connect ECONNREFUSED 127.0.0.1:6443", not just "fetch failed").
import { ApiException } from "@kubernetes/client-node";
import { ConnectorError, errorChainMessage } from "../api/errors.ts";

/** The HTTP status of a failed API call, or of a watch's ERROR event. */
export function apiStatus(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  const c = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof c === "number" ? c : undefined;
}

/** Retry-After of a 429 or 503, in milliseconds. */
export function apiRetryAfterMs(err: unknown): number | undefined {
  if (!(err instanceof ApiException)) return undefined;
  const raw = (err.headers as Record<string, string> | undefined)?.["retry-after"];
  const seconds = raw === undefined ? NaN : Number(raw);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}

function apiMessage(err: ApiException<unknown>): string {
  let body: unknown = err.body;
  if (typeof body === "string") {
    try {
      body = JSON.parse(body);
    } catch {
      body = { message: body };
    }
  }
  const b = body as { message?: unknown; reason?: unknown } | undefined;
  return String(b?.message ?? b?.reason ?? "").slice(0, 300);
}

export interface KubeErrorOptions {
  /** The reason of a 404 (a missing ServiceAccount is ServiceAccountNotFound). Default NotFound. */
  notFoundReason?: string;
}

/**
 * Every status is transient (the object or the permission may appear; the queue backs off)
 * except 429, which is quota_exceeded with the server's Retry-After.
 */
export function kubeError(err: unknown, what: string, opts: KubeErrorOptions = {}): ConnectorError {
  if (err instanceof ConnectorError) return err;
  if (err instanceof ApiException) {
    const code = err.code;
    const msg = `${what}: ${code} ${apiMessage(err)}`.trim();
    const extra = { providerStatusCode: code };
    switch (code) {
      case 404:
        return new ConnectorError("transient", opts.notFoundReason ?? "NotFound", msg, extra);
      case 409:
        return new ConnectorError("transient", "Conflict", msg, extra);
      case 401:
      case 403:
        return new ConnectorError(
          "transient",
          "KubernetesForbidden",
          `${msg} (check the controller's RBAC)`,
          extra,
        );
      case 429:
        return new ConnectorError("quota_exceeded", "KubernetesThrottled", msg, {
          ...extra,
          retryAfterMs: apiRetryAfterMs(err) ?? 1_000,
        });
      default:
        return new ConnectorError("transient", "KubernetesApiError", msg, extra);
    }
  }
  return new ConnectorError("transient", "KubernetesApiError", `${what}: ${errorChainMessage(err)}`);
}
