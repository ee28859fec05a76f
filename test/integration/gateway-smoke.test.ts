// The gateway end to end on real components: kube-apiserver (TokenReview, RBAC through
// SubjectAccessReview), PostgreSQL (limits, breakers, idempotency, jobs, audit), the
// controller (which makes the Connector active) and a loopback HTTP target the http
// driver calls. A ServiceAccount's token is the caller; a Role grants it `invoke`.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apply } from "../support/cluster.ts";
import { condition, httpConnector, waitConnector } from "../support/connectors.ts";
import type { ControlPlane } from "../support/controlPlane.ts";
import { callerToken, startTestGateway, type TestGateway } from "../support/gateway.ts";
import type { HttpTarget } from "../support/httpTarget.ts";
import { openPool, type TestPostgres } from "../support/postgres.ts";
import { eventually } from "../support/wait.ts";
import { startWorld, type World } from "../support/world.ts";

const NS = "team-gw";
let world: World;
let cp: ControlPlane;
let db: TestPostgres;
let target: HttpTarget;
let gateway: TestGateway;
let token = "";

async function call(path: string, body: unknown, bearer = token) {
  const res = await fetch(`${gateway.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
    body: JSON.stringify(body),
  });
  return {
    status: res.status,
    type: res.headers.get("content-type") ?? "",
    body: (await res.json()) as Record<string, unknown>,
  };
}

beforeAll(async () => {
  world = await startWorld({ target: true, namespaces: [NS], controller: ["--watch-namespaces", NS] });
  ({ cp, db, target } = world);
  const c = httpConnector(NS, "web", target.url);
  c.spec.policy = {
    allowOperations: ["fetch", "deliverEvent"],
    actionScope: ["connector.operation.read", "connector.operation.invoke"],
  };
  await apply(cp, c);
  token = await callerToken(cp, NS, "agent", ["get", "invoke"]);
  await waitConnector(cp, NS, "web", (c) => condition(c, "Ready")?.status === "True", "Ready", 60_000);
  gateway = await startTestGateway(cp, db.url, ["--watch-namespaces", NS]);
  world.defer("the gateway", () => gateway.stop());
}, 600_000);

afterAll(async () => {
  await world?.stop();
});

describe("the gateway against a real API server and PostgreSQL", () => {
  it("runs fetch for a ServiceAccount that RBAC lets invoke, and audits it", async () => {
    const before = target.requests;
    const res = await call(`/v1/namespaces/${NS}/connectors/web/operations/fetch`, {
      input: { path: "/healthz" },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.metadata).toMatchObject({
      connector: "web",
      operation: "fetch",
      executionMode: "sync",
      retryCount: 0,
    });
    expect(target.requests).toBe(before + 1);
    await gateway.audit.flush();
    const pool = openPool(db.url);
    const rows = await pool.query(
      `select actor, outcome, operation, duration_ms, connector_instance_id from connector_audit_events where namespace = $1 and operation = 'fetch'`,
      [NS],
    );
    expect(rows.rows[0]).toMatchObject({ actor: `system:serviceaccount:${NS}:agent`, outcome: "success" });
    expect(rows.rows[0].connector_instance_id).toBeTruthy();
    await pool.end();
  });

  it("refuses without a token, and a caller RBAC does not allow", async () => {
    const anon = await call(
      `/v1/namespaces/${NS}/connectors/web/operations/fetch`,
      { input: { path: "/" } },
      "",
    );
    expect(anon.status).toBe(401);
    expect(anon.type).toContain("application/problem+json");
    const stranger = await callerToken(cp, NS, "stranger", []);
    const denied = await call(
      `/v1/namespaces/${NS}/connectors/web/operations/fetch`,
      { input: { path: "/" } },
      stranger,
    );
    expect(denied.status).toBe(403);
    expect(denied.body).toMatchObject({ rule: "rbac", errorClass: "policy_denied" });
  });

  it("runs an async operation as a job on the worker", async () => {
    const accepted = await call(`/v1/namespaces/${NS}/connectors/web/operations/deliverEvent`, {
      input: { type: "deploy.finished", data: { ok: true } },
    });
    expect(accepted.status, JSON.stringify(accepted.body)).toBe(202);
    const id = accepted.body.jobId as string;
    const job = await eventually(
      async () => {
        const r = await fetch(`${gateway.url}/v1/jobs/${id}`, {
          headers: { authorization: `Bearer ${token}` },
        });
        const j = (await r.json()) as { state: string };
        return j.state === "succeeded" || j.state === "failed" ? j : undefined;
      },
      "the job to finish",
      60_000,
    );
    expect(job, JSON.stringify(job)).toMatchObject({ state: "succeeded" });
  });
});
