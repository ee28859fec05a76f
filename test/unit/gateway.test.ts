// The gateway's invocation pipeline through its HTTP API (fastify inject), with in-memory
// ports: every refusal answers problem details naming the rule or the field, and the
// successes are normalized, redacted and cut. The PostgreSQL-backed ports and the real
// drivers are tested in test/integration.
import type { FastifyInstance } from "fastify";
import { beforeEach, describe, expect, it } from "vitest";
import { ConnectorError } from "../../controller/src/api/errors.ts";
import type { InstanceRow } from "../../controller/src/api/model.ts";
import type { Connector, ConnectorType, JsonValue } from "../../controller/src/api/types.ts";
import { StaticCatalog } from "../../controller/src/catalog/fileCatalog.ts";
import { InFlight } from "../../controller/src/gateway/admission.ts";
import { issueApproval, inputHash } from "../../controller/src/gateway/approvals.ts";
import { createHttpApi } from "../../controller/src/gateway/http.ts";
import type { InvokeDeps } from "../../controller/src/gateway/invoke.ts";
import { OperationSchemas } from "../../controller/src/gateway/payload.ts";
import type { DriverResult, OperationRunner } from "../../controller/src/gateway/ports.ts";
import { RetryBudget } from "../../controller/src/gateway/retryBudget.ts";
import { runJob } from "../../controller/src/gateway/worker.ts";
import {
  MemoryAudit,
  MemoryIdempotency,
  MemoryIdentity,
  MemoryJobs,
  MemoryLedger,
  MemoryLimiter,
} from "../support/gatewayMemory.ts";
import { MemoryBreakerStore, silentLogger } from "../support/memory.ts";

const KEY = Buffer.alloc(32, 7);
const BASE = "/v1/namespaces/team-a/connectors/web/operations";

function webType(): ConnectorType {
  const op = (name: string, extra: object) => ({
    name,
    mode: "sync" as const,
    class: "auto" as const,
    action: "connector.operation.read" as const,
    maxTimeoutMs: 500,
    ...extra,
  });
  return {
    apiVersion: "cynodeai.io/v1alpha1",
    kind: "ConnectorType",
    metadata: { name: "web", resourceVersion: "1" },
    spec: {
      displayName: "Web",
      displayNameAr: "ويب",
      dataClassification: "internal",
      approvalPolicy: "auto",
      versions: [
        {
          version: 1,
          schemaVersion: "1.0.0",
          lifecycle: "approved",
          configSchema: { type: "object" },
          healthProbe: { kind: "http" },
          operations: [
            op("fetch", {
              maxPayloadBytes: 2048,
              retryPolicy: { maxRetries: 2, initialDelayMs: 1, maxDelayMs: 2, retryableStatusCodes: [503] },
              inputSchema: {
                type: "object",
                additionalProperties: false,
                required: ["path"],
                properties: {
                  path: { type: "string", pattern: "^/" },
                  limit: { type: "integer", minimum: 1, default: 10 },
                },
              },
              outputSchema: {
                type: "object",
                required: ["status"],
                properties: { status: { type: "integer" } },
              },
              redact: ["token", "/items/*/secret"],
            }),
            op("mutate", {
              class: "approval_required",
              action: "connector.operation.invoke",
              inputSchema: { type: "object", properties: { body: { type: "string" } } },
            }),
            op("purge", { class: "forbidden", action: "connector.operation.invoke" }),
            op("deliver", { mode: "async", action: "connector.operation.invoke" }),
            op("refusing", { onOversize: "refuse", maxPayloadBytes: 64 }),
          ],
        },
      ],
    },
  };
}

function connector(): Connector {
  return {
    apiVersion: "cynodeai.io/v1alpha1",
    kind: "Connector",
    metadata: { name: "web", namespace: "team-a", uid: "uid-web", generation: 1 },
    spec: { type: "web", typeVersion: 1, owner: { type: "group", id: "g" }, config: {} },
    status: { state: "active", instanceId: "inst-1", appliedGeneration: 1 },
  };
}

function row(): InstanceRow {
  const now = new Date();
  return {
    id: "inst-1",
    namespace: "team-a",
    name: "web",
    uid: "uid-web",
    owner: { type: "group", id: "g" },
    projectId: "proj-1",
    type: "web",
    typeVersion: 1,
    config: {},
    configSchemaVersion: "1.0.0",
    credentialsRef: null,
    policy: {
      actionScope: ["connector.operation.invoke", "connector.operation.read"],
      operations: [
        { name: "fetch", class: "auto", action: "connector.operation.read" },
        { name: "mutate", class: "approval_required", action: "connector.operation.invoke" },
        { name: "deliver", class: "auto", action: "connector.operation.invoke" },
        { name: "refusing", class: "auto", action: "connector.operation.read" },
      ],
    },
    limits: { maxParallelInvocations: 2 },
    rateLimitPolicy: { rps: 1000, burst: 1000 },
    enabled: true,
    state: "active",
    secretVersion: null,
    secretFingerprint: null,
    lastSuccessAt: now,
    lastError: null,
    lastErrorClass: null,
    healthCheckedAt: now,
    appliedGeneration: 1,
    specHash: "h",
    createdAt: now,
    updatedAt: now,
    deletedAt: null,
  };
}

describe("the gateway's invocation pipeline", () => {
  let app: FastifyInstance;
  let identity: MemoryIdentity;
  let audit: MemoryAudit;
  let limiter: MemoryLimiter;
  let breakers: MemoryBreakerStore;
  let jobs: MemoryJobs;
  let instance: InstanceRow;
  let results: (DriverResult | ConnectorError)[];
  let calls: { op: string; input: unknown }[];
  let deps: InvokeDeps;

  const call = (op: string, body: object, user = "alice", headers: Record<string, string> = {}) =>
    app.inject({
      method: "POST",
      url: `${BASE}/${op}`,
      payload: body,
      headers: { authorization: `Bearer token-${user}`, ...headers },
    });

  beforeEach(async () => {
    identity = new MemoryIdentity();
    identity.grant("alice", "get", "team-a");
    identity.grant("alice", "invoke", "team-a");
    identity.grant("bob", "approve", "team-a");
    identity.grant("alice", "approve", "team-a");
    audit = new MemoryAudit();
    breakers = new MemoryBreakerStore();
    limiter = new MemoryLimiter(breakers);
    jobs = new MemoryJobs();
    instance = row();
    results = [];
    calls = [];
    const run: OperationRunner = async (op, input) => {
      calls.push({ op, input });
      const next = results.shift() ?? { data: { status: 200 } };
      if (next instanceof ConnectorError) throw next;
      return next;
    };
    deps = {
      authn: identity,
      authz: identity,
      catalog: new StaticCatalog([webType()]),
      connectors: { getConnector: (key) => (key === "team-a/web" ? connector() : undefined) },
      instances: { get: async () => instance },
      run,
      credentials: { resolve: async () => undefined },
      breakers,
      breakerSettings: { failureThreshold: 3, cooldownMs: 60_000 },
      schemas: new OperationSchemas(),
      retryBudget: new RetryBudget(),
      maxResultBytes: 1 << 20,
      maxRetries: 5,
      limiter,
      inFlight: new InFlight(100),
      perUser: { rps: 1000, burst: 1000 },
      idempotency: new MemoryIdempotency(),
      jobs,
      approvalKey: KEY,
      ledger: new MemoryLedger(),
      audit,
      idempotencyTtlMs: 60_000,
      idempotencyWaitMs: 10,
      clock: { now: () => new Date() },
      log: silentLogger,
    };
    app = await createHttpApi(deps, {
      bodyLimit: 64 * 1024,
      maxDepth: 32,
      log: silentLogger,
      types: () => [webType()],
    });
  });

  it("runs an allowed operation and answers the normalized response, redacted", async () => {
    results.push({
      data: { status: 200, token: "t0ps3cret", items: [{ secret: "s1", id: 1 }] },
      providerStatusCode: 200,
    });
    const res = await call("fetch", { input: { path: "/x" } }, "alice", { "x-correlation-id": "corr-1" });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.data).toEqual({ status: 200, token: "[REDACTED]", items: [{ secret: "[REDACTED]", id: 1 }] });
    expect(body.redactionsApplied).toEqual(["/items/0/secret", "/token"]);
    expect(body.truncated).toBe(false);
    expect(body.metadata).toMatchObject({
      correlationId: "corr-1",
      connector: "web",
      operation: "fetch",
      executionMode: "sync",
      providerStatusCode: 200,
      retryCount: 0,
    });
    expect(res.headers["x-request-id"]).toBe(body.metadata.requestId);
    expect(calls[0]!.input).toEqual({ path: "/x", limit: 10 }); // the schema's default applied
    expect(audit.rows.at(-1)).toMatchObject({
      actor: "alice",
      outcome: "success",
      connectorInstanceId: "inst-1",
      projectId: "proj-1",
    });
    expect(JSON.stringify(audit.rows)).not.toContain("t0ps3cret");
  });

  it("says a Connector does not exist (404) only to a caller RBAC lets get it; to others 403", async () => {
    const missing = (user: string) =>
      app.inject({
        method: "POST",
        url: "/v1/namespaces/team-a/connectors/nope/operations/fetch",
        payload: { input: { path: "/" } },
        headers: { authorization: `Bearer token-${user}` },
      });
    const alice = await missing("alice");
    expect(alice.statusCode).toBe(404);
    expect(alice.json()).toMatchObject({ reason: "ConnectorNotFound" });
    const mallory = await missing("mallory");
    expect(mallory.statusCode).toBe(403);
    expect(mallory.json()).toMatchObject({ rule: "rbac", reason: "Forbidden" });
    expect(JSON.stringify(mallory.json())).not.toContain("does not exist");
  });

  it("refuses without a token (401) and without RBAC (403), naming the verb", async () => {
    const anon = await app.inject({
      method: "POST",
      url: `${BASE}/fetch`,
      payload: { input: { path: "/" } },
    });
    expect(anon.statusCode).toBe(401);
    expect(anon.headers["content-type"]).toContain("application/problem+json");
    expect(anon.json()).toMatchObject({ errorClass: "policy_denied", reason: "Unauthenticated" });
    const mallory = await call("fetch", { input: { path: "/" } }, "mallory");
    expect(mallory.statusCode).toBe(403);
    expect(mallory.json()).toMatchObject({ rule: "rbac", reason: "Forbidden" });
    expect(mallory.json().detail).toContain("may not get connectors");
    expect(audit.rows.at(-1)).toMatchObject({ actor: "mallory", outcome: "denied" });
    expect(calls).toEqual([]);
  });

  it("answers 404 for an unknown connector and an unknown operation", async () => {
    const none = await app.inject({
      method: "POST",
      url: "/v1/namespaces/team-a/connectors/nope/operations/fetch",
      payload: {},
      headers: { authorization: "Bearer token-alice" },
    });
    expect(none.statusCode).toBe(404);
    expect((await call("teleport", {})).statusCode).toBe(404);
  });

  it("never runs class C, whatever the policy says", async () => {
    instance.policy.operations.push({ name: "purge", class: "auto", action: "connector.operation.invoke" });
    const res = await call("purge", {});
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ rule: "class-c-forbidden", errorClass: "policy_denied" });
    expect(calls).toEqual([]);
  });

  it("refuses an operation outside the allowlist", async () => {
    instance.policy.operations = instance.policy.operations.filter((o) => o.name !== "fetch");
    const res = await call("fetch", { input: { path: "/" } });
    expect(res.statusCode).toBe(403);
    expect(res.json().rule).toBe("not-in-allowlist");
  });

  it("runs class B only with a valid approval from someone else, once", async () => {
    const input = { body: "hello" };
    const claims = {
      uid: "uid-web",
      namespace: "team-a",
      name: "web",
      operation: "mutate",
      inputHash: inputHash(input),
      requester: "alice",
    };
    expect((await call("mutate", { input })).json().rule).toBe("approval-required");
    const wrong = issueApproval(
      KEY,
      { ...claims, inputHash: inputHash({ body: "other" }), approver: "bob" },
      Date.now(),
      60_000,
    );
    const r1 = await call("mutate", { input, approval: wrong.token });
    expect(r1.json()).toMatchObject({ rule: "approval-invalid" });
    expect(r1.json().detail).toContain("another input");
    const self = issueApproval(KEY, { ...claims, approver: "alice" }, Date.now(), 60_000);
    expect((await call("mutate", { input, approval: self.token })).json().rule).toBe("self-approval");
    const forged = issueApproval(Buffer.alloc(32, 9), { ...claims, approver: "bob" }, Date.now(), 60_000);
    expect((await call("mutate", { input, approval: forged.token })).json().detail).toContain("signature");
    const expired = issueApproval(KEY, { ...claims, approver: "bob" }, Date.now() - 120_000, 60_000);
    expect((await call("mutate", { input, approval: expired.token })).json().detail).toContain("expired");

    // Issued through the API by bob (who holds approve), used once by alice.
    const issued = await app.inject({
      method: "POST",
      url: "/v1/namespaces/team-a/connectors/web/approvals",
      payload: { operation: "mutate", input, requester: "alice" },
      headers: { authorization: "Bearer token-bob" },
    });
    expect(issued.statusCode).toBe(201);
    const ok = await call("mutate", { input, approval: issued.json().approval });
    expect(ok.statusCode).toBe(200);
    const replay = await call("mutate", { input, approval: issued.json().approval });
    expect(replay.statusCode).toBe(403);
    expect(replay.json().rule).toBe("approval-replayed");
    expect(calls.map((c) => c.op)).toEqual(["mutate"]);
    // Nobody approves their own call through the API either.
    const selfIssued = await app.inject({
      method: "POST",
      url: "/v1/namespaces/team-a/connectors/web/approvals",
      payload: { operation: "mutate", input, requester: "alice" },
      headers: { authorization: "Bearer token-alice" },
    });
    expect(selfIssued.json()).toMatchObject({ status: 403, rule: "self-approval" });
  });

  it("refuses bad input naming the field, and malformed or oversized bodies", async () => {
    const bad = await call("fetch", { input: { path: "relative", limit: 0 } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().problems).toEqual(
      expect.arrayContaining([
        { path: "input.path", message: 'must match pattern "^/"' },
        { path: "input.limit", message: "must be >= 1" },
      ]),
    );
    const unknownField = await call("fetch", { input: { path: "/" }, extra: 1 });
    expect(unknownField.statusCode).toBe(400);
    expect(unknownField.json().problems[0].path).toBe("extra");
    const notJson = await app.inject({
      method: "POST",
      url: `${BASE}/fetch`,
      payload: "{nope",
      headers: { authorization: "Bearer token-alice", "content-type": "application/json" },
    });
    expect(notJson.json()).toMatchObject({ status: 400, reason: "InvalidJson" });
    const deep = await app.inject({
      method: "POST",
      url: `${BASE}/fetch`,
      payload: `{"input":${"[".repeat(5000)}${"]".repeat(5000)}}`,
      headers: { authorization: "Bearer token-alice", "content-type": "application/json" },
    });
    expect(deep.json()).toMatchObject({ status: 400, reason: "InvalidJson" });
    const huge = await call("fetch", { input: { path: `/${"x".repeat(100_000)}` } });
    expect(huge.json()).toMatchObject({ status: 413, reason: "PayloadTooLarge" });
    const badName = await app.inject({
      method: "POST",
      url: "/v1/namespaces/team-a/connectors/..%2f..%2fetc/operations/fetch",
      payload: {},
      headers: { authorization: "Bearer token-alice" },
    });
    expect(badName.statusCode).toBe(400);
    expect(calls).toEqual([]);
  });

  it("answers 503 with Retry-After when the instance is not active or its breaker is open", async () => {
    instance.state = "degraded";
    const degraded = await call("fetch", { input: { path: "/" } });
    expect(degraded.statusCode).toBe(503);
    expect(degraded.headers["retry-after"]).toBeDefined();
    instance = row();
    instance.enabled = false;
    instance.state = "disabled";
    expect((await call("fetch", { input: { path: "/" } })).json().detail).toContain("disabled");
    instance = row();
    for (let i = 0; i < 3; i++)
      results.push(new ConnectorError("transient", "ConnectionFailed", "connection refused"));
    const failing = await call("fetch", { input: { path: "/" } });
    expect(failing.json()).toMatchObject({ status: 502, errorClass: "transient" });
    expect(failing.json().detail).toBe("connection refused");
    const open = await call("fetch", { input: { path: "/" } });
    expect(open.json()).toMatchObject({ status: 503, reason: "CircuitOpen" });
    expect(calls.length).toBe(3); // retried twice, then the breaker stopped the calls
  });

  it("retries only what the policy retries", async () => {
    results.push(
      new ConnectorError("transient", "UnexpectedStatus", "HTTP 503", { providerStatusCode: 503 }),
      { data: { status: 200 } },
    );
    const res = await call("fetch", { input: { path: "/" } });
    expect(res.json().metadata.retryCount).toBe(1);
    results.push(
      new ConnectorError("transient", "UnexpectedStatus", "HTTP 500", { providerStatusCode: 500 }),
    );
    expect((await call("fetch", { input: { path: "/" } })).statusCode).toBe(502);
    expect(calls.length).toBe(3); // 500 is not in retryableStatusCodes
    results.push(
      new ConnectorError("permanent", "UnexpectedStatus", "HTTP 404", { providerStatusCode: 404 }),
    );
    expect((await call("fetch", { input: { path: "/" } })).statusCode).toBe(502);
    expect(calls.length).toBe(4);
  });

  it("rate limits with 429 and Retry-After, and caps parallel calls", async () => {
    instance.rateLimitPolicy = { rps: 1, burst: 1 };
    expect((await call("fetch", { input: { path: "/" } })).statusCode).toBe(200);
    const limited = await call("fetch", { input: { path: "/" } });
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toMatchObject({ errorClass: "quota_exceeded", reason: "RateLimited" });
    expect(Number(limited.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    instance.rateLimitPolicy = null;
    limiter.slots.set("inst-1", new Set(["a", "b"]));
    const busy = await call("fetch", { input: { path: "/" } });
    expect(busy.json()).toMatchObject({ status: 503, reason: "Busy" });
  });

  it("answers a duplicate idempotency key with the original result, and refuses it with another input", async () => {
    results.push({ data: { status: 201 } }, { data: { status: 202 } });
    const first = await call("fetch", { input: { path: "/a" }, idempotencyKey: "k-1" });
    const again = await call("fetch", { input: { path: "/a" }, idempotencyKey: "k-1" });
    expect(again.json().data).toEqual(first.json().data);
    expect(again.json().metadata.idempotentReplay).toBe(true);
    expect(calls.length).toBe(1);
    // The duplicate is an invocation too: audited as answered from the store.
    expect(audit.rows.find((r) => r.requestId === again.headers["x-request-id"])).toMatchObject({
      actor: "alice",
      outcome: "success",
      providerStatusCode: null,
      details: { idempotentReplay: true },
    });
    const other = await call("fetch", { input: { path: "/b" }, idempotencyKey: "k-1" });
    expect(other.json()).toMatchObject({ status: 409, reason: "IdempotencyConflict" });
    // A duplicate of a call that failed for good replays the failure, audited as one.
    results.splice(0);
    results.push(new ConnectorError("validation_error", "InvalidInput", "path: leaves baseUrl"));
    const bad = await call("fetch", { input: { path: "/c" }, idempotencyKey: "k-2" });
    const badAgain = await call("fetch", { input: { path: "/c" }, idempotencyKey: "k-2" });
    expect(badAgain.json()).toEqual(bad.json());
    expect(calls.length).toBe(2);
    expect(audit.rows.find((r) => r.requestId === badAgain.headers["x-request-id"])).toMatchObject({
      outcome: "failure",
      details: { idempotentReplay: true, errorClass: "validation_error", reason: "InvalidInput" },
    });
    expect(audit.rows.filter((r) => r.operation === "fetch")).toHaveLength(5);
  });

  it("audits a failed call with the retries it made and the provider's last status", async () => {
    // The provider answered 200, but with a result the outputSchema refuses.
    results.push({ data: { nostatus: true }, providerStatusCode: 200 });
    const refused = await call("fetch", { input: { path: "/" } });
    expect(refused.json()).toMatchObject({ status: 502, reason: "InvalidProviderResponse" });
    expect(audit.rows.at(-1)).toMatchObject({ outcome: "failure", retryCount: 0, providerStatusCode: 200 });
    const unavailable = () =>
      new ConnectorError("transient", "UnexpectedStatus", "HTTP 503", { providerStatusCode: 503 });
    results.push(unavailable(), unavailable(), unavailable());
    const spent = await call("fetch", { input: { path: "/" } });
    expect(spent.json()).toMatchObject({ status: 502, reason: "UnexpectedStatus" });
    expect(calls.length).toBe(4);
    expect(audit.rows.at(-1)).toMatchObject({ outcome: "failure", retryCount: 2, providerStatusCode: 503 });
  });

  it("refuses a result that breaks the outputSchema, and cuts or refuses an oversized one", async () => {
    results.push({ data: { nostatus: true } });
    const bad = await call("fetch", { input: { path: "/" } });
    expect(bad.json()).toMatchObject({ status: 502, reason: "InvalidProviderResponse" });
    results.push({
      data: { status: 200, items: Array.from({ length: 200 }, (_, i) => ({ id: i, text: "x".repeat(50) })) },
    });
    const big = await call("fetch", { input: { path: "/" } });
    expect(big.statusCode).toBe(200);
    expect(big.json().truncated).toBe(true);
    expect(Buffer.byteLength(JSON.stringify(big.json().data))).toBeLessThanOrEqual(2048);
    results.push({ data: { text: "y".repeat(100) } as JsonValue });
    expect((await call("refusing", {})).json()).toMatchObject({ status: 502, reason: "ResultTooLarge" });
  });

  it("times out with 504 and counts it against the breaker", async () => {
    deps.run = (_op, _input, c) =>
      new Promise((_, reject) =>
        c.signal?.addEventListener("abort", () =>
          reject(new ConnectorError("transient", "Aborted", "aborted")),
        ),
      );
    const res = await call("fetch", { input: { path: "/" } });
    expect(res.json()).toMatchObject({ status: 504, reason: "DeadlineExceeded" });
  });

  it("runs an async operation as a job: 202 with Location, then the job's result", async () => {
    expect((await call("deliver", {}, "alice")).statusCode).toBe(202);
    const sync = await call("deliver", { mode: "sync" });
    expect(sync.json()).toMatchObject({ status: 400, reason: "ModeNotSupported" });
    const accepted = await call("deliver", { idempotencyKey: "job-1" });
    const { jobId } = accepted.json();
    expect(accepted.headers.location).toBe(`/v1/jobs/${jobId}`);
    const dup = await call("deliver", { idempotencyKey: "job-1" });
    expect(dup.json().jobId).toBe(jobId);
    results.push({ data: { delivered: true } });
    await jobs.runAll((spec, ctx) => runJob(deps, spec, ctx));
    const job = await app.inject({
      method: "GET",
      url: `/v1/jobs/${jobId}`,
      headers: { authorization: "Bearer token-alice" },
    });
    expect(job.json()).toMatchObject({
      state: "succeeded",
      attempts: 1,
      // The first run is no retry: the job engine counts runs from 1.
      result: { metadata: { executionMode: "async", retryCount: 0 } },
    });
    expect(audit.rows.at(-1)).toMatchObject({ executionMode: "async", outcome: "success", retryCount: 0 });
    const stranger = await app.inject({
      method: "GET",
      url: `/v1/jobs/${jobId}`,
      headers: { authorization: "Bearer token-mallory" },
    });
    expect(stranger.statusCode).toBe(403);
    identity.grant("alice", "list", "team-a");
    const queries: unknown[] = [];
    const list = jobs.list.bind(jobs);
    Object.assign(jobs, { list: async (q: unknown) => (queries.push(q), list()) });
    // A query string is text: limit=1 is the number 1 (connectorctl jobs --limit sends it so).
    const listed = await app.inject({
      method: "GET",
      url: "/v1/jobs?namespace=team-a&state=succeeded&limit=1",
      headers: { authorization: "Bearer token-alice" },
    });
    expect(listed.statusCode, listed.body).toBe(200);
    expect(queries).toEqual([{ namespace: "team-a", state: "succeeded", limit: 1 }]);
    const notANumber = await app.inject({
      method: "GET",
      url: "/v1/jobs?namespace=team-a&limit=many",
      headers: { authorization: "Bearer token-alice" },
    });
    expect(notANumber.json()).toMatchObject({ status: 400, problems: [{ path: "querystring.limit" }] });
  });

  it("publishes the routes as OpenAPI and answers unknown routes with problem details", async () => {
    const doc = (await app.inject({ method: "GET", url: "/openapi.json" })).json();
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        "/v1/namespaces/{ns}/connectors/{name}/operations/{op}",
        "/v1/jobs/{id}",
        "/v1/catalog",
        "/v1/deadletters/{id}/replay",
      ]),
    );
    const missing = await app.inject({ method: "GET", url: "/v1/nothing" });
    expect(missing.json()).toMatchObject({ status: 404, reason: "NotFound" });
  });
});
