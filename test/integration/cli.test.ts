// connectorctl as a user runs it: built with `tsc`, started through npx and node.
import { execFile } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../controller/src/api/paths.ts";

const exec = promisify(execFile);
const bin = join(projectRoot, "dist/controller/src/cli/connectorctl.js");

async function run(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const child = execFile(
      cmd,
      args,
      { cwd: projectRoot, ...(opts.env ? { env: { ...process.env, ...opts.env } } : {}) },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin!.end(opts.input ?? "");
  });
}

beforeAll(async () => {
  await exec(join(projectRoot, "node_modules/.bin/tsc"), ["-p", "tsconfig.build.json"], { cwd: projectRoot });
  // As `make build` does: npm linked the bin before tsc wrote it, so nothing else marks it
  // executable, and `npx connectorctl` would fail with "Permission denied".
  chmodSync(bin, 0o755);
}, 300_000);

describe("connectorctl", () => {
  it("validates the examples with exit code 0 (npx connectorctl validate)", async () => {
    const r = await run("npx", [
      "--no-install",
      "connectorctl",
      "validate",
      "examples/connectors",
      "examples/types",
    ]);
    expect(r.stderr + r.stdout).toContain("0 problem(s)");
    expect(r.code).toBe(0);
  });

  const invalid = readdirSync(join(projectRoot, "examples/invalid")).filter((f) => f.endsWith(".yaml"));
  it.each(invalid)("refuses examples/invalid/%s with exit code 1 and its message", async (file) => {
    const path = join("examples/invalid", file);
    const expected = /^# expect: (.*)$/m.exec(readFileSync(join(projectRoot, path), "utf8"))?.[1];
    expect(expected, `${file} has no '# expect:' line`).toBeTruthy();
    const r = await run(process.execPath, [
      bin,
      "validate",
      path,
      "--catalog",
      "examples/types",
      "--catalog",
      "examples/policy-templates",
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${path}#1 Connector`);
    expect(r.stdout).toContain(expected!);
  });

  it("prints JSON with --output json", async () => {
    const r = await run(process.execPath, [
      bin,
      "validate",
      "examples/invalid/config-port-out-of-range.yaml",
      "--output",
      "json",
    ]);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report.ok).toBe(false);
    expect(report.problems[0]).toMatchObject({ document: 1, kind: "Connector", path: "spec.config.port" });
  });

  it("reports unreadable YAML with the file and line, and a usage error with exit code 2", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cc-cli-"));
    try {
      const bad = join(dir, "bad.yaml");
      await import("node:fs/promises").then((fs) => fs.writeFile(bad, "kind: Connector\n  spec: [\n"));
      const r = await run(process.execPath, [bin, "validate", bad]);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/bad\.yaml: \(yaml\): line 2, column \d+: bad indentation/);
      const usage = await run(process.execPath, [bin, "validate"]);
      expect(usage.code).toBe(2);
      expect(usage.stderr).toContain("validate needs at least one file or directory");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reads standard input for - (kustomize build | connectorctl validate -)", async () => {
    const docs = readdirSync(join(projectRoot, "examples/connectors"))
      .map((f) => readFileSync(join(projectRoot, "examples/connectors", f), "utf8"))
      .join("\n---\n");
    const ok = await run(process.execPath, [bin, "validate", "-"], { input: docs });
    expect(ok.stderr + ok.stdout).toContain("1 file(s), 8 document(s), 0 problem(s)");
    expect(ok.code).toBe(0);
    const bad = readFileSync(join(projectRoot, "examples/invalid/unknown-type.yaml"), "utf8");
    const r = await run(process.execPath, [bin, "validate", "-", "--output", "junit"], { input: bad });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^<\?xml version="1\.0" encoding="UTF-8"\?>\n<testsuites /);
    expect(r.stdout).toContain('<testsuite name="&lt;stdin&gt;" tests="1" failures="1"');
    expect(r.stdout).toContain('<failure message="spec.type: connector type');
  });

  it("answers --version with the version from package.json and the commit GIT_COMMIT names", async () => {
    const { version } = JSON.parse(readFileSync(join(projectRoot, "package.json"), "utf8")) as {
      version: string;
    };
    const r = await run(process.execPath, [bin, "--version"], {
      env: { GIT_COMMIT: "89abcdef0123456789abcdef0123456789abcdef" },
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`connectorctl ${version} (commit 89abcdef0123, node ${process.version})\n`);
  });

  it("migrates an embedded PGlite database, and says so when it is up to date", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cc-migrate-"));
    try {
      const first = await run(process.execPath, [bin, "migrate", "--data-dir", dir]);
      expect(first.stderr).toBe("");
      expect(first.stdout).toMatch(/applied: .*001/);
      const second = await run(process.execPath, [bin, "migrate", "--data-dir", dir]);
      expect(second.stdout).toContain("database is up to date");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
