// The platform team's docs (docs/): every condition reason the controller can set is in
// the troubleshooting guide, and the guides link each other and the chart's README links
// them. The README's connectorctl invoke/jobs/approve lines are ones the CLI accepts, and its
// exit-code table is the CLI's. (docs/upgrading.md's CRD step is run by test/integration/chart.test.ts.)
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

/** Shell words of a command line: quotes removed, stopping at an unquoted `#`, `)` or `;`. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'" || c === '"') {
      const end = line.indexOf(c, i + 1);
      word = (word ?? "") + line.slice(i + 1, end);
      i = end;
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if ("#);".includes(c)) break;
    else word = (word ?? "") + c;
  }
  if (word !== undefined) words.push(word);
  return words;
}

describe("README: Invoking operations", () => {
  const readme = read("README.md").replace(/\\\n\s*/g, " ");
  // Command lines only: at a line's start, after npx, or inside $( ).
  const calls = [...readme.matchAll(/(?:^|npx |\$\()connectorctl (invoke|jobs|approve)\b([^\n]*)/gm)].map(
    (m) => ({
      command: m[1]!,
      line: m[0],
      args: shellWords(m[2]!),
    }),
  );

  it("shows only command lines connectorctl accepts", async () => {
    const g = await import("../../controller/src/cli/gatewayCommands.ts");
    const parse = { invoke: g.parseInvokeArgs, jobs: g.parseJobsArgs, approve: g.parseApproveArgs };
    expect(new Set(calls.map((c) => c.command))).toEqual(new Set(["invoke", "jobs", "approve"]));
    for (const c of calls) expect(() => parse[c.command as keyof typeof parse](c.args), c.line).not.toThrow();
  });

  it("lists the exit codes connectorctl uses, class by class", async () => {
    const { EXIT_CODE_BY_CLASS } = await import("../../controller/src/cli/gatewayFailure.ts");
    for (const [cls, code] of Object.entries(EXIT_CODE_BY_CLASS))
      expect(readme, `${cls} exits ${code}`).toMatch(new RegExp(`^\\| ${code} +\\| \`${cls}\`:`, "m"));
  });
});
