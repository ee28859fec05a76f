// Drift, audit and deletion against the real API server and PostgreSQL: manual database
// changes are corrected within seconds (LISTEN/NOTIFY, not the resync), deletions are
// never lost, and the audit trail tells the whole story.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../controller/src/api/paths.ts";
import type { Connector } from "../../controller/src/api/types.ts";
import { apply, kubectlOk } from "../support/cluster.ts";
import { condition, getConnector, httpConnector, waitReady } from "../support/connectors.ts";
import type { ControlPlane } from "../support/controlPlane.ts";
import type { TestPostgres } from "../support/postgres.ts";
import { eventually } from "../support/wait.ts";
import { startWorld, type World } from "../support/world.ts";

const exec = promisify(execFile);
let world: World;
let cp: ControlPlane;
let db: TestPostgres;
let sql: pg.Pool;
const NS = "team-life";

function start(extra: string[] = []) {
  return world.startController(["--resync-period", "10m", "--log-level", "info", ...extra]);
}

function stop(): Promise<void> {
  return world.stopController();
}

function connector(name: string, annotations?: Record<string, string>): Connector {
  return httpConnector(NS, name, world.target.url, annotations);
}

async function row(name: string) {
  const r = await sql.query(
    "select * from connector_instances where namespace = $1 and name = $2 and deleted_at is null",
    [NS, name],
  );
  return r.rows[0];
}

const ready = (name: string) => waitReady(cp, NS, name);

/** A manual change, the way a DBA makes one: psql. */
async function psql(statement: string): Promise<void> {
  await exec("psql", [db.url, "-v", "ON_ERROR_STOP=1", "-c", statement]);
}

async function events(name: string): Promise<{ reason: string; type: string; message: string }[]> {
  const out = await kubectlOk(cp, [
    "get",
    "events",
    "-n",
    NS,
    "--field-selector",
    `involvedObject.name=${name}`,
    "-o",
    "json",
  ]);
  return (JSON.parse(out) as { items: { reason: string; type: string; message: string }[] }).items;
}

beforeAll(async () => {
  world = await startWorld({ target: true, namespaces: [NS] });
  ({ cp, db, sql } = world);
  await start();
}, 600_000);

afterAll(async () => {
  await world?.stop();
});

describe("drift", () => {
  it("corrects a manual UPDATE through psql within seconds and reports the path, an audit row and an Event", async () => {
    await apply(cp, connector("drifty"));
    await ready("drifty");
    const t0 = performance.now();
    await psql(
      `update connector_instances set config = jsonb_set(config, '{headers,X-Source}', '"evil-drift"') where namespace = '${NS}' and name = 'drifty'`,
    );
    await eventually(
      async () => (await row("drifty")).config.headers["X-Source"] === "cynode-status",
      "drift to be corrected",
      20_000,
    );
    const ms = performance.now() - t0;
    console.log(
      `drift correction: UPDATE -> corrected in ${ms.toFixed(0)} ms (resync period 10m, so the change feed did it)`,
    );
    const c = await eventually(async () => {
      const x = await getConnector(cp, NS, "drifty");
      return x?.status?.drift?.corrections ? x : undefined;
    }, "status.drift");
    // Corrected at once: no drift remains (DRIFT false, UpToDate True); the count and time stay.
    expect(c.status?.drift).toMatchObject({ detected: false, corrections: 1 });
    expect(c.status?.drift?.lastCorrectedAt).toBeDefined();
    expect(JSON.stringify(c.status)).not.toContain("evil-drift");
    const audit = await sql.query(
      "select * from connector_audit_events where namespace = $1 and name = 'drifty' and operation = 'drift_corrected'",
      [NS],
    );
    expect(audit.rows).toHaveLength(1);
    expect(audit.rows[0].details).toEqual({ fields: ["config.headers"] });
    await eventually(
      async () => (await events("drifty")).some((e) => e.reason === "DriftCorrected" && e.type === "Warning"),
      "DriftCorrected event",
    );
  });

  it("only reports drift under the Observe management policy, and corrects it when the annotation goes", async () => {
    await apply(cp, connector("watched", { "cynodeai.io/management-policy": "Observe" }));
    await ready("watched");
    await psql(
      `update connector_instances set enabled = false where namespace = '${NS}' and name = 'watched'`,
    );
    const c = await eventually(
      async () => {
        const x = await getConnector(cp, NS, "watched");
        return condition(x, "UpToDate")?.status === "False" ? x : undefined;
      },
      "UpToDate=False",
      20_000,
    );
    expect(condition(c, "UpToDate")).toMatchObject({ reason: "DriftDetected" });
    expect(condition(c, "UpToDate")?.message).toContain("enabled");
    expect((await row("watched")).enabled).toBe(false);

    await kubectlOk(cp, ["annotate", "connector", "watched", "-n", NS, "cynodeai.io/management-policy-"]);
    await eventually(
      async () => (await row("watched")).enabled === true,
      "the drift to be corrected",
      20_000,
    );
    await eventually(
      async () => condition(await getConnector(cp, NS, "watched"), "UpToDate")?.status === "True",
      "UpToDate=True",
    );
  });

  it("re-establishes a terminated LISTEN connection and still corrects drift within seconds", async () => {
    await apply(cp, connector("listener"));
    await ready("listener");
    const killed = await sql.query(
      "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'connector-controller-listen' and datname = current_database() and query ilike '%connector_instance_changed%'",
    );
    expect(killed.rowCount).toBe(1);
    await eventually(
      async () => {
        const r = await sql.query(
          "select count(*)::int as n from pg_stat_activity where application_name = 'connector-controller-listen' and datname = current_database()",
        );
        return r.rows[0].n === 1;
      },
      "a new LISTEN connection",
      20_000,
    );
    await psql(
      `update connector_instances set config = jsonb_set(config, '{timeoutMs}', '999') where namespace = '${NS}' and name = 'listener'`,
    );
    await eventually(
      async () => (await row("listener")).config.timeoutMs === 5000,
      "drift corrected after the reconnect",
      20_000,
    );
  });
});

describe("deletion", () => {
  it("soft-deletes with the default policy, keeps the row with Orphan, and never resurrects either", async () => {
    await apply(cp, connector("gone"));
    await apply(cp, connector("kept", { "cynodeai.io/deletion-policy": "Orphan" }));
    await ready("gone");
    await ready("kept");
    const keptRow = await row("kept");
    await kubectlOk(cp, ["delete", "connector", "gone", "kept", "-n", NS, "--timeout=60s"]);
    expect(await row("gone")).toBeUndefined();
    const all = await sql.query(
      "select name, deleted_at, enabled from connector_instances where namespace = $1 and name in ('gone','kept')",
      [NS],
    );
    expect(all.rows.find((r) => r.name === "gone")?.deleted_at).not.toBeNull();
    expect((await row("kept"))?.id).toBe(keptRow.id);
    // A resync does not bring anything back.
    world.controller.controller.resyncAll();
    await new Promise((r) => setTimeout(r, 1000));
    const after = await sql.query(
      "select count(*)::int as n from connector_instances where namespace = $1 and name in ('gone','kept')",
      [NS],
    );
    expect(after.rows[0].n).toBe(2);
  });

  it("gives a Connector deleted and recreated under the same name a new instance", async () => {
    await apply(cp, connector("phoenix"));
    const first = await ready("phoenix");
    await kubectlOk(cp, ["delete", "connector", "phoenix", "-n", NS, "--timeout=60s"]);
    await apply(cp, connector("phoenix"));
    const second = await ready("phoenix");
    expect(second.metadata.uid).not.toBe(first.metadata.uid);
    expect(second.status?.instanceId).not.toBe(first.status?.instanceId);
    const rows = await sql.query(
      "select uid, deleted_at from connector_instances where namespace = $1 and name = 'phoenix' order by created_at",
      [NS],
    );
    expect(rows.rows.map((r) => [r.uid, r.deleted_at === null])).toEqual([
      [first.metadata.uid, false],
      [second.metadata.uid, true],
    ]);
  });

  it("handles a deletion made while the controller was stopped", async () => {
    await apply(cp, connector("while-down"));
    await ready("while-down");
    await stop();
    await kubectlOk(cp, ["delete", "connector", "while-down", "-n", NS, "--wait=false"]);
    const pending = await getConnector(cp, NS, "while-down");
    expect(pending?.metadata.deletionTimestamp).toBeTruthy(); // held by the finalizer
    await start();
    await eventually(
      async () => (await getConnector(cp, NS, "while-down")) === undefined,
      "the object to go",
      30_000,
    );
    const r = await sql.query(
      "select deleted_at from connector_instances where namespace = $1 and name = 'while-down'",
      [NS],
    );
    expect(r.rows[0].deleted_at).not.toBeNull();
  });

  it("purges soft-deleted rows after the instance retention, and audits the purge", async () => {
    await stop();
    await start(["--instance-retention", "1s", "--retention-interval", "1s"]);
    await eventually(
      async () => {
        const r = await sql.query(
          "select count(*)::int as n from connector_instances where deleted_at is not null",
        );
        return r.rows[0].n === 0;
      },
      "soft-deleted rows to be purged",
      20_000,
    );
    const purged = await sql.query(
      "select name from connector_audit_events where operation = 'purged' and namespace = $1 order by name",
      [NS],
    );
    expect(purged.rows.map((r) => r.name)).toEqual(expect.arrayContaining(["gone", "phoenix", "while-down"]));
    expect(await row("kept")).toBeDefined(); // orphaned rows are not soft-deleted, so they stay
  });
});

describe("connectorctl audit", () => {
  it("shows the life of one Connector from creation to deletion", async () => {
    const cli = join(projectRoot, "controller/src/cli/connectorctl.ts");
    const table = await exec(process.execPath, [cli, "audit", `${NS}/gone`, "--database-url", db.url]);
    const ops = table.stdout
      .trim()
      .split("\n")
      .slice(1)
      .map((l) => l.split(/\s{3,}/)[1]);
    expect(ops[0]).toBe("created");
    expect(ops).toContain("deleted");
    expect(ops.at(-1)).toBe("purged");
    expect(table.stdout.split("\n")[0]).toMatch(/^AT\s+OPERATION\s+OUTCOME\s+ACTOR\s+REQUEST\s+DETAILS$/);
    const json = await exec(process.execPath, [
      cli,
      "audit",
      `${NS}/drifty`,
      "--database-url",
      db.url,
      "--output",
      "json",
    ]);
    const events = JSON.parse(json.stdout) as {
      operation: string;
      actor: string | null;
      requestId: string;
    }[];
    expect(events.map((e) => e.operation)).toEqual(expect.arrayContaining(["created", "drift_corrected"]));
    expect(events.find((e) => e.operation === "created")?.actor).toBe("kubectl-client-side-apply");
    expect(events.every((e) => e.requestId.length > 0)).toBe(true);
  });
});
