// connectorctl invoke, jobs and approve as a user runs them (node connectorctl.ts, its own
// process) against a real gateway: kube-apiserver for TokenReview and RBAC, PostgreSQL for
// jobs and approvals, the controller making the Connector active, and a loopback HTTP target
// the http driver calls. The callers are ServiceAccounts whose tokens come from kubectl.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobRecord, NormalizedResponse } from "../../controller/src/api/invocation.ts";
import { projectRoot } from "../../controller/src/api/paths.ts";
import { condition, httpConnector, waitConnector } from "../support/connectors.ts";
import { apply } from "../support/cluster.ts";
import type { ControlPlane } from "../support/controlPlane.ts";
import { callerToken, startTestGateway, type TestGateway } from "../support/gateway.ts";
import type { HttpTarget } from "../support/httpTarget.ts";
import { runCommand, type CommandResult } from "../support/process.ts";
import { startWorld, type World } from "../support/world.ts";

const NS = "team-cli-gw";
const AGENT = `system:serviceaccount:${NS}:agent`;
const cli = join(projectRoot, "controller/src/cli/connectorctl.ts");
let world: World;
let cp: ControlPlane;
let target: HttpTarget;
let gateway: TestGateway;
const tokens = { agent: "", stranger: "", approver: "" };

/** connectorctl with the gateway's URL in CONNECTOR_GATEWAY and `token` (if any) in CONNECTOR_TOKEN. */
async function ctl(
  args: string[],
  o: { token?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CommandResult> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // The admin kubeconfig authenticates with a client certificate: it gives no token.
    KUBECONFIG: cp.kubeconfigPath,
    CONNECTOR_GATEWAY: gateway.url,
    ...(o.token ? { CONNECTOR_TOKEN: o.token } : {}),
    ...o.env,
  };
  if (!o.token && !o.env?.CONNECTOR_TOKEN) delete env.CONNECTOR_TOKEN;
  const r = await runCommand(process.execPath, [cli, ...args], { env, timeoutMs: 120_000 });
  for (const t of Object.values(tokens)) {
    expect(r.stdout).not.toContain(t);
    expect(r.stderr).not.toContain(t);
  }
  return r;
}

const said = (r: CommandResult) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

beforeAll(async () => {
  world = await startWorld({ target: true, namespaces: [NS], controller: ["--watch-namespaces", NS] });
  ({ cp, target } = world);
  const web = httpConnector(NS, "web", target.url);
  web.spec.policy = {
    allowOperations: ["fetch", "deliverEvent", "mutate"],
    actionScope: ["connector.operation.read", "connector.operation.invoke"],
  };
  await apply(cp, web);
  tokens.agent = await callerToken(cp, NS, "agent", ["get", "list", "invoke"]);
  tokens.stranger = await callerToken(cp, NS, "stranger", []);
  tokens.approver = await callerToken(cp, NS, "approver", ["approve"]);
  await waitConnector(cp, NS, "web", (c) => condition(c, "Ready")?.status === "True", "Ready", 60_000);
  gateway = await startTestGateway(cp, world.db.url, ["--watch-namespaces", NS]);
  world.defer("the gateway", () => gateway.stop());
}, 600_000);

afterAll(async () => {
  await world?.stop();
});

describe("connectorctl against a real gateway", () => {
  it("invokes fetch on an http Connector and prints the normalized response", async () => {
    const before = target.requests;
    const r = await ctl(["invoke", `${NS}/web`, "fetch", "--input", '{"path":"/status"}'], {
      token: tokens.agent,
    });
    expect(r.code, said(r)).toBe(0);
    const response = JSON.parse(r.stdout) as NormalizedResponse;
    expect(response.metadata).toMatchObject({
      namespace: NS,
      connector: "web",
      operation: "fetch",
      executionMode: "sync",
      providerStatusCode: 200,
    });
    expect(response.data).toMatchObject({ status: 200, bodyFormat: "json", body: { ok: true } });
    expect(target.requests).toBe(before + 1);
  });

  it("runs an async job: --wait prints its result; without it, the job id; jobs lists and shows them", async () => {
    const event = JSON.stringify({ type: "deploy.finished", data: { build: 41 } });
    const waited = await ctl(["invoke", `${NS}/web`, "deliverEvent", "--input", event, "--wait"], {
      token: tokens.agent,
    });
    expect(waited.code, said(waited)).toBe(0);
    const result = JSON.parse(waited.stdout) as NormalizedResponse;
    expect(result.metadata).toMatchObject({ operation: "deliverEvent", executionMode: "async" });
    expect(result.data).toMatchObject({ status: 200 });

    const input = join(world.tempDir("cc-cli-gw-"), "event.json");
    writeFileSync(input, JSON.stringify({ type: "deploy.started", data: { build: 42 } }));
    const submitted = await ctl(
      [
        "invoke",
        `${NS}/web`,
        "deliverEvent",
        "--input",
        `@${input}`,
        "--async",
        "--idempotency-key",
        "build-42",
      ],
      { token: tokens.agent },
    );
    expect(submitted.code, said(submitted)).toBe(0);
    const id = submitted.stdout.trim();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(submitted.stderr).toContain(`connectorctl jobs ${id}`);

    const listed = await ctl(["jobs", "-n", NS, "--connector", "web"], { token: tokens.agent });
    expect(listed.code, said(listed)).toBe(0);
    const lines = listed.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^ID\s+CONNECTOR\s+OPERATION\s+STATE\s+ATTEMPTS\s+AGE\s+ERROR$/);
    expect(lines.filter((l) => /\bweb\s+deliverEvent\s+(pending|running|succeeded)\b/.test(l))).toHaveLength(
      2,
    );
    expect(lines.some((l) => l.startsWith(`${id} `))).toBe(true);

    const shown = await ctl(["jobs", id], { token: tokens.agent });
    expect(shown.code, said(shown)).toBe(0);
    expect(JSON.parse(shown.stdout) as JobRecord).toMatchObject({
      id,
      target: { namespace: NS, name: "web", operation: "deliverEvent" },
      requester: AGENT,
    });
  });

  it("prints an RBAC refusal as one line and exits 4 (policy_denied)", async () => {
    // fetch is a read (connector.operation.read): RBAC's verb for it is get.
    const r = await ctl(["invoke", `${NS}/web`, "fetch", "--input", '{"path":"/"}'], {
      token: tokens.stranger,
    });
    expect(r.code, said(r)).toBe(4);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(
      new RegExp(
        `^connectorctl: 403 policy_denied Forbidden \\(rule rbac\\): system:serviceaccount:${NS}:stranger may not get connectors named "web" in namespace ${NS} \\(Kubernetes RBAC\\) \\[request [\\w-]+\\]\\n$`,
      ),
    );
  });

  it("prints a refused input with its field and exits 3 (validation_error)", async () => {
    const r = await ctl(["invoke", `${NS}/web`, "fetch", "--input", '{"path":"no-slash"}'], {
      token: tokens.agent,
    });
    expect(r.code, said(r)).toBe(3);
    expect(r.stderr).toMatch(
      /^connectorctl: 400 validation_error InvalidInput \(at input\.path\): input\.path: must match/,
    );
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("approves a class B call for another principal, which then runs with the approval, once", async () => {
    const input = '{"method":"POST","path":"/items","body":{"title":"from the CLI"}}';
    const without = await ctl(["invoke", `${NS}/web`, "mutate", "--input", input], { token: tokens.agent });
    expect(without.code, said(without)).toBe(4);
    expect(without.stderr).toMatch(/^connectorctl: 403 policy_denied \w+ \(rule approval-required\): /);

    const agentApproves = await ctl(
      ["approve", `${NS}/web`, "mutate", "--input", input, "--requester", AGENT],
      {
        token: tokens.agent,
      },
    );
    expect(agentApproves.code, said(agentApproves)).toBe(4);
    expect(agentApproves.stderr).toMatch(
      /\(rule rbac\): system:serviceaccount:team-cli-gw:agent may not approve/,
    );

    const approved = await ctl(
      ["approve", `${NS}/web`, "mutate", "--input", input, "--requester", AGENT, "--ttl", "5m"],
      { token: tokens.approver },
    );
    expect(approved.code, said(approved)).toBe(0);
    const approval = approved.stdout.trim();
    expect(approval).toMatch(/^[\w-]+\.[\w-]+$/);
    expect(approved.stderr).toContain(`${AGENT} may call mutate on ${NS}/web once with this input`);

    const before = target.requests;
    const ran = await ctl(["invoke", `${NS}/web`, "mutate", "--input", input, "--approval", approval], {
      token: tokens.agent,
    });
    expect(ran.code, said(ran)).toBe(0);
    expect((JSON.parse(ran.stdout) as NormalizedResponse).metadata).toMatchObject({ operation: "mutate" });
    expect(target.requests).toBe(before + 1);

    const replayed = await ctl(["invoke", `${NS}/web`, "mutate", "--input", input, "--approval", approval], {
      token: tokens.agent,
    });
    expect(replayed.code, said(replayed)).toBe(4);
    expect(replayed.stderr).toContain("(rule approval-replayed)");
    expect(target.requests).toBe(before + 1);
  });

  it("takes the token and the namespace from the kubeconfig's current user and context", async () => {
    const kubeconfig = join(world.tempDir("cc-cli-gw-kube-"), "kubeconfig");
    writeFileSync(
      kubeconfig,
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters: [{ name: c, cluster: { server: 'https://127.0.0.1:1' } }]",
        `users: [{ name: agent, user: { token: '${tokens.agent}' } }]`,
        `contexts: [{ name: agent, context: { cluster: c, user: agent, namespace: ${NS} } }]`,
        "current-context: agent",
        "",
      ].join("\n"),
    );
    const r = await ctl(["jobs", "--output", "json"], { env: { KUBECONFIG: kubeconfig } });
    expect(r.code, said(r)).toBe(0);
    const { items } = JSON.parse(r.stdout) as { items: JobRecord[] };
    expect(items.length).toBeGreaterThanOrEqual(2);
    expect(items.every((j) => j.target.namespace === NS)).toBe(true);

    const none = await ctl(["jobs", "-n", NS]);
    expect(none.code, said(none)).toBe(2);
    expect(none.stderr).toMatch(
      /^connectorctl: no token for the gateway: give --token, set CONNECTOR_TOKEN, or use a kubeconfig whose current user has a token; the kubeconfig's current user has none/,
    );
  });

  it("refuses to cancel a job that has ended (409, exit 3), and says when the gateway is out of reach (exit 6)", async () => {
    const done = await ctl(["jobs", "-n", NS, "--state", "succeeded", "--output", "json", "--limit", "1"], {
      token: tokens.agent,
    });
    expect(done.code, said(done)).toBe(0);
    const [job] = (JSON.parse(done.stdout) as { items: JobRecord[] }).items;
    expect(job, said(done)).toMatchObject({ state: "succeeded" });
    const cancel = await ctl(["jobs", job!.id, "--cancel"], { token: tokens.agent });
    expect(cancel.code, said(cancel)).toBe(3);
    expect(cancel.stderr).toMatch(
      /^connectorctl: 409 validation_error JobNotCancelable: job \S+ has already succeeded/,
    );

    const away = await ctl(["jobs", "-n", NS, "--gateway", "http://127.0.0.1:9"], { token: tokens.agent });
    expect(away.code, said(away)).toBe(6);
    expect(away.stderr).toMatch(
      /^connectorctl: transient GatewayUnreachable: cannot reach the gateway at http:\/\/127\.0\.0\.1:9: fetch failed/,
    );
  });
});
