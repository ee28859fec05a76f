// The runner's rules that hold before any connection: a config the driver cannot use names
// the field, the egress allowlist, forbidden and unknown operations. Nothing here connects:
// every host is either refused or never reached.
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { ConnectorError } from "../../controller/src/api/errors.ts";
import type { ConnectorType, JsonObject } from "../../controller/src/api/types.ts";
import { parseYamlFile } from "../../controller/src/catalog/fileCatalog.ts";
import { DRIVERS, runHealth, runOperation } from "../../controller/src/drivers/run.ts";
import { scrub, scrubJson } from "../../controller/src/drivers/failures.ts";
import { recordingLogger } from "../support/memory.ts";

const ROOT = join(fileURLToPath(import.meta.url), "../../..");
const type = (name: string) =>
  parseYamlFile(join(ROOT, "examples", "types", `${name}.yaml`))[0]?.doc as ConnectorType;
const { log, lines } = recordingLogger();

async function healthError(name: string, typeVersion: number, config: JsonObject, credentials = {}) {
  const r = await runHealth({ type: type(name), typeVersion, config, credentials, timeoutMs: 1000 }, log);
  if (r.ok) throw new Error("expected a failure");
  return r.error;
}

async function operationError(p: Promise<unknown>): Promise<ConnectorError> {
  try {
    await p;
  } catch (err) {
    return err as ConnectorError;
  }
  throw new Error("expected a failure");
}

describe("a config the driver cannot use", () => {
  it("is permanent InvalidConfig whose message and problems name the field", async () => {
    const cases: [string, number, JsonObject, string][] = [
      ["http", 2, { baseUrl: "https://u:url-secret-pw@127.0.0.1/" }, "spec.config.baseUrl"],
      ["http", 2, { baseUrl: "not a url" }, "spec.config.baseUrl"],
      ["http", 2, {}, "spec.config.baseUrl"],
      ["mattermost", 1, { serverUrl: "ftp://127.0.0.1" }, "spec.config.serverUrl"],
      ["discord", 1, { apiBase: "::" }, "spec.config.apiBase"],
      ["imap", 1, { port: 993 }, "spec.config.host"],
      ["smtp", 2, { host: "127.0.0.1", port: 70000, from: "a@example.com" }, "spec.config.port"],
      ["postgres", 1, { host: "127.0.0.1", sslmode: "sometimes" }, "spec.config.sslmode"],
    ];
    for (const [name, version, config, path] of cases) {
      const error = await healthError(name, version, config, {
        username: "u",
        password: "pw-123",
        token: "t-123",
      });
      expect(error, name).toMatchObject({ errorClass: "permanent", reason: "InvalidConfig" });
      expect(error.message, name).toContain(path);
      expect(
        error.problems.map((p) => p.path),
        name,
      ).toEqual([path]);
      expect(error.message).not.toContain("url-secret-pw");
    }
  });

  it("names a nested field: auth.headerName", async () => {
    const error = await healthError(
      "http",
      2,
      { baseUrl: "https://127.0.0.1:1/", auth: { scheme: "header" } },
      { token: "t-123" },
    );
    expect(error.problems).toEqual([{ path: "spec.config.auth.headerName", message: "is missing" }]);
  });
});

describe("operations", () => {
  const imap = {
    type: type("imap"),
    typeVersion: 1,
    config: { host: "127.0.0.1", port: 1 },
    timeoutMs: 1000,
  };
  const smtp = {
    type: type("smtp"),
    typeVersion: 2,
    config: { host: "127.0.0.1", port: 1, from: "a@example.com" },
    timeoutMs: 1000,
  };
  const credentials = { username: "u", password: "op-secret-pw" };

  it("a forbidden (class C) operation never runs, and the drivers hold no handler for it", async () => {
    for (const [connector, name] of [
      [imap, "deleteMailbox"],
      [smtp, "relayMail"],
    ] as const) {
      const error = await operationError(runOperation(name, {}, { ...connector, credentials }, log));
      expect(error).toMatchObject({ errorClass: "policy_denied", reason: "OperationForbidden" });
    }
    expect(Object.keys(DRIVERS.imap!.operations)).not.toContain("deleteMailbox");
    expect(Object.keys(DRIVERS.smtp!.operations)).not.toContain("relayMail");
  });

  it("an operation the type does not declare is a validation error", async () => {
    for (const name of ["dropEverything", "toString", "__proto__"]) {
      const error = await operationError(runOperation(name, {}, { ...imap, credentials }, log));
      expect(error, name).toMatchObject({ errorClass: "validation_error", reason: "UnknownOperation" });
    }
  });

  it("a declared operation the driver has no handler for is permanent OperationNotImplemented", async () => {
    const declared = structuredClone(imap.type);
    const version = declared.spec.versions[0]!;
    version.operations.push({ ...version.operations[0]!, name: "archiveEverything" });
    const error = await operationError(
      runOperation("archiveEverything", {}, { ...imap, type: declared, credentials }, log),
    );
    expect(error).toMatchObject({ errorClass: "permanent", reason: "OperationNotImplemented" });
  });
});

describe("scrubbing", () => {
  it("removes secret credential values in plain, URL-encoded and base64 forms, keeps user names", () => {
    const creds = { username: "alice", password: "p@ss word" };
    const text = `alice p@ss word ${encodeURIComponent("p@ss word")} ${Buffer.from("p@ss word").toString("base64")}`;
    expect(scrub(text, creds)).toBe("alice [REDACTED] [REDACTED] [REDACTED]");
    expect(scrubJson({ a: ["x p@ss word"], "p@ss word": 1 }, creds)).toEqual({
      a: ["x [REDACTED]"],
      "[REDACTED]": 1,
    });
  });

  it("no secret reached a message or a log line of this file", () => {
    for (const l of lines)
      for (const s of ["url-secret-pw", "op-secret-pw", "pw-123", "t-123"]) expect(l).not.toContain(s);
  });
});
