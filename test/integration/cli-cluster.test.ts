// connectorctl status and diff against a real kube-apiserver + etcd, a real PostgreSQL and
// the controller running on them: what a platform team sees during an incident (status)
// and before a merge (diff), with the exit codes scripts rely on.
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as yaml from "js-yaml";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../controller/src/api/paths.ts";
import type { Connector } from "../../controller/src/api/types.ts";
import { apply } from "../support/cluster.ts";
import { condition, getConnector, httpConnector, waitConnector } from "../support/connectors.ts";
import type { ControlPlane } from "../support/controlPlane.ts";
import { startHttpTarget, type HttpTarget } from "../support/httpTarget.ts";
import { freePort } from "../support/net.ts";
import type { TestPostgres } from "../support/postgres.ts";
import { startWorld, type World } from "../support/world.ts";

const NS = "team-cli";
const cli = join(projectRoot, "controller/src/cli/connectorctl.ts");
let world: World;
let cp: ControlPlane;
let db: TestPostgres;
let sql: pg.Pool;
let up: HttpTarget;
let down: HttpTarget;
let dir: string;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** connectorctl as a user runs it, against the test cluster (and, with db, the database). */
function ctl(args: string[], opts: { db?: boolean; input?: string } = {}): Promise<Result> {
  const env: NodeJS.ProcessEnv = { ...process.env, KUBECONFIG: cp.kubeconfigPath };
  delete env.DATABASE_URL;
  delete env.DATA_DIR;
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [cli, ...args, ...(opts.db ? ["--database-url", db.url] : [])],
      { cwd: projectRoot, env, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin!.end(opts.input ?? "");
  });
}

function file(name: string, docs: object[]): string {
  const path = join(dir, name);
  writeFileSync(path, docs.map((d) => yaml.dump(d)).join("---\n"));
  return path;
}

function settled(name: string, ok: (c: Connector) => boolean, what: string): Promise<Connector> {
  const current = (c: Connector) => c.status?.observedGeneration === c.metadata.generation && ok(c);
  return waitConnector(cp, NS, name, current, what, 60_000);
}

const okHook = () => httpConnector(NS, "ok-hook", up.url);
const observed = () => httpConnector(NS, "observed", up.url, { "cynodeai.io/management-policy": "Observe" });

beforeAll(async () => {
  world = await startWorld({ target: true, namespaces: [NS] });
  ({ cp, db, sql } = world);
  up = world.target;
  down = await startHttpTarget();
  world.defer("the failing target", () => down.stop());
  down.status = 503;
  dir = world.tempDir("cc-cli-cluster-");
  await world.startController(["--log-level", "info"]);
  await apply(cp, [okHook(), httpConnector(NS, "down-hook", down.url), observed()]);
  await settled("ok-hook", (c) => condition(c, "Ready")?.status === "True", "Ready");
  await settled("down-hook", (c) => condition(c, "Healthy")?.status === "False", "Healthy=False");
  await settled("observed", (c) => condition(c, "Ready")?.status === "True", "Ready");
  // A DBA's change the controller only reports (management policy Observe).
  await sql.query(
    `update connector_instances set enabled = false where namespace = $1 and name = 'observed'`,
    [NS],
  );
  await settled("observed", (c) => condition(c, "UpToDate")?.status === "False", "UpToDate=False");
}, 600_000);

afterAll(async () => {
  await world?.stop();
});

describe("connectorctl status", () => {
  it("shows every Connector on one line: state, Ready/Synced/Healthy, drift, age and why", async () => {
    const r = await ctl(["status"]);
    console.log(`connectorctl status:\n${r.stdout}`);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^NAMESPACE +NAME +TYPE +STATE +READY +SYNCED +HEALTHY +DRIFT +AGE +MESSAGE$/);
    const line = (name: string) => lines.find((l) => l.split(/ +/)[1] === name) ?? "";
    expect(line("ok-hook")).toMatch(/^team-cli +ok-hook +http\/v2 +active +True +True +True +- +\d+s/);
    expect(line("down-hook")).toMatch(
      /^team-cli +down-hook +http\/v2 +(degraded|error) +False \(\w+\) +True +False \(\w+\) +- +\d+s +\S.*503/,
    );
    expect(line("observed")).toMatch(
      /^team-cli +observed +http\/v2 +active +True +True +True +enabled +\d+s/,
    );
  });

  it("shows one Connector in full with -n and a name, and exits 1 for one that does not exist", async () => {
    const r = await ctl(["status", "-n", NS, "down-hook"]);
    console.log(`connectorctl status -n ${NS} down-hook:\n${r.stdout}`);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Connector:  ${NS}/down-hook`);
    expect(r.stdout).toMatch(/^Last error: transient( \(\w+\))?: .*HTTP 503/m);
    expect(r.stdout).toMatch(/^ {2}Healthy +False +\w+ +\d+s/m);
    const named = await ctl(["status", "observed"]); // no -n: looked for in every namespace
    expect(named.stdout).toContain("Drift:      detected in enabled");
    const missing = await ctl(["status", "-n", NS, "nope"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`connector "nope" not found in namespace ${NS}\n`);
  });

  it("-o json carries state, conditions, last error and drift for machines", async () => {
    const r = await ctl(["status", "-n", NS, "-o", "json"]);
    expect(r.code).toBe(0);
    const items = (JSON.parse(r.stdout) as { items: Record<string, unknown>[] }).items;
    expect(items.map((i) => i.name)).toEqual(["down-hook", "observed", "ok-hook"]);
    expect(items[1]).toMatchObject({ state: "active", drift: { detected: true, fields: ["enabled"] } });
    expect(items[0]).toMatchObject({ lastError: { class: "transient" } });
    expect((items[2]!.conditions as { type: string }[]).map((c) => c.type)).toEqual(
      expect.arrayContaining(["Ready", "Synced", "Healthy", "UpToDate"]),
    );
  });

  it("says why when the API server cannot be reached (the cause, not just 'fetch failed'), exit 2", async () => {
    const port = await freePort();
    const kubeconfig = readFileSync(cp.kubeconfigPath, "utf8").replace(
      cp.server,
      `https://127.0.0.1:${port}`,
    );
    const path = join(dir, "unreachable.kubeconfig");
    writeFileSync(path, kubeconfig);
    const r = await ctl(["status", "--kubeconfig", path]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      new RegExp(
        `^connectorctl: listing Connectors \\(https://127\\.0\\.0\\.1:${port}\\): fetch failed: .*ECONNREFUSED`,
      ),
    );
  });
});

describe("connectorctl diff", () => {
  it("exit 0 and prints nothing when the files match the cluster and the database", async () => {
    const r = await ctl(["diff", file("same.yaml", [okHook()])], { db: true });
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("0 object(s) would change in the cluster, 0 instance row(s) would change");
    expect(r.code).toBe(0);
  });

  it("exit 1 with the cluster's change (server-side dry run) and the row's, changing neither", async () => {
    const before = await getConnector(cp, NS, "ok-hook");
    const rowBefore = (
      await sql.query("select * from connector_instances where uid = $1", [before!.metadata.uid])
    ).rows[0];
    const changed = okHook();
    changed.spec.config = { ...changed.spec.config, headers: { "X-Source": "cynode-canary" } };
    changed.spec.enabled = false;
    const r = await ctl(["diff", file("changed.yaml", [changed])], { db: true });
    console.log(`connectorctl diff (exit ${r.code}):\n${r.stdout}${r.stderr}`);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`--- live/cynodeai.io.v1alpha1.Connector.${NS}.ok-hook`);
    expect(r.stdout).toContain(`+++ merged/cynodeai.io.v1alpha1.Connector.${NS}.ok-hook`);
    expect(r.stdout).toMatch(/^- +X-Source: cynode-status$/m);
    expect(r.stdout).toMatch(/^\+ +X-Source: cynode-canary$/m);
    expect(r.stdout).toMatch(/^- +enabled: true$/m);
    expect(r.stdout).toContain(`--- instance/${NS}/ok-hook (row ${rowBefore.id}, applied generation`);
    expect(r.stdout).toContain(
      '@@ config.headers @@\n-{"X-Source":"cynode-status"}\n+{"X-Source":"cynode-canary"}\n',
    );
    expect(r.stdout).toContain("@@ enabled @@\n-true\n+false\n");
    expect(r.stderr).toContain("1 object(s) would change in the cluster, 1 instance row(s) would change");
    // A dry run: nothing was written.
    const after = await getConnector(cp, NS, "ok-hook");
    expect(after!.metadata.resourceVersion).toBe(before!.metadata.resourceVersion);
    const rowAfter = (
      await sql.query("select * from connector_instances where uid = $1", [before!.metadata.uid])
    ).rows[0];
    // The spec's columns: the controller's own probes may still touch health and updated_at.
    const specOf = (row: Record<string, unknown>) => ({
      config: row.config,
      enabled: row.enabled,
      applied_generation: row.applied_generation,
      spec_hash: row.spec_hash,
    });
    expect(specOf(rowAfter)).toEqual(specOf(rowBefore));
  });

  it("shows a row changed by hand as what applying (or the controller) would overwrite, from stdin", async () => {
    const text = yaml.dump(observed());
    const r = await ctl(["diff", "-"], { db: true, input: text });
    expect(r.code).toBe(1);
    expect(r.stdout).not.toContain("--- live/");
    expect(r.stdout).toMatch(/^--- instance\/team-cli\/observed \(row [0-9a-f-]+, applied generation 1\)$/m);
    expect(r.stdout).toContain("@@ enabled @@\n-false\n+true\n");
  });

  it("shows a new Connector whole, with the row the controller would create, and creates nothing", async () => {
    const r = await ctl(["diff", file("new.yaml", [httpConnector(NS, "brand-new", up.url)])], { db: true });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^@@ -0,0 \+1,\d+ @@$/m);
    expect(r.stdout).toMatch(/^\+ +name: brand-new$/m);
    expect(r.stdout).toContain(`--- instance/${NS}/brand-new (no row)`);
    expect(r.stdout).toContain('@@ type @@\n+"http"\n');
    expect(await getConnector(cp, NS, "brand-new")).toBeUndefined();
  });

  it("exit 2 naming file, document and field when the API server or the controller would refuse it", async () => {
    // A new object: on an existing one, a server-side apply keeps fields other managers own.
    const noOwner = httpConnector(NS, "no-owner", up.url) as unknown as { spec: Record<string, unknown> };
    delete noOwner.spec.owner;
    const badConfig = okHook();
    badConfig.metadata.name = "bad-config";
    badConfig.spec.config = { ...badConfig.spec.config, timeoutMs: "soon" };
    const path = file("refused.yaml", [noOwner, badConfig]);
    const r = await ctl(["diff", path], { db: true });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `${path}#1 Connector ${NS}/no-owner: the API server refused Connector no-owner`,
    );
    expect(r.stderr).toMatch(/422 .*spec\.owner: Required value/);
    expect(r.stderr).toMatch(
      new RegExp(
        `${path.replace(/[.]/g, "\\.")}#2 Connector ${NS}/bad-config: spec\\.config\\.timeoutMs: .*would refuse this spec`,
      ),
    );
  });

  it("without a database compares the cluster only and says so", async () => {
    const changed = okHook();
    changed.spec.enabled = false;
    const r = await ctl(["diff", file("nodb.yaml", [changed])]);
    expect(r.code).toBe(1);
    expect(r.stdout).not.toContain("instance/");
    expect(r.stderr).toContain("instance rows not compared: give --database-url");
  });
});
