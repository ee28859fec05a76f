// The chart's CRDs and built-in catalog, and argocd-cm's Lua, are copies of one source
// each (crds/, examples/types, examples/policy-templates, examples/argocd/connector-health.lua),
// made by hack/sync-chart.ts. This fails when a copy is missing, differs or is stale.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { loadAll } from "js-yaml";
import { describe, expect, it } from "vitest";
import {
  ARGOCD_CM,
  CHART_DIR,
  HEALTH_LUA,
  REPO_ROOT,
  checkSync,
  planSync,
  renderArgocdCm,
  writeSync,
} from "../../hack/sync-chart.ts";

const yamlIn = (dir: string): string[] =>
  fs.existsSync(path.join(REPO_ROOT, dir))
    ? fs
        .readdirSync(path.join(REPO_ROOT, dir))
        .filter((f) => f.endsWith(".yaml"))
        .sort()
    : [];

describe("generated copies (hack/sync-chart.ts)", () => {
  it("are all up to date: run `node hack/sync-chart.ts` after changing a source", () => {
    const diffs = checkSync();
    expect(diffs, diffs.map((d) => `${d.problem}: ${d.path}`).join("\n")).toEqual([]);
  });

  it("cover every CRD and every catalog file, byte for byte", () => {
    const plan = planSync();
    const pairs: Array<[string, string]> = [
      ["crds", `${CHART_DIR}/crds`],
      ["examples/types", `${CHART_DIR}/files/catalog/types`],
      ["examples/policy-templates", `${CHART_DIR}/files/catalog/policy-templates`],
    ];
    for (const [from, to] of pairs) {
      const sources = yamlIn(from);
      expect(sources.length, from).toBeGreaterThan(0);
      expect(yamlIn(to), to).toEqual(sources);
      for (const f of sources) {
        const source = fs.readFileSync(path.join(REPO_ROOT, from, f), "utf8");
        expect(fs.readFileSync(path.join(REPO_ROOT, to, f), "utf8"), `${to}/${f}`).toBe(source);
        expect(plan.files.get(`${to}/${f}`)).toBe(source);
      }
    }
  });

  it("put the catalog's kinds and the CRDs where the chart expects them", () => {
    const kinds = (dir: string) =>
      yamlIn(dir).flatMap((f) =>
        (loadAll(fs.readFileSync(path.join(REPO_ROOT, dir, f), "utf8")) as Array<{ kind: string }>).map(
          (d) => d.kind,
        ),
      );
    expect(new Set(kinds(`${CHART_DIR}/crds`))).toEqual(new Set(["CustomResourceDefinition"]));
    expect(new Set(kinds(`${CHART_DIR}/files/catalog/types`))).toEqual(new Set(["ConnectorType"]));
    expect(new Set(kinds(`${CHART_DIR}/files/catalog/policy-templates`))).toEqual(
      new Set(["ConnectorPolicyTemplate"]),
    );
  });

  it("embed the Lua health check in argocd-cm unchanged", () => {
    const lua = fs.readFileSync(path.join(REPO_ROOT, HEALTH_LUA), "utf8");
    expect(fs.readFileSync(path.join(REPO_ROOT, ARGOCD_CM), "utf8")).toBe(renderArgocdCm(lua));
  });

  it("notice a changed, a missing and a stale copy, and repair them", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "chart-sync-"));
    try {
      const put = (rel: string, text: string) => {
        fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
        fs.writeFileSync(path.join(root, rel), text);
      };
      put("crds/a.yaml", "kind: CustomResourceDefinition\n");
      put("examples/types/t.yaml", "kind: ConnectorType\n");
      put("examples/policy-templates/p.yaml", "kind: ConnectorPolicyTemplate\n");
      put(HEALTH_LUA, "return { status = 'Healthy' }\n");
      expect(writeSync(root).map((d) => d.problem)).toEqual(["missing", "missing", "missing", "missing"]);
      expect(checkSync(root)).toEqual([]);

      put("crds/a.yaml", "kind: CustomResourceDefinition # changed\n");
      put(`${CHART_DIR}/crds/gone.yaml`, "kind: CustomResourceDefinition\n");
      put(HEALTH_LUA, "return { status = 'Degraded' }\n");
      expect(checkSync(root)).toEqual([
        { path: `${CHART_DIR}/crds/a.yaml`, problem: "differs" },
        { path: ARGOCD_CM, problem: "differs" },
        { path: `${CHART_DIR}/crds/gone.yaml`, problem: "stale" },
      ]);
      writeSync(root);
      expect(checkSync(root)).toEqual([]);
      expect(fs.existsSync(path.join(root, CHART_DIR, "crds/gone.yaml"))).toBe(false);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
