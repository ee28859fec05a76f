// The gateway under bad input and faults, as separate replica processes against a real
// kube-apiserver (TokenReview, RBAC through SubjectAccessReview), a real PostgreSQL server of
// the test's own (stopped and started mid-call), a real Vault-API server (sealed) and a
// loopback provider that counts side effects by Idempotency-Key (test/support/effectTarget.ts).
//
//  - ≥ 10,000 generated bad invocation requests (gatewayRequests.ts): each answered with a
//    declared status and problem details that name the field or the rule; no 5xx, no crash,
//    no secret echoed, nothing logged as an unexpected fault.
//  - A replica SIGKILLed mid-call and mid-job: the side effect happens once at the target;
//    the call completes on the other replica, the job is run again by another replica.
//  - PostgreSQL restarted mid-call: 503 while it is away, then calls succeed again.
//  - Vault sealed: 503 VaultUnavailable, the Connector stays Ready; unsealed, calls succeed.
//  - A provider slower than the timeout: 504, and the shared breaker counts it and opens.
import { readFileSync } from "node:fs";
import { Agent, request as httpRequest } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import fc from "fast-check";
import * as yaml from "js-yaml";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Connector, ConnectorType, SecretProvider } from "../../controller/src/api/types.ts";
import { typeVersionOf } from "../../controller/src/catalog/reader.ts";
import { APPROVAL_KEY_SECRET, FINGERPRINT_KEY_FIELD } from "../../controller/src/kube/hmacKey.ts";
import { DECLARED_ERROR_STATUSES, PROBLEM_CONTENT_TYPE } from "../../controller/src/gateway/problems.ts";
import { apply, kubectlOk } from "../support/cluster.ts";
import { httpConnector, waitReady } from "../support/connectors.ts";
import type { ControlPlane } from "../support/controlPlane.ts";
import { startEffectTarget, type EffectTarget } from "../support/effectTarget.ts";
import { GatewayProcess } from "../support/gatewayProcess.ts";
import type { OpenBao } from "../support/openbao.ts";
import type { PersistentPostgres } from "../support/postgres.ts";
import { eventually, sleep } from "../support/wait.ts";
import { startWorld, type World } from "../support/world.ts";
import { FULL, SCENARIO_TIMEOUT, size, TENANT_A_SECRET } from "./harness.ts";
import { badCallArb, forgedTokens, type BadCall, type GatewayFixture } from "./gatewayRequests.ts";
import { scanForSecrets } from "./invariants.ts";
import { Tally } from "./tally.ts";

const NS = "gw-rel";
const MAX_BODY = 2 * 1024 * 1024;
/** The operations' timeout in this cluster (an operator's choice): recovery waits on it. */
const OP_TIMEOUT_MS = 5_000;
const SEED = Number(process.env.RELIABILITY_SEED ?? (FULL ? Date.now() % 2 ** 31 : 20261122));
const BAD_CALLS = size(10_500, 40_000);

const tally = new Tally("gateway");
let world: World<PersistentPostgres>;
let cp: ControlPlane;
let db: PersistentPostgres;
let sql: pg.Pool;
let bao: OpenBao;
let target: EffectTarget;
const replicas: GatewayProcess[] = [];
let fixture: GatewayFixture;
let approverToken = "";
/** Every answer body the suite read (scanned for secrets at the end). */
const answers: string[] = [];

// ---------------------------------------------------------------------------------------
// Calling the gateway
// ---------------------------------------------------------------------------------------
const agent = new Agent({ keepAlive: true, maxSockets: 16 });

interface Answer {
  status: number;
  type: string;
  requestId: string | undefined;
  text: string;
  body: Record<string, unknown> | undefined;
}

function answerOf(status: number, type: string, requestId: string | undefined, text: string): Answer {
  let body: Record<string, unknown> | undefined;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = undefined;
  }
  answers.push(text);
  return { status, type, requestId, text, body };
}

/**
 * A request whose body the gateway refuses before reading it: on a socket of its own, the
 * body written as far as the server takes it, and whatever the server answered read until it
 * closes (an HTTP client gives up on the write and loses the answer).
 */
function sendOversized(base: string, path: string, headers: Record<string, string>, body: Buffer) {
  const url = new URL(base);
  return new Promise<Answer>((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", () => undefined); // EPIPE/ECONNRESET on the write: the answer is what counts
    socket.on("close", () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      const [head, ...rest] = raw.split("\r\n\r\n");
      const lines = (head ?? "").split("\r\n");
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0] ?? "")?.[1] ?? 0);
      if (!status)
        return reject(
          new Error(
            `no answer to an oversized body (${body.length} bytes): ${raw.slice(0, 200)}; ${replicas.map((g) => `${g.name} ${g.alive ? "alive" : "gone"}: ${g.tail(5)}`).join("; ")}`,
          ),
        );
      const header = (name: string) =>
        lines
          .find((l) => l.toLowerCase().startsWith(`${name}:`))
          ?.slice(name.length + 1)
          .trim();
      resolve(answerOf(status, header("content-type") ?? "", header("x-request-id"), rest.join("\r\n\r\n")));
    });
    const head = [
      `POST ${path} HTTP/1.1`,
      `host: ${url.host}`,
      "connection: close",
      `content-length: ${body.length}`,
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ].join("\r\n");
    socket.write(`${head}\r\n\r\n`);
    socket.end(body);
  });
}

/** One request as given (the target unnormalised), its answer read whole. */
function send(base: string, method: string, path: string, headers: Record<string, string>, body?: Buffer) {
  if (body && body.length > MAX_BODY) return sendOversized(base, path, headers, body);
  const url = new URL(base);
  return new Promise<Answer>((resolve, reject) => {
    let answered = false;
    const req = httpRequest(
      {
        agent,
        host: url.hostname,
        port: url.port,
        method,
        path,
        headers: { ...headers, ...(body ? { "content-length": String(body.length) } : {}) },
      },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () =>
          resolve(
            answerOf(
              res.statusCode ?? 0,
              String(res.headers["content-type"] ?? ""),
              res.headers["x-request-id"] as string | undefined,
              Buffer.concat(chunks).toString("utf8"),
            ),
          ),
        );
      },
    );
    // A body refused before it was read whole: the answer came, then the socket closed on the rest.
    req.on("error", (err) => {
      if (!answered) reject(err);
    });
    req.end(body);
  });
}

function invoke(
  replica: GatewayProcess,
  name: string,
  operation: string,
  body: object,
  token = fixture.token,
): Promise<Answer> {
  return send(
    replica.url,
    "POST",
    `/v1/namespaces/${NS}/connectors/${name}/operations/${operation}`,
    { "content-type": "application/json", authorization: `Bearer ${token}` },
    Buffer.from(JSON.stringify(body)),
  );
}

async function approve(replica: GatewayProcess, input: object): Promise<string> {
  const res = await send(
    replica.url,
    "POST",
    `/v1/namespaces/${NS}/connectors/web/approvals`,
    { "content-type": "application/json", authorization: `Bearer ${approverToken}` },
    Buffer.from(JSON.stringify({ operation: "mutate", input, requester: fixture.user })),
  );
  if (res.status !== 201) throw new Error(`approval refused: ${res.status} ${res.text}`);
  return (res.body as { approval: string }).approval;
}

const DECLARED = new Set<number>(DECLARED_ERROR_STATUSES);
const CLASSES = ["transient", "permanent", "validation_error", "policy_denied", "quota_exceeded"];

/** Why an answer is not problem details of its status, or undefined when it is. */
function problemShape(a: Answer): string | undefined {
  if (!DECLARED.has(a.status)) return `status ${a.status} is not a declared error status`;
  if (!a.type.startsWith(PROBLEM_CONTENT_TYPE)) return `content-type ${a.type}`;
  const b = a.body;
  if (!b) return `body is not JSON: ${a.text.slice(0, 80)}`;
  if (typeof b.type !== "string" || typeof b.title !== "string") return "no type or title";
  if (b.status !== a.status) return `status ${String(b.status)} in the body`;
  if (typeof b.detail !== "string" || !b.detail) return "no detail";
  if (b.instance !== a.requestId) return "instance is not the request id";
  if (!CLASSES.includes(b.errorClass as string)) return `errorClass ${String(b.errorClass)}`;
  if (typeof b.reason !== "string" || !b.reason) return "no reason";
  return undefined;
}

const under = (path: string, field: string) =>
  path === field || path.startsWith(`${field}.`) || path.startsWith(`${field}[`);

/** Why the answer to a bad call is wrong, or undefined. */
function judge(c: BadCall, a: Answer): string | undefined {
  if (a.status < 300) return c.mayPass ? undefined : `a bad request was accepted (${a.status})`;
  const shape = problemShape(a);
  if (shape) return shape;
  const b = a.body!;
  // A request the gateway found valid may still be refused by the provider (502), never a fault (500).
  if (a.status >= 500 && !(c.mayPass && b.reason !== "InternalError"))
    return `a 5xx for bad input: ${String(b.reason)}: ${String(b.detail)}`;
  if (a.status >= 500) return undefined;
  const paths = ((b.problems as { path?: string }[] | undefined) ?? []).map((p) => p.path ?? "");
  const e = c.expect;
  const got = `${a.status} ${String(b.reason)} rule=${String(b.rule)} paths=${JSON.stringify(paths).slice(0, 120)}`;
  if (!e.status.includes(a.status)) return `expected ${e.status.join("/")}, got ${got}`;
  if (e.reasons && !e.reasons.includes(b.reason as string))
    return `expected ${e.reasons.join("/")}, got ${got}`;
  if (e.rule && b.rule !== e.rule) return `expected rule ${e.rule}, got ${got}`;
  if (e.detail && !e.detail.test(String(b.detail)))
    return `expected a detail like ${e.detail}, got ${String(b.detail)}`;
  if (e.fields && a.status === 400 && !paths.some((p) => e.fields!.some((f) => under(p, f))))
    return `expected a problem under ${e.fields.slice(0, 3).join(", ")}, got ${got}`;
  // Every refusal names what was wrong: a field (problems) or the rule that decided.
  if (!paths.length && typeof b.rule !== "string") return `names neither a field nor a rule: ${got}`;
  return undefined;
}

// ---------------------------------------------------------------------------------------
// The world
// ---------------------------------------------------------------------------------------
function connector(name: string, path: string, change?: (c: Connector) => void): Connector {
  const c = httpConnector(NS, name, `${target.url}/${path}`);
  c.metadata.labels = { "cynodeai.io/suite": "reliability" };
  c.spec.policy = {
    allowOperations: ["fetch", "deliverEvent", "mutate"],
    actionScope: ["connector.operation.read", "connector.operation.invoke"],
  };
  delete c.spec.limits;
  change?.(c);
  return c;
}

function spawnGateway(name: string): GatewayProcess {
  const g = new GatewayProcess({
    kubeconfig: cp.kubeconfigPath,
    databaseUrl: db.url,
    name,
    namespaces: [NS],
    logLevel: "info",
    args: ["--max-body-bytes", String(MAX_BODY), "--breaker-threshold", "2", "--breaker-cooldown", "120s"],
  });
  world.defer(`gateway ${name}`, () => g.kill("SIGKILL"));
  replicas.push(g);
  return g;
}

async function token(sa: string, extra: string[] = []): Promise<string> {
  return (await kubectlOk(cp, ["create", "token", sa, "-n", NS, ...extra])).trim();
}

/** The shipped http type with its operations' timeouts shortened, as an operator may. */
async function shortenTimeouts(): Promise<void> {
  const t = JSON.parse(await kubectlOk(cp, ["get", "connectortype", "http", "-o", "json"])) as ConnectorType;
  for (const v of t.spec.versions) for (const o of v.operations) o.maxTimeoutMs = OP_TIMEOUT_MS;
  await apply(cp, t);
}

beforeAll(async () => {
  world = await startWorld({ persistentDatabase: true, vault: true, namespaces: [NS] });
  ({ cp, db, sql, bao } = world);
  target = await startEffectTarget();
  world.defer("the effect target", () => target.stop());
  target.slow("/slow/hooks/status/items", OP_TIMEOUT_MS + 1500);
  target.requireBearer("/vaulted", TENANT_A_SECRET);
  await shortenTimeouts();

  await bao.tenant(cp, NS);
  await bao.writeKv2(`connectors/${NS}/vaulted`, { token: TENANT_A_SECRET });
  const provider: SecretProvider["spec"] = {
    vault: {
      address: bao.address,
      caBundle: bao.caPem,
      kv: { mount: "kv", version: 2 },
      pathTemplate: "connectors/{namespace}/{name}",
      auth: {
        kubernetes: {
          role: NS,
          serviceAccountName: "vault-reader",
          mountPath: "kubernetes",
          audiences: ["vault"],
        },
      },
    },
    allowedNamespaces: [NS],
  };
  await apply(cp, {
    apiVersion: "cynodeai.io/v1alpha1",
    kind: "SecretProvider",
    metadata: { name: "gw-vault" },
    spec: provider,
  });

  const role = (name: string, verbs: string[]) => ({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    metadata: { name, namespace: NS },
    rules: [{ apiGroups: ["cynodeai.io"], resources: ["connectors"], verbs }],
  });
  const binding = (name: string, roleName: string, sa: string) => ({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    metadata: { name, namespace: NS },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: roleName },
    subjects: [{ kind: "ServiceAccount", name: sa, namespace: NS }],
  });
  const sa = (name: string) => ({
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name, namespace: NS },
  });
  await apply(cp, [
    connector("web", "web"),
    connector("slow", "slow", (c) => (c.spec.config = { ...c.spec.config, timeoutMs: 300 })),
    connector("vaulted", "vaulted", (c) => {
      c.spec.config = { ...c.spec.config, auth: { scheme: "bearer" } };
      c.spec.credentials = {
        mode: "secretRef",
        secretRef: { provider: "gw-vault", name: "vaulted", keys: { token: "token" } },
      };
    }),
    sa("agent"),
    sa("stranger"),
    sa("approver"),
    sa("ghost"),
    role("invoker", ["get", "invoke"]),
    role("approver", ["get", "approve"]),
    binding("agent-invokes", "invoker", "agent"),
    binding("ghost-invokes", "invoker", "ghost"),
    binding("approver-approves", "approver", "approver"),
  ]);
  await world.startController(["--watch-namespaces", NS]);
  for (const name of ["web", "slow", "vaulted"]) await waitReady(cp, NS, name, 120_000);

  const agentToken = await token("agent");
  approverToken = await token("approver");
  // A revoked token: its ServiceAccount is gone (a token replayed after it was revoked).
  const ghost = await token("ghost");
  await kubectlOk(cp, ["delete", "serviceaccount", "ghost", "-n", NS]);
  const otherAudience = await token("agent", ["--audience", "somebody-else"]);

  const a = spawnGateway("gw-a");
  const b = spawnGateway("gw-b");
  await Promise.all([a.ready(), b.ready()]);

  const secret = JSON.parse(
    await kubectlOk(cp, ["get", "secret", APPROVAL_KEY_SECRET, "-n", "default", "-o", "json"]),
  ) as { data: Record<string, string> };
  const web = JSON.parse(
    await kubectlOk(cp, ["get", "connector", "web", "-n", NS, "-o", "json"]),
  ) as Connector;
  const type = yaml.load(
    readFileSync(join(process.cwd(), "examples/types/http.yaml"), "utf8"),
  ) as ConnectorType;
  fixture = {
    ns: NS,
    connector: "web",
    uid: web.metadata.uid!,
    type,
    version: typeVersionOf(type, 2)!,
    token: agentToken,
    user: `system:serviceaccount:${NS}:agent`,
    strangerToken: await token("stranger"),
    badTokens: [
      { label: "revoked", token: ghost },
      { label: "another audience", token: otherAudience },
      ...forgedTokens(agentToken, readFileSync(join(cp.dir, "sa.key"), "utf8")),
    ],
    approvalKey: Buffer.from(secret.data[FINGERPRINT_KEY_FIELD]!, "base64"),
    approver: `system:serviceaccount:${NS}:approver`,
    maxBodyBytes: MAX_BODY,
    maxDepth: 64,
  };
}, 600_000);

afterAll(async () => {
  agent.destroy();
  await world?.stop();
});

/** Every replica still running has logged no unexpected fault and no secret. */
function replicaLogsClean(r: { violations: number; secretBytes: number }): string[] {
  const problems: string[] = [];
  for (const g of replicas) {
    const faults = g.lines.filter((l) => l.msg === "unexpected gateway fault");
    if (faults.length)
      problems.push(
        `${g.name}: ${faults.length} unexpected faults, e.g. ${JSON.stringify(faults[0]).slice(0, 300)}`,
      );
  }
  const scan = scanForSecrets(
    new Map([
      ["gateway logs", replicas.flatMap((g) => g.raw)],
      ["answers", answers],
    ]),
  );
  r.secretBytes += scan.bytes;
  for (const h of scan.hits) problems.push(`secret in ${h.where}: ${h.sample}`);
  r.violations += problems.length;
  return problems;
}

describe("the gateway under generated bad requests", () => {
  it(
    `answers ${BAD_CALLS} generated bad invocation requests with problem details naming the field or the rule`,
    async () => {
      await tally.scenario("gateway", "generated bad invocation requests", async (r) => {
        console.log(
          `gateway bad input: ${BAD_CALLS} requests from fast-check seed ${SEED} (RELIABILITY_SEED to replay)`,
        );
        const makers = fc.sample(badCallArb, { numRuns: BAD_CALLS, seed: SEED });
        const kinds = new Map<string, { sent: number; bad: number; passed: number }>();
        const statuses = new Map<number, number>();
        const violations: string[] = [];
        let next = 0;
        const worker = async (w: number) => {
          for (let i = next++; i < makers.length; i = next++) {
            const c = makers[i]!(fixture);
            const replica = replicas[w % 2]!;
            const a = await send(replica.url, c.method, c.path, c.headers, c.body);
            const k = kinds.get(c.kind) ?? { sent: 0, bad: 0, passed: 0 };
            kinds.set(c.kind, k);
            k.sent++;
            statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
            const why = judge(c, a);
            if (why)
              violations.push(
                `#${i} ${c.kind} ${c.path.slice(0, 100)} ${c.body.toString("utf8", 0, 160)}: ${why}`,
              );
            else if (a.status < 300) k.passed++;
            else k.bad++;
          }
        };
        await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(worker));
        // Approvals replayed: each used once (the call runs), then presented again.
        const replays = size(20, 100);
        for (let i = 0; i < replays; i++) {
          const input = { method: "POST", path: `/effects/replayed-${i}`, body: { i } };
          const approval = await approve(replicas[0]!, input);
          const first = await invoke(replicas[i % 2]!, "web", "mutate", { input, approval });
          expect(first.status, first.text).toBe(200);
          const again = await invoke(replicas[(i + 1) % 2]!, "web", "mutate", { input, approval });
          const why = judge(
            {
              kind: "replayed approval",
              method: "POST",
              path: "",
              headers: {},
              body: Buffer.alloc(0),
              expect: { status: [403], rule: "approval-replayed" },
            },
            again,
          );
          if (why) violations.push(`replayed approval ${i}: ${why}`);
          const k = kinds.get("replayed approval") ?? { sent: 0, bad: 0, passed: 0 };
          kinds.set("replayed approval", k);
          k.sent++;
          if (!why) k.bad++;
        }
        const table = [...kinds]
          .sort()
          .map(
            ([kind, k]) =>
              `  ${kind.padEnd(34)} sent ${String(k.sent).padStart(5)}  refused as required ${String(k.bad).padStart(5)}  valid by chance ${k.passed}`,
          );
        console.log(
          `${table.join("\n")}\n  statuses: ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`,
        );
        const groups = new Map<string, number>();
        for (const v of violations) {
          const key = v
            .replace(/^#\d+ /, "")
            .replace(/ \/v1\S* .*?: /, ": ")
            .replace(/paths=.*/, "")
            .slice(0, 160);
          groups.set(key, (groups.get(key) ?? 0) + 1);
        }
        if (groups.size)
          console.log(
            [...groups]
              .sort((x, y) => y[1] - x[1])
              .map(([k, n]) => `  ${n} × ${k}`)
              .join("\n"),
          );
        r.badInputs = [...kinds.values()].reduce((n, k) => n + k.bad, 0);
        r.violations += violations.length;
        for (const g of replicas) expect(g.alive, `${g.name} kept running: ${g.tail(10)}`).toBe(true);
        const logProblems = replicaLogsClean(r);
        expect([...violations.slice(0, 25), ...logProblems], `${violations.length} wrong answers`).toEqual(
          [],
        );
        expect(r.badInputs).toBeGreaterThanOrEqual(10_000);
      });
    },
    SCENARIO_TIMEOUT,
  );
});

/** A fresh replica, started once the others are known (so that a job lands where the test wants). */
async function freshReplica(name: string): Promise<GatewayProcess> {
  return spawnGateway(name).ready();
}

const alive = () => replicas.filter((g) => g.alive);
const BASE = "/web/hooks/status";

describe("the gateway under faults", () => {
  it(
    "runs a side effect once when the replica running it is SIGKILLed mid-call; its retry completes on another",
    async () => {
      await tally.scenario("gateway", "replica SIGKILLed mid-call", async (r) => {
        const [a, b] = alive();
        const key = `kill-call-${Date.now()}`;
        const input = { method: "POST", path: "/effects/kill-call", body: { n: 1 }, idempotencyKey: key };
        const hold = target.hold(`${BASE}/effects/kill-call`);
        const first = invoke(a!, "web", "mutate", {
          input,
          approval: await approve(b!, input),
          idempotencyKey: key,
        }).then(
          () => undefined,
          (err: unknown) => err,
        );
        await hold.arrived;
        await a!.kill("SIGKILL");
        r.faults++;
        expect(await first, "the caller saw the connection drop").toBeInstanceOf(Error);
        hold.release();
        // The caller retries on the other replica: same key and input, a new approval (the first
        // was used). Until the dead replica's claim lapses the key is in progress (409).
        let approval = "";
        const inProgress: number[] = [];
        const retried = await eventually(
          async () => {
            approval = await approve(b!, input);
            const res = await invoke(b!, "web", "mutate", { input, approval, idempotencyKey: key });
            if (res.status === 409) {
              expect(res.body).toMatchObject({ reason: "IdempotencyInProgress", errorClass: "transient" });
              inProgress.push(res.status);
              return undefined;
            }
            return res;
          },
          "the retried call to complete on the other replica",
          { timeoutMs: 4 * OP_TIMEOUT_MS + 60_000, intervalMs: 1000 },
        );
        expect(retried.status, retried.text).toBe(200);
        const deliveries = target.deliveries.filter((d) => d.key === key).length;
        // A duplicate of the finished call: its stored answer, the provider not called again.
        const duplicate = await invoke(b!, "web", "mutate", { input, approval, idempotencyKey: key });
        expect(duplicate.status, duplicate.text).toBe(200);
        expect(duplicate.body).toMatchObject({ metadata: { idempotentReplay: true } });
        expect(target.deliveries.filter((d) => d.key === key).length).toBe(deliveries);
        expect(deliveries, "the provider saw the first delivery and the retry").toBe(2);
        expect(target.effects.get(key), "the side effect happened once").toBe(1);
        console.log(
          `mid-call kill: ${inProgress.length} answers of 409 in progress, then 200 on ${b!.name}; ${deliveries} deliveries, 1 effect`,
        );
      });
    },
    SCENARIO_TIMEOUT,
  );

  it(
    "runs a job's side effect once when its replica is SIGKILLed mid-job; another replica runs it to succeeded",
    async () => {
      await tally.scenario("gateway", "replica SIGKILLed mid-job", async (r) => {
        const [b] = alive();
        expect(alive()).toHaveLength(1); // the job can only be picked up by b
        const key = `kill-job-${Date.now()}`;
        const hold = target.hold(BASE);
        const accepted = await invoke(b!, "web", "deliverEvent", {
          input: { type: "com.example.kill", data: { n: 1 }, idempotencyKey: key },
          idempotencyKey: key,
        });
        expect(accepted.status, accepted.text).toBe(202);
        const jobId = (accepted.body as { jobId: string }).jobId;
        await hold.arrived;
        await b!.kill("SIGKILL");
        r.faults++;
        hold.release();
        const [c] = await Promise.all([freshReplica("gw-c"), freshReplica("gw-d")]);
        const job = await eventually(
          async () => {
            const res = await send(c!.url, "GET", `/v1/jobs/${jobId}`, {
              authorization: `Bearer ${fixture.token}`,
            });
            const j = res.body as { state?: string } | undefined;
            return j?.state === "succeeded" || j?.state === "failed" ? j : undefined;
          },
          "the job to finish on another replica",
          { timeoutMs: 120_000, intervalMs: 500 },
        );
        expect(job, JSON.stringify(job)).toMatchObject({ state: "succeeded" });
        const deliveries = target.deliveries.filter((d) => d.key === key).length;
        expect(deliveries, "delivered by the killed replica, then by another").toBe(2);
        expect(target.effects.get(key), "the side effect happened once").toBe(1);
      });
    },
    SCENARIO_TIMEOUT,
  );

  it(
    "answers 503 while PostgreSQL restarts mid-call, then serves again, and loses no audit row",
    async () => {
      await tally.scenario("gateway", "PostgreSQL restarted mid-call", async (r) => {
        const gateways = alive();
        const seen: {
          status: number;
          reason?: string;
          errorClass?: string;
          requestId?: string;
          retryAfter?: boolean;
        }[] = [];
        let stop = false;
        let afterRestart = 0;
        let restarted = false;
        const loop = async (g: GatewayProcess) => {
          while (!stop) {
            const res = await invoke(g, "web", "fetch", { input: { path: "/items/pg" } });
            seen.push({
              status: res.status,
              reason: res.body?.reason as string | undefined,
              errorClass: res.body?.errorClass as string | undefined,
              requestId: res.requestId,
              retryAfter: res.status === 503 ? res.body?.retryAfterSeconds !== undefined : undefined,
            });
            if (restarted && res.status === 200) afterRestart++;
            await sleep(20);
          }
        };
        const loops = [...gateways, ...gateways].map(loop);
        await sleep(1000);
        await db.stopServer("fast");
        r.faults++;
        await sleep(3000);
        await db.startServer();
        restarted = true;
        await eventually(() => afterRestart >= 40, "40 calls to succeed after the restart", 60_000);
        stop = true;
        await Promise.all(loops);
        const wrong = seen.filter(
          (s) => s.status !== 200 && !(s.status === 503 && s.errorClass === "transient" && s.retryAfter),
        );
        const outage = seen.filter((s) => s.status === 503);
        console.log(
          `PostgreSQL restart: ${seen.length} calls, ${outage.length} answered 503 (${[...new Set(outage.map((s) => s.reason))].join(", ")}), ${wrong.length} otherwise`,
        );
        expect(outage.length, "some calls met the outage").toBeGreaterThan(0);
        expect(wrong, JSON.stringify(wrong.slice(0, 5))).toEqual([]);
        r.violations += wrong.length;
        for (const g of gateways) expect(g.alive, g.tail(10)).toBe(true);
        // Every call was audited, the ones during the outage once the database was back.
        const ids = seen.map((s) => s.requestId!);
        await eventually(
          async () => {
            const n = await sql.query<{ n: number }>(
              "select count(distinct request_id)::integer as n from connector_audit_events where request_id = any($1)",
              [ids],
            );
            return n.rows[0]!.n === ids.length || undefined;
          },
          `all ${ids.length} calls to be audited`,
          60_000,
        );
      });
    },
    SCENARIO_TIMEOUT,
  );

  it(
    "answers 503 VaultUnavailable while Vault is sealed, keeps the Connector Ready, and serves again once unsealed",
    async () => {
      await tally.scenario("gateway", "Vault sealed", async (r) => {
        const [g] = alive();
        const ok = await invoke(g!, "vaulted", "fetch", { input: { path: "/items/v" } });
        expect(ok.status, ok.text).toBe(200);
        await bao.seal();
        r.faults++;
        expect(await bao.sealed(), "Vault says it is sealed").toBe(true);
        try {
          // A read shared within the resolver's window (2 s) may still answer; then 503.
          const statuses: number[] = [];
          const sealed = await eventually(
            async () => {
              const res = await invoke(g!, "vaulted", "fetch", { input: { path: "/items/v" } });
              statuses.push(res.status);
              return res.status === 200 ? undefined : res;
            },
            "a call to meet the sealed Vault",
            { timeoutMs: 30_000, intervalMs: 250 },
          );
          expect(sealed.status, sealed.text).toBe(503);
          expect(sealed.body).toMatchObject({ errorClass: "transient", reason: "VaultUnavailable" });
          expect(await bao.sealed()).toBe(true);
          console.log(
            `Vault sealed: ${statuses.length - 1} answers of 200 (the shared read), then 503 VaultUnavailable`,
          );
          const c = JSON.parse(
            await kubectlOk(cp, ["get", "connector", "vaulted", "-n", NS, "-o", "json"]),
          ) as Connector;
          expect(
            c.status?.conditions?.find((x) => x.type === "Ready")?.status,
            "the last good state is kept",
          ).toBe("True");
          const row = await sql.query<{ state: string }>(
            "select state from connector_instances where namespace = $1 and name = 'vaulted' and deleted_at is null",
            [NS],
          );
          expect(row.rows[0]?.state).toBe("active");
        } finally {
          await bao.unseal();
        }
        await eventually(
          async () => (await invoke(g!, "vaulted", "fetch", { input: { path: "/items/v" } })).status === 200,
          "calls to succeed once Vault is unsealed",
          60_000,
        );
      });
    },
    SCENARIO_TIMEOUT,
  );

  it(
    "answers 504 when the provider is slower than the timeout, and the shared breaker counts it",
    async () => {
      await tally.scenario("gateway", "provider slower than the timeout", async (r) => {
        const [g] = alive();
        // Two calls past the deadline: the breaker (threshold 2) counts each and opens.
        const slow = await invoke(g!, "slow", "fetch", { input: { path: "/items/slow" } });
        r.faults++;
        expect(slow.status, slow.text).toBe(504);
        expect(slow.body).toMatchObject({ errorClass: "transient", reason: "DeadlineExceeded" });
        const again = await invoke(g!, "slow", "fetch", { input: { path: "/items/slow" } });
        r.faults++;
        expect(again.status, again.text).toBe(504);
        const breaker = await sql.query<{ failures: number; open: boolean }>(
          `select b.failures, b.opened_until is not null as open from gateway_breakers b
             join connector_instances i on i.id::text = b.instance_id
            where i.namespace = $1 and i.name = 'slow' and i.deleted_at is null`,
          [NS],
        );
        expect(breaker.rows[0], "the breaker counted the timeouts").toMatchObject({ open: true });
        const refused = await invoke(g!, "slow", "fetch", { input: { path: "/items/slow" } });
        expect(refused.status, refused.text).toBe(503);
        expect(refused.body).toMatchObject({ reason: "CircuitOpen", errorClass: "transient" });
        console.log(
          `slow provider: 504 ${String(slow.body?.reason)}, breaker ${JSON.stringify(breaker.rows[0])}, then 503 CircuitOpen`,
        );
      });
    },
    SCENARIO_TIMEOUT,
  );

  it("kept every replica's log free of unexpected faults and secrets", async () => {
    await tally.scenario("gateway", "replica logs", async (r) => {
      expect(replicaLogsClean(r)).toEqual([]);
    });
  });
});
