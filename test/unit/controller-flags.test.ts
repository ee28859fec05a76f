// The controller's --help and --version: they answer on standard output with exit code 0,
// whatever else is on the command line, and never start anything.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { projectRoot } from "../../controller/src/api/paths.ts";
import { FLAGS, informationRequested, loadConfig } from "../../controller/src/config.ts";

const version = (JSON.parse(readFileSync(join(projectRoot, "package.json"), "utf8")) as { version: string })
  .version;

describe("connector-controller --help and --version", { timeout: 60_000 }, () => {
  it("--help lists every flag with its environment variable, and --help and --version themselves", () => {
    const help = informationRequested(["--help"])!;
    for (const [flag, { env }] of Object.entries(FLAGS))
      expect(help).toMatch(new RegExp(`--${flag} +${env} `));
    expect(help).toContain("--help");
    expect(help).toContain("--version");
    expect(informationRequested(["-h"])).toBe(help);
    // Even beside flags that would not load.
    expect(informationRequested(["--concurrency", "zero", "--help"])).toBe(help);
  });

  it("--version says the version and the commit; nothing else asks for an answer", () => {
    expect(informationRequested(["--version"])).toMatch(
      new RegExp(`^connector-controller ${version.replace(/\./g, "\\.")} \\(commit \\S+, node v\\d+`),
    );
    expect(informationRequested([])).toBeUndefined();
    expect(informationRequested(["--log-level", "debug"])).toBeUndefined();
    expect(informationRequested(["--", "--help"])).toBeUndefined();
    // loadConfig itself still refuses them: main answers before it loads the configuration.
    expect(() => loadConfig(["--help"], {})).toThrow(/--help/);
  });

  it("the controller's main answers --help with its flags and exit code 0 (and --version likewise)", () => {
    const main = join(projectRoot, "controller/src/main.ts");
    // No cluster, no database: an answer must come before either is looked for.
    const env = { ...process.env, KUBECONFIG: "/nonexistent", DATABASE_URL: "postgres://127.0.0.1:1/none" };
    const help = spawnSync(process.execPath, [main, "--help"], { encoding: "utf8", env, timeout: 30_000 });
    expect(help.stderr).toBe("");
    expect(help.status).toBe(0);
    expect(help.stdout).toContain("usage: connector-controller");
    expect(help.stdout).toContain("--log-format");
    const v = spawnSync(process.execPath, [main, "--version"], { encoding: "utf8", env, timeout: 30_000 });
    expect(v.status).toBe(0);
    expect(v.stdout).toMatch(/^connector-controller \S+ \(commit /);
  });
});
