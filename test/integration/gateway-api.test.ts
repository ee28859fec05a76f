// The gateway's HTTP API, refusal by refusal, on real components: a kube-apiserver (TokenReview
// of ServiceAccount tokens made with `kubectl create token`, SubjectAccessReview against
// ordinary Roles granting `invoke` and `approve` on connectors), PostgreSQL (limits, breakers,
// idempotency, approvals, jobs, audit), the controller in this process (which makes each
// Connector active), two gateway replicas as separate processes, and a loopback provider
// (test/support/providerTarget.ts) that keeps every request it receives and checks each
// Connector's bearer token (held by a `file` SecretProvider).
//
// For every refusal: the HTTP status, problem+json, the failure class, the reason, the field
// path or the rule named, and that the provider received nothing. Then the audit rows of every
// invocation, and a scan of everything the suite saw (answers, job results, audit rows, the
// logs of the gateways and the controller, /metrics) for the Connectors' secrets.
//
// One world for the file; each case has a Connector of its own, named after it.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as yaml from "js-yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../controller/src/api/paths.ts";
import type { ResponseMetadata } from "../../controller/src/api/invocation.ts";
import type { Connector, ConnectorType, Limits, Operation } from "../../controller/src/api/types.ts";
import { typeVersionOf } from "../../controller/src/catalog/reader.ts";
import { PROBLEM_CONTENT_TYPE } from "../../controller/src/gateway/problems.ts";
import { scanForSecrets } from "../reliability/invariants.ts";
import { apply, kubectlOk } from "../support/cluster.ts";
import { condition, getConnector, httpConnector, waitConnector } from "../support/connectors.ts";
import type { ControlPlane } from "../support/controlPlane.ts";
import { fileSecrets } from "../support/fileSecrets.ts";
import { GatewayProcess } from "../support/gatewayProcess.ts";
import { startProviderTarget, type ProviderTarget } from "../support/providerTarget.ts";
import { eventually, sleep } from "../support/wait.ts";
import { startWorld, type World } from "../support/world.ts";

const NS = "gw-api";
const FILES = "gw-api-files";
/** The sync operations' timeout (fetch of the test types) and the slow provider's delay. */
const FETCH_TIMEOUT_MS = 4_000;
const SLOW_MS = FETCH_TIMEOUT_MS + 2_000;
const FETCH_CAP = 4096;
const STRICT_CAP = 2048;
const BREAKER_THRESHOLD = 3;
const RATE = { rps: 0.2, burst: 4 };

let world: World;
let cp: ControlPlane;
let target: ProviderTarget;
let gwA: GatewayProcess;
let gwB: GatewayProcess;

// ---------------------------------------------------------------------------------------
// Principals
// ---------------------------------------------------------------------------------------
const user = (sa: string) => `system:serviceaccount:${NS}:${sa}`;
/** agent: get/list/invoke; approver: get/approve; both: get/invoke/approve; stranger: nothing. */
const tokens = { agent: "", approver: "", both: "", stranger: "" };
const userOfToken = new Map<string, string>();

// ---------------------------------------------------------------------------------------
// Connectors, their types and their secrets
// ---------------------------------------------------------------------------------------
interface Case {
  type?: "gwapi" | "gwapi-alt";
  allow?: string[];
  limits?: Limits;
  enabled?: boolean;
}
const CASES: Record<string, Case> = {
  open: {},
  narrow: { allow: ["fetch"] },
  strict: { type: "gwapi-alt" },
  slow: {},
  flaky: {},
  limited: { limits: { rateLimit: RATE } },
  single: { limits: { maxParallelInvocations: 1, backpressure: "reject", queueDepth: 0 } },
  queued: { limits: { maxParallelInvocations: 1, backpressure: "queue", queueDepth: 1 } },
  off: { enabled: false },
  sick: {},
  idem: {},
  jobs: {},
  dlq: {},
};
/** Each Connector's bearer token, in the file provider: only the provider may ever see it. */
const SECRETS = new Map(
  Object.keys(CASES).map((name) => [name, `gwapi-${name}-${randomBytes(8).toString("hex")}-token`]),
);

function connector(name: string, c: Case): Connector {
  const k = httpConnector(NS, name, target.url);
  k.spec.type = c.type ?? "gwapi";
  k.spec.typeVersion = 1;
  k.spec.config = {
    baseUrl: `${target.url}/c/${name}`,
    healthPath: "/healthz",
    eventPath: "/events",
    method: "POST",
    auth: { scheme: "bearer" },
    timeoutMs: 10_000,
  };
  k.spec.credentials = {
    mode: "secretRef",
    secretRef: { provider: FILES, name, keys: { token: "token" } },
  };
  k.spec.policy = {
    allowOperations: c.allow ?? ["fetch", "mutate", "deliverEvent"],
    actionScope: ["connector.operation.read", "connector.operation.invoke"],
  };
  delete k.spec.limits;
  if (c.limits) k.spec.limits = c.limits;
  if (c.enabled === false) k.spec.enabled = false;
  k.spec.healthCheck = { intervalSeconds: 60, timeoutSeconds: 5 };
  return k;
}

/** The shipped http type's version 2 as version 1 of a type of the test's own, its operations edited. */
function testType(name: string, edit: (ops: Record<string, Operation>) => void): ConnectorType {
  const http = yaml.load(
    readFileSync(join(projectRoot, "examples/types/http.yaml"), "utf8"),
  ) as ConnectorType;
  const version = structuredClone(typeVersionOf(http, 2)!);
  version.version = 1;
  const ops = Object.fromEntries(version.operations.map((o) => [o.name, o]));
  edit(ops);
  version.operations = Object.values(ops);
  return {
    ...http,
    metadata: { name },
    spec: {
      ...http.spec,
      displayName: `${name} (gateway API test)`,
      description: "The http driver with operations shaped for the gateway API test.",
      versions: [version],
    },
  };
}

const GWAPI = testType("gwapi", (ops) => {
  Object.assign(ops.fetch!, {
    maxTimeoutMs: FETCH_TIMEOUT_MS,
    maxPayloadBytes: FETCH_CAP,
    retryPolicy: {
      maxRetries: 2,
      backoff: "exponential",
      initialDelayMs: 50,
      maxDelayMs: 100,
      retryableStatusCodes: [502, 503, 504],
    },
  });
  ops.mutate!.maxTimeoutMs = 10_000;
  Object.assign(ops.deliverEvent!, {
    maxTimeoutMs: 10_000,
    retryPolicy: {
      maxRetries: 1,
      backoff: "exponential",
      initialDelayMs: 1000,
      maxDelayMs: 1000,
      retryableStatusCodes: [500, 502, 503, 504],
    },
  });
  ops.purge = {
    name: "purge",
    mode: "sync",
    class: "forbidden",
    action: "connector.operation.invoke",
    maxTimeoutMs: 1000,
  };
});

/** A stricter outputSchema (body.items[].id strings), oversize results refused, two class B operations. */
const GWAPI_ALT = testType("gwapi-alt", (ops) => {
  const out = structuredClone(ops.fetch!.outputSchema!) as { properties: Record<string, unknown> };
  out.properties.body = {
    type: "object",
    required: ["items"],
    properties: {
      items: {
        type: "array",
        items: { type: "object", required: ["id"], properties: { id: { type: "string" } } },
      },
    },
  };
  Object.assign(ops.fetch!, {
    maxTimeoutMs: FETCH_TIMEOUT_MS,
    maxPayloadBytes: STRICT_CAP,
    onOversize: "refuse",
    outputSchema: out,
  });
  delete ops.fetch!.retryPolicy;
  ops.deliverEvent!.class = "approval_required";
});

// ---------------------------------------------------------------------------------------
// Calling the gateway
// ---------------------------------------------------------------------------------------
interface Answer {
  via: string;
  status: number;
  type: string;
  retryAfter: string | null;
  location: string | null;
  requestId: string;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

/** Every answer body the suite read (job results included), for the secret scan. */
const answers: string[] = [];
/** Every invocation made, for the audit check. */
const invocations: {
  requestId: string;
  status: number;
  user?: string;
  name: string;
  op: string;
  body: unknown;
}[] = [];
let seq = 0;

interface CallOptions {
  via?: GatewayProcess;
  /** A ServiceAccount's token (default the agent's); null: no Authorization header. */
  token?: string | null;
  /** The Authorization header as given. */
  authorization?: string;
  contentType?: string;
  /** A body sent as it is. */
  raw?: string;
}

async function call(method: string, path: string, body?: unknown, o: CallOptions = {}): Promise<Answer> {
  const g = o.via ?? gwA;
  const requestId = `gwapi-${++seq}`;
  const headers: Record<string, string> = { "x-request-id": requestId };
  if (o.authorization !== undefined) headers.authorization = o.authorization;
  else if (o.token !== null) headers.authorization = `Bearer ${o.token ?? tokens.agent}`;
  const payload = o.raw ?? (body === undefined ? undefined : JSON.stringify(body));
  if (payload !== undefined) headers["content-type"] = o.contentType ?? "application/json";
  const res = await fetch(`${g.url}${path}`, {
    method,
    headers,
    ...(payload !== undefined ? { body: payload } : {}),
  });
  const text = await res.text();
  answers.push(text);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return {
    via: g.name,
    status: res.status,
    type: res.headers.get("content-type") ?? "",
    retryAfter: res.headers.get("retry-after"),
    location: res.headers.get("location"),
    requestId: res.headers.get("x-request-id") ?? "",
    text,
    body: parsed,
  };
}

const opPath = (name: string, op: string) => `/v1/namespaces/${NS}/connectors/${name}/operations/${op}`;

async function invoke(name: string, op: string, body: unknown, o: CallOptions = {}): Promise<Answer> {
  const a = await call("POST", opPath(name, op), body, o);
  const token =
    o.authorization === undefined ? (o.token === null ? undefined : (o.token ?? tokens.agent)) : undefined;
  invocations.push({
    requestId: a.requestId,
    status: a.status,
    ...(token && userOfToken.has(token) ? { user: userOfToken.get(token)! } : {}),
    name,
    op,
    body: a.body,
  });
  return a;
}

/** Every approval token issued (a capability: in no log, audit row or metric). */
const approvals: string[] = [];

async function approve(name: string, body: object, token = tokens.approver, via = gwA): Promise<Answer> {
  const a = await call("POST", `/v1/namespaces/${NS}/connectors/${name}/approvals`, body, { token, via });
  if (a.status === 201) approvals.push(a.body.approval as string);
  return a;
}

async function approval(name: string, operation: string, input: object, requester = user("agent")) {
  const a = await approve(name, { operation, input, requester });
  expect(a.status, a.text).toBe(201);
  return a.body.approval as string;
}

/** Requests the provider received for a Connector, its health probes left out. */
const received = (name: string) => target.under(`/c/${name}`).filter((r) => !r.path.endsWith("/healthz"));
const calls = (name: string) => received(name).length;

/** Runs `fn` (which the gateway must refuse) and checks the provider received nothing for it. */
async function refused(name: string, fn: () => Promise<Answer>): Promise<Answer> {
  const before = calls(name);
  const a = await fn();
  expect(calls(name), `${name}: the provider received a refused call (${a.status} ${a.text})`).toBe(before);
  return a;
}

const STACK_TRACE = /\n\s+at |\bat [\w$.<>]+ \([^)]*:\d+:\d+\)|node:internal|\.ts:\d+:\d+/;

interface Expected {
  status: number;
  errorClass: string;
  reason: string;
  rule?: string;
  /** A problems[] entry with this path. */
  path?: string;
  detail?: RegExp;
  /** A Retry-After header (and retryAfterSeconds, the same). */
  retryAfter?: boolean;
}

function expectProblem(a: Answer, want: Expected): void {
  const why = `${a.via}: ${a.status} ${a.text}`;
  expect(a.status, why).toBe(want.status);
  expect(a.type, why).toMatch(new RegExp(`^${PROBLEM_CONTENT_TYPE.replace("+", "\\+")}`));
  expect(a.body, why).toMatchObject({
    status: want.status,
    errorClass: want.errorClass,
    reason: want.reason,
    instance: a.requestId,
  });
  expect(typeof a.body.type === "string" && typeof a.body.title === "string", why).toBe(true);
  expect(typeof a.body.detail === "string" && a.body.detail.length > 0, why).toBe(true);
  expect(a.text, `${why}: a stack trace`).not.toMatch(STACK_TRACE);
  if (want.rule !== undefined) expect(a.body.rule, why).toBe(want.rule);
  if (want.path !== undefined)
    expect(
      ((a.body.problems ?? []) as { path: string }[]).map((p) => p.path),
      why,
    ).toContain(want.path);
  if (want.detail) expect(a.body.detail, why).toMatch(want.detail);
  if (want.retryAfter) {
    expect(a.retryAfter, `${why}: Retry-After`).toMatch(/^[1-9]\d*$/);
    expect(a.body.retryAfterSeconds, why).toBe(Number(a.retryAfter));
  }
}

async function sqlRows<T>(text: string, params: unknown[] = []): Promise<T[]> {
  return (await world.sql.query(text, params)).rows as T[];
}

async function instanceId(name: string): Promise<string> {
  const [row] = await sqlRows<{ id: string }>(
    "select id::text as id from connector_instances where namespace = $1 and name = $2 and deleted_at is null",
    [NS, name],
  );
  return row!.id;
}

async function breaker(name: string) {
  const [row] = await sqlRows<{ failures: number; open: boolean }>(
    "select failures, coalesce(opened_until > now(), false) as open from gateway_breakers where instance_id = $1",
    [await instanceId(name)],
  );
  return row ?? { failures: 0, open: false };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function job(id: string, via = gwA): Promise<any> {
  const a = await call("GET", `/v1/jobs/${id}`, undefined, { via });
  expect(a.status, a.text).toBe(200);
  return a.body;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function settled(id: string, states = ["succeeded", "failed", "canceled"]): Promise<any> {
  return eventually(
    async () => {
      const j = await job(id);
      return states.includes(j.state) ? j : undefined;
    },
    `job ${id} to be ${states.join(" or ")}`,
    { timeoutMs: 60_000, intervalMs: 250 },
  );
}

// ---------------------------------------------------------------------------------------
// The world
// ---------------------------------------------------------------------------------------
function spawnGateway(name: string): GatewayProcess {
  const g = new GatewayProcess({
    kubeconfig: cp.kubeconfigPath,
    databaseUrl: world.db.url,
    name,
    namespaces: [NS],
    logLevel: "debug",
    args: ["--breaker-threshold", String(BREAKER_THRESHOLD), "--breaker-cooldown", "300s"],
  });
  world.defer(`gateway ${name}`, () => g.kill("SIGKILL"));
  return g;
}

beforeAll(async () => {
  const started = performance.now();
  world = await startWorld({ namespaces: [NS], controller: ["--watch-namespaces", NS] });
  cp = world.cp;
  target = await startProviderTarget();
  world.defer("the provider", () => target.stop());
  const files = fileSecrets(world.tempDir("gw-api-secrets-"));
  for (const [name, secret] of SECRETS) {
    files.write(NS, name, { token: secret });
    target.requireBearer(`/c/${name}`, secret);
  }
  const sa = (name: string) => ({
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name, namespace: NS },
  });
  const role = (name: string, verbs: string[]) => ({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    metadata: { name, namespace: NS },
    rules: [{ apiGroups: ["cynodeai.io"], resources: ["connectors"], verbs }],
  });
  const binding = (roleName: string, subject: string) => ({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    metadata: { name: `${subject}-${roleName}`, namespace: NS },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: roleName },
    subjects: [{ kind: "ServiceAccount", name: subject, namespace: NS }],
  });
  await apply(cp, [
    GWAPI,
    GWAPI_ALT,
    files.provider(FILES, { allowedNamespaces: [NS] }),
    ...Object.keys(tokens).map(sa),
    role("connector-invoker", ["get", "list", "invoke"]),
    role("connector-approver", ["get", "approve"]),
    binding("connector-invoker", "agent"),
    binding("connector-approver", "approver"),
    binding("connector-invoker", "both"),
    binding("connector-approver", "both"),
  ]);
  await apply(
    cp,
    Object.entries(CASES).map(([name, c]) => connector(name, c)),
  );
  gwA = spawnGateway("gw-a");
  gwB = spawnGateway("gw-b");
  const ready = Promise.all([gwA.ready(), gwB.ready()]);
  for (const name of Object.keys(tokens) as (keyof typeof tokens)[]) {
    tokens[name] = (await kubectlOk(cp, ["create", "token", name, "-n", NS])).trim();
    userOfToken.set(tokens[name], user(name));
  }
  await Promise.all(
    Object.entries(CASES).map(([name, c]) =>
      waitConnector(
        cp,
        NS,
        name,
        (k) => k.status?.state === (c.enabled === false ? "disabled" : "active"),
        c.enabled === false ? "disabled" : "active",
        120_000,
      ),
    ),
  );
  await ready;
  console.log(`gateway API world: up in ${Math.round(performance.now() - started)} ms`);
}, 600_000);

afterAll(async () => {
  await world?.stop();
});

// ---------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------
describe("a call that passes", () => {
  it("runs fetch for a caller RBAC lets use the Connector, with its credential, on either replica", async () => {
    for (const via of [gwA, gwB]) {
      const before = calls("open");
      const a = await invoke("open", "fetch", { input: { path: "/items/1" } }, { via });
      expect(a.status, a.text).toBe(200);
      expect(a.body).toMatchObject({
        metadata: {
          requestId: a.requestId,
          namespace: NS,
          connector: "open",
          type: "gwapi",
          operation: "fetch",
          executionMode: "sync",
          providerStatusCode: 200,
          retryCount: 0,
        },
        data: { status: 200, bodyFormat: "json", body: { ok: true }, truncated: false },
        truncated: false,
      });
      expect(calls("open")).toBe(before + 1);
      expect(received("open").at(-1)!.headers.authorization).toBe(`Bearer ${SECRETS.get("open")}`);
    }
  });

  it("retries a transient provider failure per the operation's policy and says so", async () => {
    target.script("/c/open/once", (_req, n) => (n === 1 ? { status: 503 } : { body: { ok: true, n } }));
    const before = calls("open");
    const a = await invoke("open", "fetch", { input: { path: "/once" } });
    expect(a.status, a.text).toBe(200);
    expect(a.body.metadata).toMatchObject({ retryCount: 1, providerStatusCode: 200 });
    expect(calls("open")).toBe(before + 2);
  });
});

describe("not authenticated, not authorized", () => {
  it("answers 401 without a token, with a garbage token and with another scheme; the provider gets nothing", async () => {
    for (const o of [
      { token: null },
      { token: "garbage.not-a-token" },
      { token: `${tokens.agent.slice(0, -8)}AAAAAAAA` },
      { authorization: `Basic ${Buffer.from("agent:pw").toString("base64")}` },
    ] as CallOptions[]) {
      const a = await refused("open", () => invoke("open", "fetch", { input: { path: "/items/1" } }, o));
      expectProblem(a, {
        status: 401,
        errorClass: "policy_denied",
        reason: "Unauthenticated",
        rule: "authentication",
      });
    }
  });

  it("answers 403 (rule rbac) to a ServiceAccount no Role lets get or invoke the Connector", async () => {
    const stranger = await refused("open", () =>
      invoke("open", "fetch", { input: { path: "/items/1" } }, { token: tokens.stranger }),
    );
    expectProblem(stranger, {
      status: 403,
      errorClass: "policy_denied",
      reason: "Forbidden",
      rule: "rbac",
      detail: new RegExp(`${user("stranger")} may not get connectors named "open"`),
    });
    // The approver may read (get) but not invoke: mutate needs `invoke`.
    const approver = await refused("open", () =>
      invoke(
        "open",
        "mutate",
        { input: { method: "POST", path: "/things" } },
        { token: tokens.approver, via: gwB },
      ),
    );
    expectProblem(approver, {
      status: 403,
      errorClass: "policy_denied",
      reason: "Forbidden",
      rule: "rbac",
      detail: /may not invoke connectors/,
    });
  });
});

describe("the Connector's policy", () => {
  it("refuses an operation outside the Connector's allowlist (rule not-in-allowlist)", async () => {
    const a = await refused("narrow", () =>
      invoke("narrow", "mutate", { input: { method: "POST", path: "/things" } }),
    );
    expectProblem(a, {
      status: 403,
      errorClass: "policy_denied",
      reason: "PolicyDenied",
      rule: "not-in-allowlist",
      detail: /spec\.policy\.allowOperations/,
    });
    const job = await refused("narrow", () =>
      invoke("narrow", "deliverEvent", { input: { type: "com.example.x", data: {} } }),
    );
    expectProblem(job, {
      status: 403,
      errorClass: "policy_denied",
      reason: "PolicyDenied",
      rule: "not-in-allowlist",
    });
  });

  it("never runs a class C (forbidden) operation, nor approves one", async () => {
    const a = await refused("open", () => invoke("open", "purge", { input: {} }));
    expectProblem(a, {
      status: 403,
      errorClass: "policy_denied",
      reason: "PolicyDenied",
      rule: "class-c-forbidden",
      detail: /class C \(forbidden\)/,
    });
    const approval = await approve("open", { operation: "purge", input: {}, requester: user("agent") });
    expectProblem(approval, {
      status: 403,
      errorClass: "policy_denied",
      reason: "PolicyDenied",
      rule: "class-c-forbidden",
    });
  });

  it("answers 404 naming the field for an unknown operation or Connector", async () => {
    const op = await refused("open", () => invoke("open", "explode", { input: {} }));
    expectProblem(op, {
      status: 404,
      errorClass: "validation_error",
      reason: "UnknownOperation",
      path: "params.op",
    });
    const name = await invoke("nobody", "fetch", { input: { path: "/" } });
    expectProblem(name, {
      status: 404,
      errorClass: "validation_error",
      reason: "ConnectorNotFound",
      path: "params.name",
    });
  });
});

describe("class B operations need an approval from another principal (dual control)", () => {
  const input = { method: "POST", path: "/things/1", body: { n: 1 } };

  it("refuses a call without an approval (rule approval-required)", async () => {
    const a = await refused("open", () => invoke("open", "mutate", { input }));
    expectProblem(a, {
      status: 403,
      errorClass: "policy_denied",
      reason: "PolicyDenied",
      rule: "approval-required",
      detail: /class B \(approval_required\)/,
    });
  });

  it("refuses an approval for another input, another operation, another Connector or a forged one (rule approval-invalid)", async () => {
    const other = await approval("open", "mutate", { ...input, path: "/things/2" });
    const a = await refused("open", () => invoke("open", "mutate", { input, approval: other }));
    expectProblem(a, {
      status: 403,
      errorClass: "policy_denied",
      reason: "PolicyDenied",
      rule: "approval-invalid",
      detail: /for another input/,
    });
    // strict's deliverEvent is class B too: its approval does not let mutate run.
    const event = { type: "com.example.approved", data: {} };
    const forEvent = await approval("strict", "deliverEvent", event);
    const b = await refused("strict", () => invoke("strict", "mutate", { input, approval: forEvent }));
    expectProblem(b, {
      status: 403,
      errorClass: "policy_denied",
      reason: "PolicyDenied",
      rule: "approval-invalid",
      detail: /for another operation/,
    });
    const forOpen = await approval("open", "mutate", input);
    const c = await refused("strict", () => invoke("strict", "mutate", { input, approval: forOpen }));
    expectProblem(c, {
      status: 403,
      errorClass: "policy_denied",
      reason: "PolicyDenied",
      rule: "approval-invalid",
      detail: /for another Connector/,
    });
    const [claims, mac] = forOpen.split(".");
    const forged = `${claims}.${mac!.slice(0, -4)}${mac!.endsWith("AAAA") ? "BBBB" : "AAAA"}`;
    const d = await refused("open", () => invoke("open", "mutate", { input, approval: forged }));
    expectProblem(d, {
      status: 403,
      errorClass: "policy_denied",
      reason: "PolicyDenied",
      rule: "approval-invalid",
      detail: /signature/,
    });
  });

  it("lets nobody approve their own call, and an approval is its requester's alone", async () => {
    const self = await approve("open", { operation: "mutate", input, requester: user("both") }, tokens.both);
    expectProblem(self, {
      status: 403,
      errorClass: "policy_denied",
      reason: "PolicyDenied",
      rule: "self-approval",
    });
    // `both` may approve, so it approves the agent's call; then tries to use that approval itself.
    const forAgent = await approve(
      "open",
      { operation: "mutate", input, requester: user("agent") },
      tokens.both,
    );
    expect(forAgent.status, forAgent.text).toBe(201);
    const a = await refused("open", () =>
      invoke("open", "mutate", { input, approval: forAgent.body.approval }, { token: tokens.both }),
    );
    expectProblem(a, {
      status: 403,
      errorClass: "policy_denied",
      reason: "PolicyDenied",
      rule: "approval-invalid",
      detail: /another requester/,
    });
  });

  it("issues no approval to a principal without the approve verb", async () => {
    for (const token of [tokens.agent, tokens.stranger]) {
      const a = await approve("open", { operation: "mutate", input, requester: user("both") }, token);
      expectProblem(a, {
        status: 403,
        errorClass: "policy_denied",
        reason: "Forbidden",
        rule: "rbac",
        detail: /may not approve connectors/,
      });
    }
  });

  it("runs a call approved by a second principal once; the same approval again is refused as replayed", async () => {
    const once = { ...input, path: "/things/once" };
    const token = await approval("open", "mutate", once);
    const before = calls("open");
    const a = await invoke("open", "mutate", { input: once, approval: token });
    expect(a.status, a.text).toBe(200);
    expect(a.body.metadata).toMatchObject({ operation: "mutate", providerStatusCode: 200 });
    expect(calls("open")).toBe(before + 1);
    expect(received("open").at(-1)).toMatchObject({
      method: "POST",
      path: "/c/open/things/once",
      body: '{"n":1}',
    });
    for (const via of [gwB, gwA]) {
      const again = await refused("open", () =>
        invoke("open", "mutate", { input: once, approval: token }, { via }),
      );
      expectProblem(again, {
        status: 403,
        errorClass: "policy_denied",
        reason: "PolicyDenied",
        rule: "approval-replayed",
      });
    }
  });
});

describe("input and output", () => {
  it("answers 400 naming the field of bad input; the provider gets nothing", async () => {
    const cases: [unknown, Partial<Expected>, CallOptions?][] = [
      [{ input: {} }, { reason: "InvalidInput", path: "input.path" }],
      [{ input: { path: "../etc/passwd" } }, { reason: "InvalidInput", path: "input.path" }],
      [{ input: { path: "/x", method: "DELETE" } }, { reason: "InvalidInput", path: "input.method" }],
      [{ input: { path: "/x", surprise: 1 } }, { reason: "InvalidInput", path: "input.surprise" }],
      [{ input: "/x" }, { reason: "InvalidRequest", path: "input" }],
      [
        { input: { path: "/x" }, mode: "async" },
        { reason: "ModeNotSupported", path: "mode" },
      ],
      [undefined, { reason: "InvalidJson", path: "(root)" }, { raw: '{"input": {' }],
    ];
    for (const [body, want, o] of cases) {
      const a = await refused("open", () => invoke("open", "fetch", body, o));
      expectProblem(a, { status: 400, errorClass: "validation_error", reason: "", ...want } as Expected);
    }
    const media = await refused("open", () =>
      invoke("open", "fetch", undefined, {
        raw: "path=/x",
        contentType: "application/x-www-form-urlencoded",
      }),
    );
    expectProblem(media, {
      status: 415,
      errorClass: "validation_error",
      reason: "UnsupportedMediaType",
      path: "headers.content-type",
    });
  });

  it("answers 413 naming input to an input over the operation's maxPayloadBytes", async () => {
    const input = { path: "/x", query: { a: "a".repeat(2500), b: "b".repeat(2500) } };
    const a = await refused("open", () => invoke("open", "fetch", { input }));
    expectProblem(a, {
      status: 413,
      errorClass: "validation_error",
      reason: "PayloadTooLarge",
      path: "input",
      detail: new RegExp(`larger than ${FETCH_CAP} bytes`),
    });
  });

  it("never returns a result its outputSchema refuses (502, permanent, the field named), and does not retry", async () => {
    target.script("/c/strict/items", { body: { items: [{ id: "a" }, { id: 7 }] } });
    const before = calls("strict");
    const a = await invoke("strict", "fetch", { input: { path: "/items" } });
    expectProblem(a, {
      status: 502,
      errorClass: "permanent",
      reason: "InvalidProviderResponse",
      path: "data.body.items[1].id",
      detail: /outputSchema/,
    });
    expect(calls("strict"), "asked once").toBe(before + 1);
    target.script("/c/strict/good", { body: { items: [{ id: "a" }] } });
    const good = await invoke("strict", "fetch", { input: { path: "/good" } });
    expect(good.status, good.text).toBe(200);
  });

  it("cuts a result over the cap and flags it (onOversize truncate), or refuses it (onOversize refuse)", async () => {
    const items = Array.from({ length: 100 }, (_, i) => ({ id: `item-${i}`, note: "x".repeat(80) }));
    target.script("/c/open/big", { body: { items } });
    const a = await invoke("open", "fetch", { input: { path: "/big" } });
    expect(a.status, a.text).toBe(200);
    expect(a.body.truncated).toBe(true);
    expect(a.body.data).toMatchObject({ status: 200, bodyFormat: "json", truncated: false });
    expect(Buffer.byteLength(JSON.stringify(a.body.data))).toBeLessThanOrEqual(FETCH_CAP);
    expect(a.body.data.body.items.length).toBeGreaterThan(0);
    expect(a.body.data.body.items.length).toBeLessThan(items.length);
    target.script("/c/strict/big", { body: { items } });
    const b = await invoke("strict", "fetch", { input: { path: "/big" } });
    expectProblem(b, {
      status: 502,
      errorClass: "permanent",
      reason: "ResultTooLarge",
      detail: new RegExp(`larger than ${STRICT_CAP} bytes and the operation refuses oversize results`),
    });
  });

  it("redacts what the operation declares and never hands back the credential a provider echoes", async () => {
    target.script("/c/open/echo", (req) => ({
      headers: { "x-request-id": String(req.headers.authorization) },
      body: { ok: true, password: "hunter2", seen: req.headers.authorization },
    }));
    const a = await invoke("open", "fetch", { input: { path: "/echo" } });
    expect(a.status, a.text).toBe(200);
    expect(a.body.data.body.password).toBe("[REDACTED]");
    expect(a.body.redactionsApplied).toEqual(["/body/password"]);
    expect(a.text).not.toContain(SECRETS.get("open")!);
    expect(received("open").at(-1)!.headers.authorization).toBe(`Bearer ${SECRETS.get("open")}`);
  });
});

describe("time, breakers and limits", () => {
  it("answers 504 when the provider is slower than maxTimeoutMs, and the shared breaker counts it", async () => {
    target.script("/c/slow/sleep", { delayMs: SLOW_MS });
    const before = calls("slow");
    const t0 = performance.now();
    const a = await invoke("slow", "fetch", { input: { path: "/sleep" } });
    const took = performance.now() - t0;
    // The gateway's deadline, or the driver's own at the same moment: a timeout either way.
    expectProblem(a, {
      status: 504,
      errorClass: "transient",
      reason: a.body?.reason === "Timeout" ? "Timeout" : "DeadlineExceeded",
      detail: new RegExp(`(did not finish|no answer) within ${FETCH_TIMEOUT_MS} ?ms`),
    });
    expect(took).toBeGreaterThanOrEqual(FETCH_TIMEOUT_MS - 50);
    expect(took).toBeLessThan(SLOW_MS);
    expect(calls("slow"), "one attempt: past the deadline nothing is retried").toBe(before + 1);
    expect(await breaker("slow")).toMatchObject({ failures: 1, open: false });
  });

  it("opens the breaker after failures in a row; the other replica then answers 503 with Retry-After", async () => {
    target.script("/c/flaky/fail", { status: 503, body: { error: "down" } });
    const before = calls("flaky");
    const a = await invoke("flaky", "fetch", { input: { path: "/fail" } }, { via: gwA });
    expectProblem(a, {
      status: 502,
      errorClass: "transient",
      reason: "UnexpectedStatus",
      detail: /HTTP 503/,
    });
    expect(calls("flaky"), "the first attempt and two retries").toBe(before + 3);
    expect(await breaker("flaky")).toMatchObject({ failures: BREAKER_THRESHOLD, open: true });
    // The breaker is shared: the other replica refuses at once. The controller hears of the
    // open breaker too (Healthy False CircuitOpen), pauses its probes and keeps the last state.
    const b = await refused("flaky", () =>
      invoke("flaky", "fetch", { input: { path: "/items/1" } }, { via: gwB }),
    );
    expectProblem(b, { status: 503, errorClass: "transient", reason: "CircuitOpen", retryAfter: true });
    // Retry-After is what is left of the cooldown (--breaker-cooldown 300s).
    expect(Number(b.retryAfter)).toBeGreaterThan(240);
    expect(Number(b.retryAfter)).toBeLessThanOrEqual(300);
    await waitConnector(
      cp,
      NS,
      "flaky",
      (k) => condition(k, "Healthy")?.reason === "CircuitOpen",
      "Healthy False CircuitOpen",
      30_000,
    );
    const c = await refused("flaky", () =>
      invoke("flaky", "fetch", { input: { path: "/items/1" } }, { via: gwA }),
    );
    expectProblem(c, { status: 503, errorClass: "transient", reason: "CircuitOpen", retryAfter: true });
  });

  it("answers 503 with Retry-After for a disabled Connector", async () => {
    const a = await refused("off", () => invoke("off", "fetch", { input: { path: "/items/1" } }));
    expectProblem(a, {
      status: 503,
      errorClass: "transient",
      reason: "InstanceNotActive",
      detail: /is disabled, not active/,
      retryAfter: true,
    });
  });

  it("answers 503 with Retry-After for a degraded Connector", async () => {
    target.script("/c/sick/healthz", { status: 503 });
    // A changed spec is probed at once; the probe fails and the active instance is degraded.
    await kubectlOk(cp, [
      "patch",
      "connector",
      "sick",
      "-n",
      NS,
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { config: { headers: { "X-Probe": "again" } } } }),
    ]);
    await waitConnector(cp, NS, "sick", (k) => k.status?.state === "degraded", "degraded", 60_000);
    for (const via of [gwA, gwB])
      await eventually(
        async () => {
          const s = await call("GET", `/v1/namespaces/${NS}/connectors/sick`, undefined, { via });
          return s.body?.status?.state === "degraded" || undefined;
        },
        `${via.name} to see sick degraded`,
        30_000,
      );
    for (const via of [gwA, gwB]) {
      const a = await refused("sick", () =>
        invoke("sick", "fetch", { input: { path: "/items/1" } }, { via }),
      );
      expectProblem(a, {
        status: 503,
        errorClass: "transient",
        reason: "InstanceNotActive",
        detail: /is degraded, not active/,
        retryAfter: true,
      });
    }
  });

  it("holds the Connector's rate limit across both replicas: never more 200s than the bucket; 429 with Retry-After", async () => {
    const before = calls("limited");
    const results: Answer[] = [];
    const t0 = performance.now();
    const until = t0 + 6_000;
    const worker = async (via: GatewayProcess, w: number) => {
      for (let i = 0; performance.now() < until; i++) {
        results.push(await invoke("limited", "fetch", { input: { path: `/items/${w}-${i}` } }, { via }));
        await sleep(100);
      }
    };
    await Promise.all([worker(gwA, 0), worker(gwB, 1), worker(gwA, 2), worker(gwB, 3)]);
    const seconds = (performance.now() - t0) / 1000;
    const ok = results.filter((r) => r.status === 200);
    const limited = results.filter((r) => r.status !== 200);
    const bucket = RATE.burst + Math.floor(RATE.rps * seconds);
    console.log(
      `rate limit ${RATE.rps}/s burst ${RATE.burst}: ${results.length} calls in ${seconds.toFixed(1)} s on two replicas, ${ok.length} answered 200 (bucket ${bucket})`,
    );
    expect(ok.length).toBeGreaterThanOrEqual(RATE.burst);
    expect(ok.length).toBeLessThanOrEqual(bucket);
    for (const r of limited)
      expectProblem(r, {
        status: 429,
        errorClass: "quota_exceeded",
        reason: "RateLimited",
        detail: /the instance rate limit is reached/,
        retryAfter: true,
      });
    expect(new Set(limited.map((r) => r.via))).toEqual(new Set(["gw-a", "gw-b"]));
    expect(calls("limited"), "the provider saw only the admitted calls").toBe(before + ok.length);
  });

  it("refuses a call past maxParallelInvocations (backpressure reject) with 503 Busy and Retry-After", async () => {
    const hold = target.hold("/c/single/held");
    const first = invoke("single", "fetch", { input: { path: "/held" } }, { via: gwA });
    await hold.arrived;
    try {
      const a = await refused("single", () =>
        invoke("single", "fetch", { input: { path: "/items/2" } }, { via: gwB }),
      );
      expectProblem(a, {
        status: 503,
        errorClass: "transient",
        reason: "Busy",
        detail: /all 1 parallel invocations/,
        retryAfter: true,
      });
    } finally {
      hold.release();
    }
    expect((await first).status).toBe(200);
  });

  it("queues a call past maxParallelInvocations (backpressure queue) and refuses one past queueDepth with 503 QueueFull", async () => {
    const hold = target.hold("/c/queued/held");
    const first = invoke("queued", "fetch", { input: { path: "/held" } }, { via: gwA });
    await hold.arrived;
    let second: Promise<Answer> | undefined;
    try {
      second = invoke("queued", "fetch", { input: { path: "/items/2" } }, { via: gwB });
      const id = await instanceId("queued");
      await eventually(
        async () =>
          (
            await sqlRows<{ n: number }>(
              "select count(*)::int as n from gateway_waiters where instance_id = $1",
              [id],
            )
          )[0]!.n >= 1 || undefined,
        "the second call to wait in the queue",
        10_000,
      );
      const a = await refused("queued", () =>
        invoke("queued", "fetch", { input: { path: "/items/3" } }, { via: gwA }),
      );
      expectProblem(a, { status: 503, errorClass: "transient", reason: "QueueFull", retryAfter: true });
    } finally {
      hold.release();
    }
    expect((await first).status).toBe(200);
    const queued = await second!;
    expect(queued.status, queued.text).toBe(200);
    expect(received("queued").map((r) => r.path)).toEqual(["/c/queued/held", "/c/queued/items/2"]);
  });
});

describe("idempotency keys", () => {
  it("replays the first result for the same key and input (the provider asked once), and answers 409 for another input", async () => {
    const key = `idem-${randomBytes(4).toString("hex")}`;
    const before = calls("idem");
    const first = await invoke(
      "idem",
      "fetch",
      { input: { path: "/items/1" }, idempotencyKey: key },
      { via: gwA },
    );
    expect(first.status, first.text).toBe(200);
    const again = await invoke(
      "idem",
      "fetch",
      { input: { path: "/items/1" }, idempotencyKey: key },
      { via: gwB },
    );
    expect(again.status, again.text).toBe(200);
    expect(again.body.metadata).toMatchObject({ idempotentReplay: true, requestId: first.requestId });
    expect(again.body.data).toEqual(first.body.data);
    expect(calls("idem"), "the provider was asked once").toBe(before + 1);
    const other = await refused("idem", () =>
      invoke("idem", "fetch", { input: { path: "/items/2" }, idempotencyKey: key }, { via: gwA }),
    );
    expectProblem(other, {
      status: 409,
      errorClass: "validation_error",
      reason: "IdempotencyConflict",
      path: "idempotencyKey",
    });
  });
});

describe("async jobs", () => {
  it("runs a job to succeeded, its result the normalized response", async () => {
    target.script("/c/jobs/events", (req) =>
      req.body.includes("com.example.fail")
        ? { status: 400, body: { error: "bad event" } }
        : { status: 202, body: { accepted: true } },
    );
    const a = await invoke("jobs", "deliverEvent", { input: { type: "com.example.ok", data: { n: 1 } } });
    expect(a.status, a.text).toBe(202);
    expect(a.body).toMatchObject({ state: "pending" });
    expect(a.location).toBe(`/v1/jobs/${a.body.jobId}`);
    const j = await settled(a.body.jobId);
    expect(j, JSON.stringify(j)).toMatchObject({
      state: "succeeded",
      target: { namespace: NS, name: "jobs", operation: "deliverEvent" },
      requester: user("agent"),
      result: {
        metadata: { executionMode: "async", operation: "deliverEvent", providerStatusCode: 202 },
        data: { status: 202, body: { accepted: true } },
      },
    });
    const listed = await call("GET", `/v1/jobs?namespace=${NS}&name=jobs`);
    expect(listed.body.items.map((x: { id: string }) => x.id)).toContain(a.body.jobId);
  });

  it("fails a job the provider refuses for good, without retrying it or dead-lettering it", async () => {
    const before = calls("jobs");
    const a = await invoke("jobs", "deliverEvent", { input: { type: "com.example.fail", data: {} } });
    expect(a.status, a.text).toBe(202);
    const j = await settled(a.body.jobId);
    expect(j, JSON.stringify(j)).toMatchObject({
      state: "failed",
      error: { class: "permanent", reason: "UnexpectedStatus" },
    });
    expect(j.deadLetterId).toBeUndefined();
    await sleep(1500);
    expect(calls("jobs"), "delivered once").toBe(before + 1);
  });

  it("cancels a running job; canceling it again is 409", async () => {
    const hold = target.hold("/c/jobs/events");
    let id = "";
    try {
      const a = await invoke("jobs", "deliverEvent", { input: { type: "com.example.cancel", data: {} } });
      expect(a.status, a.text).toBe(202);
      id = a.body.jobId;
      await hold.arrived;
      const c = await call("POST", `/v1/jobs/${id}/cancel`, undefined, { via: gwB });
      expect(c.status, c.text).toBe(200);
      const j = await settled(id);
      expect(j.state).toBe("canceled");
    } finally {
      hold.release();
    }
    const before = calls("jobs");
    await sleep(1500);
    expect((await job(id)).state, "stays canceled").toBe("canceled");
    expect(calls("jobs"), "not run again").toBe(before);
    const again = await call("POST", `/v1/jobs/${id}/cancel`);
    expectProblem(again, {
      status: 409,
      errorClass: "validation_error",
      reason: "JobNotCancelable",
      detail: /canceled/,
    });
  });

  it("dead-letters a job whose retries ran out; replaying it runs the same input and key again", async () => {
    let healthy = false;
    target.script("/c/dlq/events", () =>
      healthy ? { status: 201, body: { stored: true } } : { status: 503 },
    );
    const key = `dlq-${randomBytes(4).toString("hex")}`;
    const a = await invoke("dlq", "deliverEvent", {
      input: { type: "com.example.dlq", data: { n: 1 }, idempotencyKey: key },
      idempotencyKey: key,
    });
    expect(a.status, a.text).toBe(202);
    const failed = await settled(a.body.jobId);
    expect(failed, JSON.stringify(failed)).toMatchObject({
      state: "failed",
      error: { class: "transient", reason: "UnexpectedStatus" },
    });
    expect(failed.deadLetterId).toEqual(expect.any(String));
    expect(received("dlq").map((r) => r.headers["idempotency-key"])).toEqual([key, key]);
    const letters = await call("GET", `/v1/deadletters?namespace=${NS}`);
    expect(letters.status, letters.text).toBe(200);
    expect(letters.body.items).toContainEqual(
      expect.objectContaining({
        id: failed.deadLetterId,
        jobId: a.body.jobId,
        target: { namespace: NS, name: "dlq", operation: "deliverEvent" },
        error: expect.objectContaining({ class: "transient" }),
      }),
    );
    healthy = true;
    const replay = await call("POST", `/v1/deadletters/${failed.deadLetterId}/replay`, undefined, {
      via: gwB,
    });
    expect(replay.status, replay.text).toBe(202);
    expect(replay.location).toBe(`/v1/jobs/${replay.body.jobId}`);
    expect(replay.body.jobId).not.toBe(a.body.jobId);
    const done = await settled(replay.body.jobId);
    expect(done, JSON.stringify(done)).toMatchObject({
      state: "succeeded",
      result: { data: { status: 201 } },
    });
    const twice = await call("POST", `/v1/deadletters/${failed.deadLetterId}/replay`);
    expect(twice.status, twice.text).toBe(202);
    expect(twice.body.jobId, "a replay is deterministic").toBe(replay.body.jobId);
    const deliveries = received("dlq");
    expect(deliveries.map((r) => r.headers["idempotency-key"])).toEqual([key, key, key]);
    expect(new Set(deliveries.map((r) => (JSON.parse(r.body) as { id: string }).id))).toEqual(new Set([key]));
    const missing = await call("POST", `/v1/deadletters/00000000-0000-4000-8000-000000000000/replay`);
    expectProblem(missing, { status: 404, errorClass: "validation_error", reason: "DeadLetterNotFound" });
  });
});

// ---------------------------------------------------------------------------------------
// What the suite leaves behind
// ---------------------------------------------------------------------------------------
interface AuditRow {
  request_id: string;
  actor: string | null;
  operation: string;
  execution_mode: string | null;
  outcome: string;
  duration_ms: number | null;
  provider_status_code: number | null;
  retry_count: number;
  connector_instance_id: string | null;
  details: {
    context?: { userId?: string };
    reason?: string;
    policyRule?: string;
    jobId?: string;
    idempotentReplay?: boolean;
  };
}

const HTTP_LAYER = new Set(["InvalidRequest", "InvalidJson", "UnsupportedMediaType"]);

describe("the audit trail", () => {
  it("has a row for every invocation: the TokenReview user, duration, provider status, retries, outcome", async () => {
    const ids = invocations.map((i) => i.requestId);
    const rowsOf = async () =>
      sqlRows<AuditRow>("select * from connector_audit_events where request_id = any($1) order by id", [ids]);
    // Refused by the HTTP layer (body schema, JSON, media type) before the caller is
    // authenticated: no invocation, nobody to audit (the request id is in the answer).
    const httpLayer = (i: (typeof invocations)[number]) =>
      HTTP_LAYER.has((i.body as { reason?: string } | undefined)?.reason ?? "");
    const authenticated = invocations.filter((i) => i.status !== 401 && !httpLayer(i));
    await eventually(
      async () => {
        const seen = new Set((await rowsOf()).map((r) => r.request_id));
        return authenticated.every((i) => seen.has(i.requestId)) || undefined;
      },
      "every authenticated invocation to be audited",
      30_000,
    ).catch(async (err: Error) => {
      const seen = new Set((await rowsOf()).map((r) => r.request_id));
      const missing = authenticated.filter((i) => !seen.has(i.requestId));
      throw new Error(
        `${err.message}: ${JSON.stringify(missing.map((i) => [i.name, i.op, i.status, i.body]))}`,
      );
    });
    const rows = await rowsOf();
    const problems: string[] = [];
    for (const i of invocations) {
      const mine = rows.filter((r) => r.request_id === i.requestId);
      const at = `${i.requestId} ${i.name}/${i.op} ${i.status}`;
      if (i.status === 401 || httpLayer(i)) {
        if (mine.length) problems.push(`${at}: a call refused before authentication was audited`);
        continue;
      }
      // A job's runs are audited under the request that made it, after the call's own row.
      const row = mine[0];
      if (!row || (i.status !== 202 && mine.length !== 1)) {
        problems.push(`${at}: ${mine.length} rows`);
        continue;
      }
      const outcome =
        i.status < 300
          ? "success"
          : (i.body as { errorClass?: string }).errorClass === "policy_denied"
            ? "denied"
            : "failure";
      if (row.outcome !== outcome) problems.push(`${at}: outcome ${row.outcome}, expected ${outcome}`);
      if (row.actor !== i.user || row.details.context?.userId !== i.user)
        problems.push(`${at}: actor ${row.actor}, expected ${i.user}`);
      if (typeof row.duration_ms !== "number" || row.duration_ms < 0)
        problems.push(`${at}: duration ${row.duration_ms}`);
      if (row.operation !== i.op) problems.push(`${at}: operation ${row.operation}`);
      const m = (i.body as { metadata?: ResponseMetadata } | undefined)?.metadata;
      if (m?.idempotentReplay) {
        // Answered from the idempotency store: the provider was not called by this request.
        if (!row.details.idempotentReplay || row.provider_status_code !== null || row.retry_count !== 0)
          problems.push(`${at}: a replay audited as ${JSON.stringify(row)}`);
      } else if (i.status === 200 && m) {
        if (row.provider_status_code !== m.providerStatusCode || row.retry_count !== m.retryCount)
          problems.push(
            `${at}: provider status ${row.provider_status_code}/${m.providerStatusCode}, retries ${row.retry_count}/${m.retryCount}`,
          );
      } else if (i.status >= 400) {
        const reason = (i.body as { reason: string }).reason;
        if (row.details.reason !== reason)
          problems.push(`${at}: reason ${row.details.reason}, expected ${reason}`);
      }
    }
    expect(problems).toEqual([]);

    const one = (requestId: string) => rows.find((r) => r.request_id === requestId)!;
    const byPath = (
      name: string,
      status: number,
      pred: (i: (typeof invocations)[number]) => boolean = () => true,
    ) => invocations.find((i) => i.name === name && i.status === status && pred(i))!;
    // The call that was retried once, the one whose retries ran out, the timeout, a refusal.
    const retried = byPath(
      "open",
      200,
      (i) => (i.body as { metadata: { retryCount: number } }).metadata.retryCount === 1,
    );
    expect(one(retried.requestId)).toMatchObject({
      outcome: "success",
      provider_status_code: 200,
      retry_count: 1,
    });
    expect(one(byPath("flaky", 502).requestId)).toMatchObject({
      outcome: "failure",
      provider_status_code: 503,
      retry_count: 2,
    });
    expect(one(byPath("slow", 504).requestId)).toMatchObject({
      outcome: "failure",
      provider_status_code: null,
    });
    const denied = one(byPath("narrow", 403).requestId);
    expect(denied).toMatchObject({
      outcome: "denied",
      actor: user("agent"),
      details: { policyRule: "not-in-allowlist" },
    });
    expect(denied.connector_instance_id).toEqual(await instanceId("narrow"));

    // The dead-lettered job: the call, then each run with its attempt number, then the replay's run.
    const dlq = invocations.find((i) => i.name === "dlq")!;
    const runs = rows.filter((r) => r.request_id === dlq.requestId);
    expect(runs.map((r) => [r.outcome, r.execution_mode, r.retry_count, r.provider_status_code])).toEqual([
      ["success", "async", 0, null],
      ["failure", "async", 0, 503],
      ["failure", "async", 1, 503],
      ["success", "async", 0, 201],
    ]);
  });
});

describe("secrets", () => {
  it("no Connector's secret in any answer, job result, audit row, gateway or controller log line, or /metrics", async () => {
    // Every secret was used: the provider saw each Connector's token (so the scan means something).
    for (const [name, secret] of SECRETS)
      if (name !== "off")
        expect(
          target.under(`/c/${name}`).some((r) => r.headers.authorization === `Bearer ${secret}`),
          `${name}'s token reached the provider`,
        ).toBe(true);
    const audit = await sqlRows<{ row: string }>(
      "select row_to_json(a)::text as row from connector_audit_events a",
    );
    const instances = await sqlRows<{ row: string }>(
      "select row_to_json(i)::text as row from connector_instances i",
    );
    const metrics: string[] = [];
    for (const address of [gwA.metricsAddress, gwB.metricsAddress, world.controller.addresses.metrics]) {
      expect(address).toBeTruthy();
      metrics.push(await (await fetch(`http://${address}/metrics`)).text());
    }
    const statuses = await Promise.all(Object.keys(CASES).map((n) => getConnector(cp, NS, n)));
    const places = new Map<string, string[]>([
      ["answers (job results included)", answers],
      ["audit rows", audit.map((r) => r.row)],
      ["instance rows", instances.map((r) => r.row)],
      ["gateway logs", [...gwA.raw, ...gwB.raw]],
      ["controller log", world.controller.logLines],
      ["/metrics", metrics],
      ["Connector status", statuses.map((s) => JSON.stringify(s?.status ?? {}))],
    ]);
    const { hits } = scanForSecrets(places, [...SECRETS.values()]);
    const sizes = [...places].map(([where, texts]) => `${where}: ${texts.length}`).join(", ");
    console.log(`secret scan over ${sizes}: ${hits.length} hits`);
    expect(answers.length).toBeGreaterThan(100);
    expect(audit.length).toBeGreaterThan(50);
    expect(hits.map((h) => `${h.count}x in ${h.where}: …${h.sample}…`)).toEqual([]);
    // Nor the callers' credentials: no ServiceAccount token, anywhere; no approval token
    // anywhere but in the answer that issued it.
    const signatures = [
      ...Object.values(tokens).map((t) => ["ServiceAccount token", t.split(".").at(-1)!] as const),
      ...approvals.map((t) => ["approval token", t.split(".").at(-1)!] as const),
    ];
    expect(signatures.length).toBe(Object.keys(tokens).length + approvals.length);
    const leaks: string[] = [];
    for (const [where, texts] of places)
      for (const [what, signature] of signatures) {
        const n = texts.filter((t) => t.includes(signature)).length;
        const issued = what === "approval token" && where.startsWith("answers") ? 1 : 0;
        if (n > issued) leaks.push(`${what} …${signature.slice(-8)} in ${n} of ${where}`);
      }
    expect(leaks).toEqual([]);
    // Never a stack trace in an answer, never an unexpected fault in a gateway's log.
    expect(answers.filter((t) => STACK_TRACE.test(t))).toEqual([]);
    for (const g of [gwA, gwB]) {
      expect(g.alive, g.tail(10)).toBe(true);
      expect(g.lines.filter((l) => l.msg === "unexpected gateway fault")).toEqual([]);
    }
  });
});
