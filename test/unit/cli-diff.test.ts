// connectorctl diff without servers: the unified diff (checked by patch(1)), the instance side
// (the reconciler's own comparison), and the exit codes. The cluster and the database are
// in-memory versions of the two ports; test/integration/cli-cluster.test.ts runs the same
// against a real kube-apiserver and PostgreSQL.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import * as yaml from "js-yaml";
import { afterAll, describe, expect, it } from "vitest";
import type { InstanceRow } from "../../controller/src/api/model.ts";
import { defaultCatalogDirs, projectRoot } from "../../controller/src/api/paths.ts";
import type { Connector } from "../../controller/src/api/types.ts";
import { ConfigSchemaCache } from "../../controller/src/catalog/configSchemas.ts";
import { loadFileCatalog, type LoadedDocument } from "../../controller/src/catalog/fileCatalog.ts";
import { diffDocuments, exitCode, instanceDiff, type DiffOptions } from "../../controller/src/cli/diff.ts";
import { unifiedDiff } from "../../controller/src/cli/unifiedDiff.ts";
import type { KubeDocument } from "../../controller/src/kube/cliClient.ts";
import { validateConnector } from "../../controller/src/reconcile/validate.ts";

const dir = mkdtempSync(join(tmpdir(), "cc-diff-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Applies `patch` to `from` with patch(1), the reader diff -u output is written for. */
function applyPatch(from: string, patchText: string): string {
  writeFileSync(join(dir, "from"), from);
  writeFileSync(join(dir, "p"), patchText);
  execFileSync("patch", ["-s", "-o", join(dir, "to"), join(dir, "from"), join(dir, "p")]);
  return readFileSync(join(dir, "to"), "utf8");
}

describe("unifiedDiff", () => {
  it("is a patch that turns the one text into the other (checked by patch(1))", () => {
    const text = fc
      .array(fc.constantFrom("a", "b", "c", "d", "  e: 1", "  f: [x]"), { maxLength: 40 })
      .map((ls) => ls.map((l) => `${l}\n`).join(""));
    fc.assert(
      fc.property(text, text, (from, to) => {
        const d = unifiedDiff(from, to, { from: "live/x", to: "merged/x" });
        if (from === to) return d === "";
        expect(d.startsWith("--- live/x\n+++ merged/x\n@@ -")).toBe(true);
        expect(applyPatch(from, d)).toBe(to);
        return true;
      }),
      { numRuns: 30 },
    );
  }, 60_000);

  it("shows three lines of context around a change, as diff -u", () => {
    const from = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
    expect(unifiedDiff(from, from.replace("5", "five"), { from: "a", to: "b" })).toBe(
      "--- a\n+++ b\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n",
    );
    expect(unifiedDiff("", "x\n", { from: "a", to: "b" })).toBe("--- a\n+++ b\n@@ -0,0 +1,1 @@\n+x\n");
  });
});

// ---- the instance side ----------------------------------------------------------------

const catalog = loadFileCatalog(defaultCatalogDirs);
const webhook = yaml.load(
  readFileSync(join(projectRoot, "examples/connectors/status-webhook.yaml"), "utf8"),
) as Connector;

function desiredOf(c: Connector) {
  return validateConnector(c, { catalog, schemas: new ConfigSchemaCache(), enabledFeatures: new Set() })
    .desired;
}

function rowFor(c: Connector, uid: string): InstanceRow {
  return {
    ...desiredOf(c),
    id: "row-1",
    namespace: c.metadata.namespace!,
    name: c.metadata.name,
    uid,
    state: "active",
    secretVersion: null,
    secretFingerprint: null,
    lastSuccessAt: null,
    lastError: null,
    lastErrorClass: null,
    healthCheckedAt: null,
    appliedGeneration: 1,
    specHash: "h",
    createdAt: new Date(),
    updatedAt: new Date(),
    deletedAt: null,
  };
}

describe("instanceDiff", () => {
  it("lists the fields the controller would write, with the row's value and the spec's", () => {
    const row = rowFor(webhook, "u1");
    row.config = { ...row.config, baseUrl: "https://elsewhere.example/hook" };
    row.enabled = false;
    const text = instanceDiff(row, desiredOf(webhook), "team-platform/status-webhook");
    expect(text).toContain("--- instance/team-platform/status-webhook (row row-1, applied generation 1)");
    expect(text).toContain(
      `@@ config.baseUrl @@\n-"https://elsewhere.example/hook"\n+${JSON.stringify(webhook.spec.config!.baseUrl)}\n`,
    );
    expect(text).toContain("@@ enabled @@\n-false\n+true\n");
    expect(instanceDiff(rowFor(webhook, "u1"), desiredOf(webhook), "k")).toBe("");
  });

  it("shows every field of a row that does not exist yet", () => {
    const text = instanceDiff(undefined, desiredOf(webhook), "team-platform/status-webhook");
    expect(text).toContain("(no row)");
    for (const f of ["owner", "type", "typeVersion", "config", "policy", "enabled"])
      expect(text).toContain(`@@ ${f} @@`);
    expect(text).not.toMatch(/^-(?!-- )/m);
  });
});

// ---- diffDocuments over in-memory ports --------------------------------------------------

/** The cluster port over a map: what the API server holds, and a dry run that merges the spec in. */
function memoryCluster(objects: KubeDocument[] = []): DiffOptions["cluster"] & { applied: string[] } {
  const key = (d: KubeDocument) => `${d.kind}/${d.metadata.namespace ?? ""}/${d.metadata.name}`;
  const store = new Map(objects.map((o) => [key(o), o]));
  return {
    applied: [],
    defaultNamespace: "default",
    async get(d) {
      return structuredClone(store.get(key(d)));
    },
    async dryRunApply(d, manager) {
      this.applied.push(`${manager}:${key(d)}`);
      const live = store.get(key(d));
      return {
        ...structuredClone(d),
        metadata: { ...live?.metadata, ...d.metadata, uid: live?.metadata.uid ?? "new" },
      };
    },
    async catalog() {
      return { types: [...catalog.types.values()], templates: [...catalog.templates.values()] };
    },
  };
}

const docs = (...ds: unknown[]): LoadedDocument[] =>
  ds.map((doc, i) => ({ file: "f.yaml", index: i + 1, doc }));
const live = (): KubeDocument =>
  ({ ...structuredClone(webhook), metadata: { ...webhook.metadata, uid: "u1" } }) as never;

describe("diffDocuments", () => {
  it("exit 0 when the cluster object and the row already match the file", async () => {
    const r = await diffDocuments(docs(webhook), {
      cluster: memoryCluster([live()]),
      instances: { findByUid: async (uid) => (uid === "u1" ? rowFor(webhook, "u1") : undefined) },
      fieldManager: "kubectl",
    });
    expect(r).toMatchObject({ output: "", clusterChanges: 0, instanceChanges: 0, problems: [] });
    expect(exitCode(r)).toBe(0);
  });

  it("exit 1 with both layers when the spec changed; a row changed by hand shows on its own", async () => {
    const changed = structuredClone(webhook);
    changed.spec.enabled = false;
    const r = await diffDocuments(docs(changed), {
      cluster: memoryCluster([live()]),
      instances: { findByUid: async () => rowFor(webhook, "u1") },
      fieldManager: "kubectl",
    });
    expect(r.output).toContain("--- live/cynodeai.io.v1alpha1.Connector.team-platform.status-webhook");
    expect(r.output).toMatch(/^- {2}enabled: true$/m);
    expect(r.output).toMatch(/^\+ {2}enabled: false$/m);
    expect(r.output).toContain("@@ enabled @@\n-true\n+false\n");
    expect(exitCode(r)).toBe(1);

    const drifted = rowFor(webhook, "u1");
    drifted.config = { ...drifted.config, baseUrl: "https://dba.example/x" };
    const d = await diffDocuments(docs(webhook), {
      cluster: memoryCluster([live()]),
      instances: { findByUid: async () => drifted },
      fieldManager: "kubectl",
    });
    expect(d).toMatchObject({ clusterChanges: 0, instanceChanges: 1 });
    expect(d.output).toContain("@@ config.baseUrl @@");
  });

  it("exit 2 when the controller would refuse the spec, naming the file, document and field", async () => {
    const bad = structuredClone(webhook);
    bad.spec.config = { ...bad.spec.config, timeoutSeconds: "soon" };
    const r = await diffDocuments(docs(bad), {
      cluster: memoryCluster([live()]),
      instances: { findByUid: async () => undefined },
      fieldManager: "kubectl",
    });
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]).toMatch(
      /^f\.yaml#1 Connector team-platform\/status-webhook: spec\.config\.\S+: .*would refuse/,
    );
    expect(exitCode(r)).toBe(2);
  });

  it("passes over other groups' kinds, refuses a namespace that contradicts -n, defaults a missing one", async () => {
    const cluster = memoryCluster();
    const noNs = structuredClone(webhook);
    delete noNs.metadata.namespace;
    const r = await diffDocuments(
      docs({ apiVersion: "v1", kind: "Namespace", metadata: { name: "x" } }, webhook, noNs),
      { cluster, fieldManager: "argocd-controller", namespace: "other" },
    );
    expect(r.skipped).toEqual(["f.yaml#1 Namespace x"]);
    expect(r.problems).toEqual([
      'f.yaml#2 Connector team-platform/status-webhook: metadata.namespace: "team-platform" does not match the namespace given with -n ("other")',
    ]);
    expect(cluster.applied).toEqual(["argocd-controller:Connector/other/status-webhook"]);
    // Not in the cluster yet: the whole object is new.
    expect(r.output).toMatch(/^@@ -0,0 \+1,\d+ @@$/m);
  });

  it("without a database compares only the cluster", async () => {
    const changed = structuredClone(webhook);
    changed.spec.enabled = false;
    const r = await diffDocuments(docs(changed), {
      cluster: memoryCluster([live()]),
      fieldManager: "kubectl",
    });
    expect(r).toMatchObject({ clusterChanges: 1, instanceChanges: 0, problems: [] });
    expect(r.output).not.toContain("instance/");
  });
});
