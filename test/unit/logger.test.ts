// The controller's log lines: level names, the console format, errors with their causes,
// redaction in both formats, and the start-up line.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConnectorError } from "../../controller/src/api/errors.ts";
import { projectRoot } from "../../controller/src/api/paths.ts";
import { loadConfig } from "../../controller/src/config.ts";
import {
  buildInfo,
  createLogger,
  describeConfig,
  formatConsoleLine,
  logStartup,
  type LoggerOptions,
} from "../../controller/src/observability/logger.ts";

function capture(opts: LoggerOptions = {}) {
  const lines: string[] = [];
  const destination = { write: (l: string) => void lines.push(l) } as unknown as NodeJS.WritableStream;
  const log = createLogger({ level: "debug", ...opts, destination });
  return { log, lines, json: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

/** What fetch throws when nothing listens: "fetch failed", the reason only in its cause. */
function unreachable(): Error {
  const cause = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6443"), {
    code: "ECONNREFUSED",
    address: "127.0.0.1",
    port: 6443,
  });
  return new TypeError("fetch failed", { cause });
}

describe("log lines", () => {
  it("name their level (info, warn, error) instead of pino's numbers", () => {
    const { log, json } = capture();
    log.debug({}, "d");
    log.info({}, "i");
    log.warn({}, "w");
    log.error({}, "e");
    expect(json().map((l) => l.level)).toEqual(["debug", "info", "warn", "error"]);
  });

  it("keep an error's cause chain with its code (not just 'fetch failed')", () => {
    const { log, json } = capture();
    log.warn({ err: unreachable() }, "list/watch failed; retrying");
    const err = json()[0]!.err as Record<string, unknown>;
    expect(err.message).toBe("fetch failed: connect ECONNREFUSED 127.0.0.1:6443");
    expect(err.type).toBe("TypeError");
    expect(err.stack).toContain("fetch failed");
    // A cause whose message does not say its code (DNS, TLS, AggregateError) keeps the code.
    const dns = new Error("fetch failed", {
      cause: Object.assign(new Error("lookup failed for api.cluster.local"), { code: "ENOTFOUND" }),
    });
    log.warn({ err: dns }, "x");
    expect((json()[1]!.err as { message: string }).message).toBe(
      "fetch failed: lookup failed for api.cluster.local (ENOTFOUND)",
    );
  });

  it("carry a ConnectorError's class and reason, and keep a message passed as a string", () => {
    const { log, json } = capture();
    const e = new ConnectorError("transient", "VaultUnavailable", "vault is sealed", {
      providerStatusCode: 503,
      cause: unreachable(),
    });
    log.error({ err: e }, "x");
    log.error({ err: "already a message" }, "y");
    const [first, second] = json();
    expect(first!.err).toMatchObject({
      class: "transient",
      reason: "VaultUnavailable",
      statusCode: 503,
      message: "vault is sealed: fetch failed: connect ECONNREFUSED 127.0.0.1:6443",
    });
    expect(first!.err).not.toHaveProperty("stack"); // a classified failure: no stack in every retry's line
    expect(second!.err).toBe("already a message");
  });

  it("never copy a client library's request config or headers from an error", () => {
    // node-vault's (axios) errors carry the request, token header included.
    const e = Object.assign(new Error("Request failed with status code 403"), {
      config: { headers: { "X-Vault-Token": "hvs.TOPSECRET" }, data: '{"password":"hunter2"}' },
      response: { data: { errors: ["permission denied"] } },
    });
    for (const format of ["json", "console"] as const) {
      const { log, lines } = capture({ format });
      log.error({ err: e }, "vault read failed");
      const text = lines.join("");
      expect(text).toContain("Request failed with status code 403");
      expect(text).not.toContain("hvs.TOPSECRET");
      expect(text).not.toContain("hunter2");
    }
  });

  it("redact secrets in the json and the console format alike", () => {
    for (const format of ["json", "console"] as const) {
      const { log, lines } = capture({ format });
      log.info(
        {
          password: "pw-1",
          secret: { values: { password: "pw-2" } },
          request: { headers: { authorization: "Bearer tok-3" }, token: "tok-4" },
        },
        "resolved",
      );
      const text = lines.join("");
      for (const s of ["pw-1", "pw-2", "tok-3", "tok-4"]) expect(text, `${format}: ${s}`).not.toContain(s);
      expect(text).toContain("[REDACTED]");
    }
  });
});

describe("--log-format console", () => {
  it("writes one readable line an entry: time, level, message, fields", () => {
    const { log, lines } = capture({ format: "console" });
    log.warn({ informer: "connectors", retryInMs: 800, err: unreachable() }, "list/watch failed; retrying");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^\d\d:\d\d:\d\d\.\d{3} WARN {2}list\/watch failed; retrying informer=connectors retryInMs=800 err="fetch failed: connect ECONNREFUSED 127\.0\.0\.1:6443"\n$/,
    );
    expect(() => JSON.parse(lines[0]!)).toThrow();
  });

  it("prints the stack under an error line, and no colour codes unless asked", () => {
    const { log, lines } = capture({ format: "console" });
    log.error({ err: unreachable() }, "start-up failed");
    const [first, ...stack] = lines[0]!.trimEnd().split("\n");
    expect(first).toContain("ERROR start-up failed");
    expect(stack.length).toBeGreaterThan(0);
    expect(stack.every((l) => l.startsWith("    at "))).toBe(true);
    expect(lines[0]).not.toContain("\x1b[");
    expect(
      formatConsoleLine(JSON.stringify({ level: "info", time: "2025-01-02T03:04:05.678Z", msg: "m" }), true),
    ).toBe("03:04:05.678 \x1b[32mINFO \x1b[0m m\n");
  });

  it("is chosen by --log-format or LOG_FORMAT, and anything else is refused with the flag's name", () => {
    expect(loadConfig([], {}).logFormat).toBe("json");
    expect(loadConfig(["--log-format", "console"], {}).logFormat).toBe("console");
    expect(loadConfig([], { LOG_FORMAT: "console" }).logFormat).toBe("console");
    expect(() => loadConfig(["--log-format", "pretty"], {})).toThrow(
      '--log-format: "pretty" must be one of json, console',
    );
  });
});

describe("the start-up line", () => {
  it("says version, commit and the effective configuration, without secrets", () => {
    const { log, json } = capture();
    const config = loadConfig(
      [
        "--database-url",
        "postgres://app:db-pass-9@db.example:5432/connectors?sslpassword=ssl-pass-8",
        "--enable-features",
        "beta,alpha",
        "--concurrency",
        "7",
      ],
      {},
    );
    logStartup(log, config, { version: "1.2.3", commit: "0123456789abcdef", node: "v24.0.0" });
    const line = json()[0]!;
    expect(line).toMatchObject({
      level: "info",
      msg: "starting connector-controller",
      version: "1.2.3",
      commit: "0123456789abcdef",
      node: "v24.0.0",
      config: { concurrency: 7, enabledFeatures: ["alpha", "beta"], logFormat: "json", resyncMs: 600_000 },
    });
    const text = JSON.stringify(line);
    expect(text).not.toContain("db-pass-9");
    expect(text).not.toContain("ssl-pass-8");
    expect((line.config as { databaseUrl: string }).databaseUrl).toMatch(
      /^postgres:\/\/app:\*\*\*@db\.example:5432\//,
    );
    // Every setting is there: a new one cannot be forgotten.
    expect(Object.keys(line.config as object).sort()).toEqual(Object.keys(config).sort());
  });

  it("leaves out any setting whose name says it is a secret", () => {
    expect(describeConfig({ vaultToken: "t", hmacKey: "k", clientSecret: "s", port: 1 })).toEqual({
      port: 1,
    });
  });

  it("takes the version from package.json and the commit from GIT_COMMIT, else the checkout's HEAD", () => {
    const pkg = JSON.parse(readFileSync(join(projectRoot, "package.json"), "utf8")) as { version: string };
    expect(buildInfo({ GIT_COMMIT: "feedface" })).toMatchObject({ version: pkg.version, commit: "feedface" });
    const head = execFileSync("git", ["rev-parse", "HEAD"], { cwd: projectRoot, encoding: "utf8" }).trim();
    expect(buildInfo({}).commit).toBe(head);
  });
});
