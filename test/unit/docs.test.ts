// The platform team's docs (docs/): every condition reason the controller can set is in
// the troubleshooting guide, and the guides link each other and the chart's README links
// them. (docs/upgrading.md's CRD step is run by test/integration/chart.test.ts.)
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { projectRoot } from "../../controller/src/api/paths.ts";

const read = (rel: string) => readFileSync(join(projectRoot, rel), "utf8");

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith(".ts") ? [p] : [];
  });
}

/** Reasons set in conditions and errors: ConnectorError(class, "Reason"), reason: "Reason", invalid("Reason"). */
function reasonsInCode(): Map<string, string> {
  const out = new Map<string, string>();
  const patterns = [
    /new ConnectorError\(\s*"[a-z_]+",\s*"([A-Z][A-Za-z]+)"/g,
    /\breason: "([A-Z][A-Za-z]+)"/g,
    /\binvalid\(\s*"([A-Z][A-Za-z]+)"/g,
  ];
  for (const file of sources(join(projectRoot, "controller/src"))) {
    const text = readFileSync(file, "utf8");
    for (const re of patterns) for (const m of text.matchAll(re)) out.set(m[1]!, relative(projectRoot, file));
  }
  // Not condition reasons: the admission webhook's HTTP status reason.
  out.delete("Invalid");
  return out;
}

describe("docs/troubleshooting.md", () => {
  it("explains every reason the controller can set", () => {
    const reasons = reasonsInCode();
    expect(reasons.size).toBeGreaterThan(40);
    const doc = read("docs/troubleshooting.md");
    const missing = [...reasons].filter(([r]) => !doc.includes(`\`${r}\``)).map(([r, f]) => `${r} (${f})`);
    expect(missing).toEqual([]);
  });
});

describe("the platform team's guides", () => {
  const guides = [
    "install.md",
    "vault.md",
    "kubernetes-secrets.md",
    "upgrading.md",
    "uninstalling.md",
    "troubleshooting.md",
  ];

  it("exist and link only to files that exist", () => {
    for (const g of guides) {
      const text = read(`docs/${g}`);
      for (const m of text.matchAll(/\]\(([a-z-]+\.md)\)/g))
        expect(readdirSync(join(projectRoot, "docs")), `${g} links ${m[1]}`).toContain(m[1]);
    }
  });

  it("are linked from the chart's README and the project's", () => {
    for (const readme of ["charts/connector-controller/README.md", "README.md"])
      for (const g of guides) expect(read(readme), `${readme} links docs/${g}`).toContain(`docs/${g}`);
  });
});
