// The JSON Schemas of the gateway's routes: fastify validates requests against them and
// serializes responses with them, and @fastify/swagger publishes them as /openapi.json.

export const API_DESCRIPTION = [
  "Runs the operations each ConnectorType declares on a Connector, for callers that never see a credential.",
  "Authenticate with a Kubernetes bearer token; Kubernetes RBAC on `connectors` decides who may call what",
  "(`invoke` for connector.operation.invoke, `get` for connector.operation.read, `approve` to approve class B calls).",
  "Errors are RFC 9457 problem details (application/problem+json) carrying the failure class.",
].join(" ");

const DNS_LABEL = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
const DNS_SUBDOMAIN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

const namespace = {
  type: "string",
  minLength: 1,
  maxLength: 63,
  pattern: DNS_LABEL,
  description: "the Connector's namespace",
};
const name = {
  type: "string",
  minLength: 1,
  maxLength: 253,
  pattern: DNS_SUBDOMAIN,
  description: "the Connector's name",
};

export const connectorParams = {
  type: "object",
  required: ["ns", "name"],
  properties: { ns: namespace, name },
} as const;

export const operationParams = {
  type: "object",
  required: ["ns", "name", "op"],
  properties: {
    ns: namespace,
    name,
    op: {
      type: "string",
      minLength: 1,
      maxLength: 128,
      pattern: "^[A-Za-z][A-Za-z0-9_.-]*$",
      description: "the operation, as the catalog names it",
    },
  },
} as const;

export const idParams = {
  type: "object",
  required: ["id"],
  properties: { id: { type: "string", minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9-]+$" } },
} as const;

export const correlationHeaders = {
  type: "object",
  properties: {
    "x-correlation-id": {
      type: "string",
      maxLength: 128,
      description: "ties this call to others (the audit row's correlation_id)",
    },
    "x-request-id": {
      type: "string",
      maxLength: 128,
      description: "the caller's request id, echoed back (else one is made)",
    },
  },
} as const;

const printable = "^[\\x21-\\x7e]+$";

export const invokeBody = {
  type: "object",
  additionalProperties: false,
  properties: {
    input: {
      type: "object",
      description: "the operation's input, checked against its inputSchema (see /v1/catalog)",
    },
    idempotencyKey: {
      type: "string",
      minLength: 1,
      maxLength: 255,
      pattern: printable,
      description: "a duplicate within the key's time to live returns the original result",
    },
    mode: {
      type: "string",
      enum: ["sync", "async"],
      description: "the operation's declared mode is the default; the other is refused",
    },
    approval: {
      type: "string",
      minLength: 1,
      maxLength: 4096,
      pattern: printable,
      description: "an approval token, for a class B operation",
    },
  },
} as const;

export const approvalBody = {
  type: "object",
  additionalProperties: false,
  required: ["operation", "requester"],
  properties: {
    operation: { type: "string", minLength: 1, maxLength: 128, pattern: "^[A-Za-z][A-Za-z0-9_.-]*$" },
    input: { type: "object", description: "the exact input the approved call will carry" },
    requester: {
      type: "string",
      minLength: 1,
      maxLength: 253,
      description: "the username that will make the call",
    },
    ttlSeconds: {
      type: "integer",
      minimum: 1,
      maximum: 3600,
      description: "how long the approval holds (default 600)",
    },
  },
} as const;

export interface JobQuery {
  namespace: string;
  name?: string;
  state?: "pending" | "running" | "succeeded" | "failed" | "canceled";
  limit?: number;
}

export const jobQuery = {
  type: "object",
  required: ["namespace"],
  additionalProperties: false,
  properties: {
    namespace,
    name,
    state: { type: "string", enum: ["pending", "running", "succeeded", "failed", "canceled"] },
    limit: { type: "integer", minimum: 1, maximum: 1000 },
  },
} as const;

export const deadLetterQuery = {
  type: "object",
  required: ["namespace"],
  additionalProperties: false,
  properties: { namespace, limit: { type: "integer", minimum: 1, maximum: 1000 } },
} as const;

export const anyObject = { type: "object", additionalProperties: true } as const;

export const problem = {
  description: "RFC 9457 problem details",
  type: "object",
  properties: {
    type: { type: "string" },
    title: { type: "string" },
    status: { type: "integer" },
    detail: { type: "string" },
    instance: { type: "string" },
    errorClass: {
      type: "string",
      enum: ["transient", "permanent", "validation_error", "policy_denied", "quota_exceeded"],
    },
    reason: { type: "string" },
    problems: {
      type: "array",
      items: { type: "object", properties: { path: { type: "string" }, message: { type: "string" } } },
    },
    rule: { type: "string" },
    retryAfterSeconds: { type: "integer" },
  },
} as const;

export const normalizedResponse = {
  description: "spec §16: the normalized response",
  type: "object",
  properties: {
    metadata: anyObject,
    data: {},
    warnings: { type: "array", items: { type: "string" } },
    redactionsApplied: { type: "array", items: { type: "string" } },
    truncated: { type: "boolean" },
  },
} as const;

export const accepted = {
  description: "the job that will run the operation (see Location)",
  type: "object",
  properties: { jobId: { type: "string" }, state: { type: "string" } },
} as const;

export const approvalIssued = {
  type: "object",
  properties: { approval: { type: "string" }, approvalId: { type: "string" }, expiresAt: { type: "string" } },
} as const;

export const job = { description: "an async job", ...anyObject } as const;
