// Static checks of the Dockerfile and .dockerignore (no Docker engine is needed): a
// multi-stage Node 24 slim build, a non-root runtime that carries only production
// dependencies and the compiled controller, no secrets in the image, and the image the
// Helm chart refers to.
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { load } from "js-yaml";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const read = (rel: string): string => fs.readFileSync(path.join(ROOT, rel), "utf8");

interface Instruction {
  op: string;
  args: string;
  line: number;
}
interface Stage {
  from: string;
  name: string | undefined;
  body: Instruction[];
}

/** Instructions with continuation lines joined and comments dropped. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = "";
  let start = 0;
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (pending === "" && (line === "" || line.startsWith("#"))) return;
    if (pending === "") start = i + 1;
    if (line.endsWith("\\")) {
      pending += line.slice(0, -1) + " ";
      return;
    }
    const full = (pending + line).trim();
    pending = "";
    const m = /^(\w+)\s+([\s\S]*)$/.exec(full);
    if (m) out.push({ op: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
  });
  return out;
}

function stages(instructions: Instruction[]): Stage[] {
  const out: Stage[] = [];
  for (const ins of instructions) {
    if (ins.op === "FROM") {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      out.push({ from: m?.[1] ?? ins.args, name: m?.[2], body: [] });
    } else out.at(-1)?.body.push(ins);
  }
  return out;
}

/** COPY/ADD sources (without flags); the last word is the destination. */
function copySources(ins: Instruction): { from: string | undefined; sources: string[] } {
  if (ins.args.startsWith("[")) {
    const parts = JSON.parse(ins.args) as string[];
    return { from: undefined, sources: parts.slice(0, -1) };
  }
  const words = ins.args.split(/\s+/);
  const from = words.find((w) => w.startsWith("--from="))?.slice("--from=".length);
  const rest = words.filter((w) => !w.startsWith("--"));
  return { from, sources: rest.slice(0, -1) };
}

const dockerfile = read("Dockerfile");
const all = parseDockerfile(dockerfile);
const stageList = stages(all);
const runtime = stageList.at(-1)!;
const dockerignore = read(".dockerignore")
  .split("\n")
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith("#"));

describe("Dockerfile", () => {
  it("is multi-stage, every stage on node:24-slim", () => {
    expect(stageList.length).toBeGreaterThanOrEqual(2);
    for (const s of stageList) expect(s.from).toMatch(/^node:24-slim(@sha256:[0-9a-f]{64})?$/);
    expect(stageList[0]!.name).toBe("build");
  });

  it("builds with npm ci and npm run build, then installs only production dependencies", () => {
    const build = stageList[0]!.body.filter((i) => i.op === "RUN").map((i) => i.args);
    expect(build.some((r) => /\bnpm ci\b/.test(r) && !/--omit=dev/.test(r))).toBe(true);
    expect(build.some((r) => /\bnpm run build\b/.test(r))).toBe(true);
    const run = runtime.body.filter((i) => i.op === "RUN").map((i) => i.args);
    expect(run.some((r) => /\bnpm ci\b.*--omit=dev/.test(r))).toBe(true);
    expect(run.some((r) => /\bnpm run build\b|\btsc\b/.test(r))).toBe(false);
  });

  it("copies the compiled controller from the build stage, and the CRDs and built-in catalog", () => {
    const copies = runtime.body.filter((i) => i.op === "COPY").map(copySources);
    expect(copies).toContainEqual({ from: "build", sources: [expect.stringMatching(/\/dist\/?$/)] });
    const local = copies.filter((c) => c.from === undefined).flatMap((c) => c.sources);
    expect(local).toEqual(
      expect.arrayContaining([
        "package.json",
        "package-lock.json",
        "crds/",
        "examples/types/",
        "examples/policy-templates/",
      ]),
    );
    for (const src of local) expect(fs.existsSync(path.join(ROOT, src)), src).toBe(true);
  });

  it("runs as a non-root user", () => {
    const users = runtime.body.filter((i) => i.op === "USER").map((i) => i.args);
    expect(users.length).toBeGreaterThan(0);
    const user = users.at(-1)!.split(":")[0]!;
    expect(["root", "0", ""]).not.toContain(user);
    expect(user === "node" || Number(user) >= 1000).toBe(true);
    // USER comes after every RUN of the stage (nothing runs as root after it... and nothing needs to).
    const lastUser = runtime.body.findLastIndex((i) => i.op === "USER");
    expect(runtime.body.slice(lastUser).some((i) => i.op === "RUN")).toBe(false);
  });

  it("starts the compiled main module", () => {
    const entry = runtime.body.filter((i) => i.op === "ENTRYPOINT").at(-1);
    expect(JSON.parse(entry?.args ?? "null")).toEqual(["node", "dist/controller/src/main.js"]);
    // tsconfig.build.json compiles controller/src into dist/ keeping the path.
    const build = JSON.parse(read("tsconfig.build.json")) as { compilerOptions: { outDir: string } };
    expect(build.compilerOptions.outDir).toBe("dist");
    expect(fs.existsSync(path.join(ROOT, "controller/src/main.ts"))).toBe(true);
    // The gateway is the same image's other entry point (the chart's gateway Deployment).
    expect(fs.existsSync(path.join(ROOT, "controller/src/gateway.ts"))).toBe(true);
  });

  it("puts no secret into the image", () => {
    for (const ins of all) {
      if (ins.op === "COPY" || ins.op === "ADD") {
        const { sources } = copySources(ins);
        for (const src of sources) {
          expect(src, `line ${ins.line}`).not.toMatch(/^\.\/?$|^\*$/); // COPY . . would take everything
          expect(src, `line ${ins.line}`).not.toMatch(
            /(^|\/)(\.env(\..*)?|\.npmrc|\.git|\.data|node_modules|id_[a-z0-9]+|.*\.(pem|key|p12|pfx))(\/|$)/i,
          );
          expect(src, `line ${ins.line}`).not.toMatch(/^https?:/);
        }
      }
      if (ins.op === "ARG" || ins.op === "ENV") {
        expect(ins.args, `line ${ins.line}`).not.toMatch(
          /(PASSWORD|TOKEN|SECRET|API_?KEY|DATABASE_URL)\s*=/i,
        );
      }
    }
    expect(dockerfile).not.toMatch(/--mount=type=secret.*\bCOPY\b/);
  });

  it("exposes the ports the chart uses (metrics, health, webhook; the gateway's API, metrics, health)", () => {
    const values = load(read("charts/connector-controller/values.yaml")) as {
      metrics: { port: number };
      health: { port: number };
      webhook: { port: number };
      gateway: { port: number; metrics: { port: number }; health: { port: number } };
    };
    const exposed = runtime.body
      .filter((i) => i.op === "EXPOSE")
      .flatMap((i) => i.args.split(/\s+/))
      .map((p) => Number(p.split("/")[0]));
    expect(exposed).toEqual(
      expect.arrayContaining([
        values.metrics.port,
        values.health.port,
        values.webhook.port,
        values.gateway.port,
        values.gateway.metrics.port,
        values.gateway.health.port,
      ]),
    );
  });

  it("is the image the chart deploys by default (tag = appVersion = package.json version)", () => {
    const chart = load(read("charts/connector-controller/Chart.yaml")) as { appVersion: string };
    const values = load(read("charts/connector-controller/values.yaml")) as {
      image: { repository: string; tag: string };
    };
    const pkg = JSON.parse(read("package.json")) as { version: string };
    expect(values.image.repository).toBe("ghcr.io/cynodeai/connector-controller");
    expect(values.image.tag).toBe("");
    expect(chart.appVersion).toBe(pkg.version);
  });
});

describe(".dockerignore", () => {
  it("keeps dependencies, local data, VCS and build output out of the context", () => {
    for (const entry of ["node_modules", ".data", ".git", "dist"]) {
      expect(
        dockerignore.some((l) => l.replace(/^\/|\/$/g, "").replace(/^\*\*\//, "") === entry),
        entry,
      ).toBe(true);
    }
  });

  it("keeps environment files and keys out of the context", () => {
    for (const entry of [".env", ".npmrc", "*.pem", "*.key"]) expect(dockerignore, entry).toContain(entry);
  });

  it("does not exclude what the Dockerfile copies", () => {
    const copied = all
      .filter((i) => i.op === "COPY")
      .map(copySources)
      .filter((c) => c.from === undefined)
      .flatMap((c) => c.sources)
      .map((s) => s.replace(/\/$/, ""));
    for (const src of copied) {
      const top = src.split("/")[0]!;
      expect(dockerignore, src).not.toContain(top);
      expect(dockerignore, src).not.toContain(src);
    }
  });
});
