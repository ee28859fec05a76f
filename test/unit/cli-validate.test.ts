// connectorctl validate for CI: standard input (`kustomize build | connectorctl validate -`)
// and JUnit XML that a real XML parser reads, whatever the documents hold.
import { execFile, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import * as yaml from "js-yaml";
import { describe, expect, it } from "vitest";
import { defaultCatalogDirs, projectRoot } from "../../controller/src/api/paths.ts";
import { formatJunit } from "../../controller/src/cli/junit.ts";
import { validateFiles } from "../../controller/src/cli/validate.ts";

const exec = promisify(execFile);
const cli = join(projectRoot, "controller/src/cli/connectorctl.ts");
const example = (f: string) => readFileSync(join(projectRoot, f), "utf8");

/** connectorctl from source, with `input` on standard input. */
function run(args: string[], input = "") {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: projectRoot, input, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface ParsedJunit {
  root: string;
  attrs: Record<string, string>;
  suites: {
    attrs: Record<string, string>;
    cases: {
      attrs: Record<string, string>;
      failure?: { attrs: Record<string, string>; text: string };
      out?: string;
    }[];
  }[];
}

/** Parses the report with Python's expat-based ElementTree: a real, strict XML parser. */
async function parseXml(xml: string): Promise<ParsedJunit> {
  const script = `
import json, sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.buffer.read())
def case(c):
    f = c.find("failure"); o = c.find("system-out")
    out = {"attrs": c.attrib}
    if f is not None: out["failure"] = {"attrs": f.attrib, "text": f.text or ""}
    if o is not None: out["out"] = o.text or ""
    return out
print(json.dumps({"root": root.tag, "attrs": root.attrib, "suites": [
  {"attrs": s.attrib, "cases": [case(c) for c in s.findall("testcase")]} for s in root.findall("testsuite")]}))
`;
  const child = execFile("python3", ["-c", script]);
  child.stdin!.end(xml);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const code = await new Promise<number | null>((r) => child.on("close", r));
  if (code !== 0) throw new Error(`not well-formed XML: ${stderr}`);
  return JSON.parse(stdout) as ParsedJunit;
}

describe("connectorctl validate -", { timeout: 60_000 }, () => {
  it("reads the documents from standard input, naming it <stdin> in problems", () => {
    const good = example("examples/connectors/status-webhook.yaml");
    const bad = example("examples/invalid/config-port-out-of-range.yaml");
    const r = run(["validate", "-"], `${good}\n---\n${bad}`);
    expect(r.stdout).toContain("<stdin>#2 Connector team-ops/big-port: spec.config.port: must be <= 65535");
    expect(r.stderr).toContain("1 file(s), 2 document(s), 1 problem(s)");
    expect(r.code).toBe(1);
    const ok = run(["validate", "-"], good);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("1 file(s), 1 document(s), 0 problem(s)");
  });

  it("mixes standard input with files, and reports bad YAML on it with line and column", () => {
    const r = run(["validate", "examples/connectors/ops-mail.yaml", "-"], "kind: Connector\n  spec: [\n");
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^<stdin>: \(yaml\): line 2, column \d+: bad indentation/m);
    expect(r.stderr).toContain("2 file(s)");
  });

  it("validateFiles takes standard input's text for -", () => {
    const report = validateFiles(["-"], {
      catalogPaths: defaultCatalogDirs,
      stdin: example("examples/invalid/unknown-type.yaml"),
    });
    expect(report.ok).toBe(false);
    expect(report.problems[0]).toMatchObject({ file: "<stdin>", document: 1, path: "spec.type" });
  });
});

describe("connectorctl validate --output junit", { timeout: 60_000 }, () => {
  it("is well-formed JUnit XML: a suite a file, a case a document, its problems the failure", async () => {
    const r = run([
      "validate",
      "--output",
      "junit",
      "examples/connectors",
      "examples/invalid/limits-over-cap.yaml",
      "examples/invalid/unknown-field.yaml",
    ]);
    expect(r.code).toBe(1);
    const report = await parseXml(r.stdout);
    expect(report.root).toBe("testsuites");
    const cases = report.suites.flatMap((s) => s.cases);
    const failed = cases.filter((c) => c.failure);
    expect(Number(report.attrs.tests)).toBe(cases.length);
    expect(Number(report.attrs.failures)).toBe(failed.length);
    expect(failed.map((c) => c.attrs.classname)).toEqual([
      "examples/invalid/limits-over-cap.yaml",
      "examples/invalid/unknown-field.yaml",
    ]);
    expect(failed[0]!.attrs.name).toBe("#1 Connector team-ops/greedy-mail");
    expect(failed[0]!.failure!.attrs.message).toBe(
      "spec.limits.maxParallelInvocations: 64 is over the connector type's cap of 16",
    );
    for (const s of report.suites) expect(Number(s.attrs.tests), s.attrs.name).toBe(s.cases.length);
    // The deprecated type version of ticketing-webhook is a warning: it passes, with output.
    const warned = cases.find((c) => c.attrs.name?.includes("ticketing-webhook"));
    expect(warned?.failure).toBeUndefined();
    expect(warned?.out).toContain("deprecated");
    const pass = run(["validate", "--output", "junit", "examples/connectors"]);
    expect(pass.code).toBe(0);
    expect((await parseXml(pass.stdout)).attrs.failures).toBe("0");
  });

  it("stays readable XML when names and messages hold markup, quotes or characters XML forbids", async () => {
    const nasty = "a<b>&\"c'\u0000\u0007\ud800\uffff\u{1f600}\n]]>";
    const doc = yaml.load(example("examples/invalid/config-unknown-field.yaml")) as {
      metadata: { name: string };
      spec: { config: Record<string, unknown> };
    };
    doc.metadata.name = `x${nasty}`;
    doc.spec.config[nasty] = nasty;
    const report = validateFiles(["-"], {
      catalogPaths: defaultCatalogDirs,
      stdin: JSON.stringify(doc),
    });
    report.problems.push({ file: `dir/${nasty}.yaml`, document: 0, path: "(yaml)", message: nasty });
    expect(report.problems.length).toBeGreaterThan(1);
    const parsed = await parseXml(formatJunit(report));
    const failures = parsed.suites.flatMap((s) => s.cases).filter((c) => c.failure);
    expect(failures).toHaveLength(2);
    // Markup and quotes survive as text; the forbidden characters become U+FFFD.
    expect(
      failures.some((c) => c.attrs.classname?.includes("a<b>&\"c'\ufffd\ufffd\ufffd\ufffd\u{1f600}")),
    ).toBe(true);
    expect(parsed.suites.some((s) => s.cases.some((c) => c.failure?.text.includes("]]>")))).toBe(true);
  });
});

describe("--version and --help", { timeout: 60_000 }, () => {
  it("connectorctl answers --version (and `version`) with package.json's version and the commit", async () => {
    const pkg = JSON.parse(example("package.json")) as { version: string };
    const { stdout } = await exec(process.execPath, [cli, "--version"], {
      cwd: projectRoot,
      env: { ...process.env, GIT_COMMIT: "0123456789abcdef0123456789abcdef01234567" },
    });
    expect(stdout).toBe(`connectorctl ${pkg.version} (commit 0123456789ab, node ${process.version})\n`);
    for (const args of [["version"], ["status", "-n", "x", "--version"]]) {
      const r = run(args);
      expect(r.code, args.join(" ")).toBe(0);
      expect(r.stdout, args.join(" ")).toMatch(
        new RegExp(`^connectorctl ${pkg.version.replace(/\./g, "\\.")} \\(commit \\S+, `),
      );
    }
  });

  it("connectorctl answers --help on any command with the usage and exit code 0", () => {
    for (const args of [["--help"], ["diff", "-n", "x", "--help"]]) {
      const r = run(args);
      expect(r.code, args.join(" ")).toBe(0);
      expect(r.stdout).toContain("status [NAME]");
      expect(r.stdout).toContain("diff <files, dirs or -...>");
    }
    expect(run([]).code).toBe(2);
  });
});
