// What went wrong talking to the gateway, as connectorctl says it: one line a person can read
// (status, failure class, reason, the field or the rule, the detail, the request id) and an
// exit code a script can branch on, decided by the failure class as the gateway decides
// retries by it (spec §5.1).
import type { Problem } from "../api/problems.ts";
import type { ErrorClass } from "../api/types.ts";
import { truncate } from "./table.ts";

export interface Failure {
  /** The HTTP status, when the gateway answered. */
  status?: number;
  /** undefined: the answer was not a problem document (a proxy's page, a canceled job). */
  errorClass?: ErrorClass;
  reason: string;
  detail: string;
  /** For a policy denial: the rule that decided (rbac, not-in-allowlist, approval-required…). */
  rule?: string;
  /** For a validation error: each field and what was expected. */
  problems?: Problem[];
  /** The gateway's request id (X-Request-Id, the audit row's request_id). */
  requestId?: string;
  retryAfterSeconds?: number;
}

export class GatewayError extends Error {
  readonly failure: Failure;
  constructor(failure: Failure) {
    super(failure.detail);
    this.name = "GatewayError";
    this.failure = failure;
  }
}

export const EXIT_CODE_BY_CLASS: Record<ErrorClass, number> = {
  validation_error: 3,
  policy_denied: 4,
  quota_exceeded: 5,
  transient: 6,
  permanent: 7,
};

/** An answer that is no problem document, or a job that ended canceled. */
export const EXIT_UNCLASSED = 1;

export const EXIT_CODES_HELP = `exit codes of invoke, jobs and approve:
  0 success
  1 an answer that is no problem document (e.g. a proxy's error page), or a job that was canceled
  2 usage: bad arguments, an unreadable --input, no token
  by the failure class of the gateway's problem details (or of a failed job's error):
  3 validation_error   the request or its input was refused: fix it, do not retry as is
  4 policy_denied      no valid token (401), Kubernetes RBAC or the Connector's policy (403)
  5 quota_exceeded     a rate limit or the provider's quota: retry after the time it says
  6 transient          the provider, the gateway or the way to it failed (also: the gateway
                       cannot be reached or does not answer in time): retrying may help
  7 permanent          the provider refused or failed for good
`;

export function exitCodeOf(f: Failure): number {
  return f.errorClass ? EXIT_CODE_BY_CLASS[f.errorClass] : EXIT_UNCLASSED;
}

/** One line: `403 policy_denied Forbidden (rule rbac): … [request 6f1c…]`. */
export function formatFailure(f: Failure): string {
  const head = [f.status, f.errorClass, f.reason].filter((x) => x !== undefined).join(" ");
  const fields = (f.problems ?? []).map((p) => p.path).filter((p, i, all) => all.indexOf(p) === i);
  const where = f.rule ? ` (rule ${f.rule})` : fields.length ? ` (at ${fields.join(", ")})` : "";
  const retry = f.retryAfterSeconds !== undefined ? `; retry after ${f.retryAfterSeconds}s` : "";
  const request = f.requestId ? ` [request ${f.requestId}]` : "";
  return `${head}${where}: ${truncate(f.detail, 500)}${retry}${request}`;
}
