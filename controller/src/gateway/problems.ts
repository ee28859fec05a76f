// Errors leave the gateway as RFC 9457 problem details carrying the failure class of spec
// §5.1: the HTTP status follows the reason where one decides it, else the class. Never a
// stack trace, never a secret (messages are ours, built from classed errors).
import { ConnectorError } from "../api/errors.ts";
import type { Problem } from "../api/problems.ts";
import type { ErrorClass } from "../api/types.ts";

export const PROBLEM_CONTENT_TYPE = "application/problem+json";
const TYPE_BASE = "https://cynodeai.io/problems/";

export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  detail: string;
  /** The request this answers (also the X-Request-Id header and the audit row's request_id). */
  instance: string;
  errorClass: ErrorClass;
  reason: string;
  /** For validation errors: each field path and what was expected. */
  problems?: Problem[];
  /** For policy denials: the rule that decided. */
  rule?: string;
  retryAfterSeconds?: number;
}

/** Statuses a reason decides whatever its class. */
const STATUS_BY_REASON: Record<string, number> = {
  Unauthenticated: 401,
  Forbidden: 403,
  ConnectorNotFound: 404,
  UnknownOperation: 404,
  JobNotFound: 404,
  DeadLetterNotFound: 404,
  NotFound: 404,
  IdempotencyConflict: 409,
  IdempotencyInProgress: 409,
  JobNotCancelable: 409,
  PayloadTooLarge: 413,
  UnsupportedMediaType: 415,
  InstanceNotActive: 503,
  CircuitOpen: 503,
  Busy: 503,
  QueueFull: 503,
  VaultUnavailable: 503,
  DatabaseUnavailable: 503,
  KubernetesApiError: 503,
  ShuttingDown: 503,
  DeadlineExceeded: 504,
  Timeout: 504,
  OperationNotImplemented: 501,
  NoDriver: 501,
  InvalidTypeSchema: 500,
  InternalError: 500,
};

/** What each class means over HTTP when no reason decides. */
const STATUS_BY_CLASS: Record<ErrorClass, number> = {
  validation_error: 400,
  policy_denied: 403,
  quota_exceeded: 429,
  // The provider failed and retries (if any) did not help, or it answered something unusable.
  transient: 502,
  permanent: 502,
};

/** Every status the API can answer with, for the OpenAPI document and the tests. */
export const DECLARED_ERROR_STATUSES = [
  400, 401, 403, 404, 409, 413, 415, 429, 500, 501, 502, 503, 504,
] as const;

const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  429: "Too Many Requests",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

export function statusOf(err: ConnectorError): number {
  return STATUS_BY_REASON[err.reason] ?? STATUS_BY_CLASS[err.errorClass];
}

function kebab(reason: string): string {
  return reason.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase();
}

/** A refusal of one field of the request (a problems entry names it), with `detail` as its message. */
export function invalidField(reason: string, field: string, what: string, detail?: string): ConnectorError {
  return new ConnectorError("validation_error", reason, detail ?? `${field}: ${what}`, {
    problems: [{ path: field, message: what }],
  });
}

/** A policy denial carries the rule that decided. */
export class PolicyDenied extends ConnectorError {
  readonly rule: string;
  constructor(rule: string, message: string, reason = "PolicyDenied") {
    super("policy_denied", reason, message);
    this.rule = rule;
  }
}

export function problemOf(err: ConnectorError, requestId: string): ProblemDocument {
  const status = statusOf(err);
  return {
    type: `${TYPE_BASE}${kebab(err.reason)}`,
    title: TITLES[status] ?? "Error",
    status,
    detail: err.message,
    instance: requestId,
    errorClass: err.errorClass,
    reason: err.reason,
    ...(err.problems.length ? { problems: err.problems } : {}),
    ...(err instanceof PolicyDenied ? { rule: err.rule } : {}),
    ...(err.retryAfterMs !== undefined
      ? { retryAfterSeconds: Math.max(1, Math.ceil(err.retryAfterMs / 1000)) }
      : {}),
  };
}
