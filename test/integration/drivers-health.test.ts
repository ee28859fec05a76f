// The drivers' health checks (through drivers/run.ts, as the controller calls them) against
// real servers on loopback: Dovecot (IMAP, IMAPS, submission
// with STARTTLS and implicit TLS), an in-process node:https server with a throwaway CA
// (HTTP, Mattermost and Discord shapes), PostgreSQL (startPostgres), and a silent TCP
// server for timeouts. The ConnectorTypes are the project's own (examples/types).
import { readFileSync, readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConnectorType, JsonObject } from "../../controller/src/api/types.ts";
import { parseYamlFile } from "../../controller/src/catalog/fileCatalog.ts";
import { createProber } from "../../controller/src/drivers/run.ts";
import type { Logger } from "../../controller/src/api/logger.ts";
import type { ProbeInput, ProbeResult } from "../../controller/src/api/model.ts";
import { REPO_ROOT } from "../support/controlPlane.ts";
import { startDovecot, type TestDovecot } from "../support/dovecot.ts";
import { startPostgres, type TestPostgres } from "../support/postgres.ts";
import {
  startSilentServer,
  startTestHttpsServer,
  type SilentServer,
  type TestHttpsServer,
} from "../support/probeServers.ts";

// --- catalog ------------------------------------------------------------------------------

function loadType(name: string): ConnectorType {
  const [doc] = parseYamlFile(join(REPO_ROOT, "examples", "types", `${name}.yaml`));
  return doc?.doc as ConnectorType;
}
const TYPES = {
  imap: loadType("imap"),
  smtp: loadType("smtp"),
  http: loadType("http"),
  postgres: loadType("postgres"),
  mattermost: loadType("mattermost"),
  discord: loadType("discord"),
};
type Kind = keyof typeof TYPES;
const VERSION: Record<Kind, number> = { imap: 1, smtp: 2, http: 2, postgres: 1, mattermost: 1, discord: 1 };

/** The same type with every version's allowlist replaced. */
function withAllowlist(type: ConnectorType, allowlist: string[]): ConnectorType {
  const t = structuredClone(type);
  for (const v of t.spec.versions) v.egressAllowlist = allowlist;
  return t;
}

// --- prober with a recording logger ---------------------------------------------------------

interface LogLine {
  level: string;
  obj: object;
  msg: string | undefined;
}
const logLines: LogLine[] = [];
const log: Logger = {
  debug: (obj, msg) => logLines.push({ level: "debug", obj, msg }),
  info: (obj, msg) => logLines.push({ level: "info", obj, msg }),
  warn: (obj, msg) => logLines.push({ level: "warn", obj, msg }),
  error: (obj, msg) => logLines.push({ level: "error", obj, msg }),
};
const prober = createProber({ log });

/** Every result, for the secret scan and the table of failure classes covered. */
const results: { kind: string; result: Finding }[] = [];
const secrets: string[] = [];

async function probe(
  kind: Kind,
  config: JsonObject,
  credentials: Record<string, string> | undefined,
  extra: Partial<ProbeInput> = {},
): Promise<Finding> {
  const input: ProbeInput = {
    type: TYPES[kind],
    typeVersion: VERSION[kind],
    config,
    credentials,
    timeoutMs: 10_000,
    ...extra,
  };
  const pending = prober.probe(input);
  if (!pending) throw new Error(`no probe for ${kind}`);
  const result = flatten(await pending);
  results.push({
    kind: input.type.spec.versions.find((v) => v.version === input.typeVersion)!.healthProbe.kind,
    result,
  });
  return result;
}

/** A result with its error's fields beside ok and latencyMs, for toMatchObject. */
type Finding = {
  ok: boolean;
  latencyMs: number;
  providerStatusCode?: number;
  errorClass?: string;
  reason?: string;
  message?: string;
  retryAfterMs?: number;
};

function flatten(r: ProbeResult): Finding {
  if (r.ok) return r;
  const { errorClass, reason, message, providerStatusCode, retryAfterMs } = r.error;
  return {
    ok: false,
    latencyMs: r.latencyMs,
    errorClass,
    reason,
    message,
    ...(providerStatusCode !== undefined ? { providerStatusCode } : {}),
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
  };
}

function warningsSince(mark: number): string[] {
  return logLines
    .slice(mark)
    .filter((l) => l.level === "warn")
    .map((l) => l.msg ?? "");
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * This process's TCP sockets to any of these ports that are not closed yet (Linux: the
 * socket inodes of /proc/self/fd matched against /proc/net/tcp{,6}). TIME_WAIT is closed.
 */
function openClientSockets(ports: number[]): string[] {
  const mine = new Set<string>();
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m) mine.add(m[1]!);
    } catch {
      // the fd closed meanwhile
    }
  }
  const out: string[] = [];
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const remotePort = parseInt(f[2]!.split(":")[1]!, 16);
      const state = f[3]!;
      const inode = f[9]!;
      // 06 TIME_WAIT, 07 CLOSE, 0A LISTEN
      if (ports.includes(remotePort) && mine.has(inode) && !["06", "07", "0A"].includes(state))
        out.push(`port ${remotePort} state ${state}`);
    }
  }
  return out;
}

async function expectNoOpenClientSockets(ports: number[]): Promise<void> {
  const deadline = Date.now() + 2000;
  let open = openClientSockets(ports);
  while (open.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    open = openClientSockets(ports);
  }
  expect(open).toEqual([]);
}

// --- servers ----------------------------------------------------------------------------------

let dovecot: TestDovecot;
let web: TestHttpsServer;
let silent: SilentServer;

beforeAll(async () => {
  [dovecot, web, silent] = await Promise.all([startDovecot(), startTestHttpsServer(), startSilentServer()]);
  secrets.push(dovecot.password, web.token);
});

afterAll(async () => {
  await Promise.all([dovecot?.destroy(), web?.stop(), silent?.stop()]);
  if (pgServer) {
    // Roles belong to the server, not the database: drop ours once the test database is gone
    // (on an embedded server, stop() takes everything away and this finds nothing to talk to).
    const adminUrl = new URL(pgServer.url);
    adminUrl.pathname = "/postgres";
    await pgServer.stop();
    const admin = new pg.Client({ connectionString: adminUrl.toString(), connectionTimeoutMillis: 2000 });
    await admin
      .connect()
      .then(() => admin.query(`DROP ROLE IF EXISTS ${pgRole}`))
      .catch(() => undefined)
      .finally(() => admin.end().catch(() => undefined));
  }
  await pgAuthServer?.stop();
});

// --- IMAP ---------------------------------------------------------------------------------------

describe("IMAP against Dovecot", () => {
  const imaps = (extra: JsonObject = {}): JsonObject => ({
    host: "127.0.0.1",
    port: dovecot.imapsPort,
    tls: true,
    mailbox: dovecot.mailbox,
    caBundle: dovecot.caPem,
    ...extra,
  });
  const creds = () => ({ username: dovecot.user, password: dovecot.password });

  it("implicit TLS, LOGIN and SELECT of the mailbox with the right credentials => ok", async () => {
    const r = await probe("imap", imaps(), creds());
    expect(r).toMatchObject({ ok: true });
    expect(r.latencyMs).toBeGreaterThan(0);
  });

  it("STARTTLS on the plain port => ok (and localhost as the host name)", async () => {
    const r = await probe(
      "imap",
      imaps({ host: "localhost", port: dovecot.imapPort, tls: false, starttls: true }),
      creds(),
    );
    expect(r).toMatchObject({ ok: true });
  });

  it("wrong password => reason auth, permanent", async () => {
    const r = await probe("imap", imaps(), { username: dovecot.user, password: "not-the-password" });
    expect(r).toMatchObject({ ok: false, reason: "AuthenticationFailed", errorClass: "permanent" });
    expect(r.message).toBe(
      `imap 127.0.0.1:${dovecot.imapsPort}: authentication failed (AUTHENTICATIONFAILED)`,
    );
    expect(r.message).not.toContain("not-the-password");
  });

  it("a mailbox that does not exist => permanent", async () => {
    const r = await probe("imap", imaps({ mailbox: "No/Such/Box" }), creds());
    expect(r).toMatchObject({ ok: false, errorClass: "permanent", reason: "MailboxNotFound" });
  });

  it("without the CA => TLS verification failure, transient", async () => {
    const r = await probe("imap", imaps({ caBundle: undefined as unknown as string }), creds());
    expect(r).toMatchObject({ ok: false, errorClass: "transient", reason: "TlsFailed" });
    expect(r.message).toMatch(/TLS certificate verification failed \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/);
  });

  it("insecureSkipVerify: true => ok, with a warning", async () => {
    const mark = logLines.length;
    const r = await probe(
      "imap",
      imaps({ caBundle: undefined as unknown as string, insecureSkipVerify: true }),
      creds(),
    );
    expect(r).toMatchObject({ ok: true });
    expect(warningsSince(mark).some((m) => m.includes("insecureSkipVerify"))).toBe(true);
  });

  it("server stopped => transient; server back on the same ports => ok", async () => {
    await dovecot.stop();
    try {
      const down = await probe("imap", imaps(), creds());
      expect(down).toMatchObject({ ok: false, errorClass: "transient", reason: "ConnectionFailed" });
      expect(down.message).toBe(`imap 127.0.0.1:${dovecot.imapsPort}: connection refused (ECONNREFUSED)`);
      const downStarttls = await probe(
        "imap",
        imaps({ port: dovecot.imapPort, tls: false, starttls: true }),
        creds(),
      );
      expect(downStarttls).toMatchObject({ ok: false, errorClass: "transient" });
    } finally {
      await dovecot.start();
    }
    expect(await probe("imap", imaps(), creds())).toMatchObject({ ok: true });
    expect(
      await probe("imap", imaps({ port: dovecot.imapPort, tls: false, starttls: true }), creds()),
    ).toMatchObject({
      ok: true,
    });
  });

  it("leaves no socket open to Dovecot, after successes and failures alike", async () => {
    await expectNoOpenClientSockets([dovecot.imapPort, dovecot.imapsPort]);
  });
});

// --- SMTP ---------------------------------------------------------------------------------------

describe("SMTP against Dovecot submission", () => {
  const submission = (extra: JsonObject = {}): JsonObject => ({
    host: "127.0.0.1",
    port: dovecot.submissionPort,
    security: "starttls",
    from: "alerts@example.com",
    caBundle: dovecot.caPem,
    ...extra,
  });
  const creds = () => ({ username: dovecot.user, password: dovecot.password });

  it("EHLO, STARTTLS, AUTH with the right password => ok", async () => {
    expect(await probe("smtp", submission(), creds())).toMatchObject({ ok: true });
  });

  it("implicit TLS (submissions) and AUTH => ok", async () => {
    const r = await probe(
      "smtp",
      submission({ port: dovecot.submissionsPort, security: "tls", host: "localhost" }),
      creds(),
    );
    expect(r).toMatchObject({ ok: true });
  });

  it("wrong password => reason auth, permanent, with the SMTP reply code", async () => {
    const r = await probe("smtp", submission(), { username: dovecot.user, password: "wrong-smtp-password" });
    expect(r).toMatchObject({
      ok: false,
      reason: "AuthenticationFailed",
      errorClass: "permanent",
      providerStatusCode: 535,
    });
    expect(r.message).toBe(
      `smtp 127.0.0.1:${dovecot.submissionPort}: authentication failed (535 after AUTH)`,
    );
  });

  it("without the CA => TLS failure, transient", async () => {
    const r = await probe("smtp", submission({ caBundle: undefined as unknown as string }), creds());
    expect(r).toMatchObject({ ok: false, errorClass: "transient", reason: "TlsFailed" });
  });

  it("server stopped => transient; back => ok", async () => {
    await dovecot.stop();
    try {
      expect(await probe("smtp", submission(), creds())).toMatchObject({
        ok: false,
        errorClass: "transient",
        reason: "ConnectionFailed",
      });
    } finally {
      await dovecot.start();
    }
    expect(await probe("smtp", submission(), creds())).toMatchObject({ ok: true });
  });

  it("leaves no socket open to Dovecot submission", async () => {
    await expectNoOpenClientSockets([dovecot.submissionPort, dovecot.submissionsPort]);
  });
});

// --- HTTP ---------------------------------------------------------------------------------------

describe("HTTP against a local TLS server", () => {
  const http = (extra: JsonObject = {}): JsonObject => ({
    baseUrl: web.url,
    healthPath: "/health",
    auth: { scheme: "bearer" },
    caBundle: web.caPem,
    ...extra,
  });
  const creds = () => ({ token: web.token });

  it("with the CA from the config => ok, status and latency, the socket closed", async () => {
    web.resetCounts();
    const r = await probe("http", http(), creds());
    expect(r).toMatchObject({ ok: true, providerStatusCode: 200 });
    expect(r.latencyMs).toBeGreaterThan(0);
    expect(web.requests).toEqual(["GET /health"]);
    await web.waitForNoOpenSockets();
  });

  it("WITHOUT the CA => TLS failure, transient, and no request reached the server", async () => {
    web.resetCounts();
    const r = await probe("http", http({ caBundle: undefined as unknown as string }), creds());
    expect(r).toMatchObject({ ok: false, errorClass: "transient", reason: "TlsFailed" });
    expect(r.message).toBe(
      `http GET ${web.url}/health: TLS certificate verification failed (UNABLE_TO_VERIFY_LEAF_SIGNATURE)`,
    );
    expect(web.requests).toEqual([]);
    await web.waitForNoOpenSockets();
  });

  it("insecureSkipVerify: true => ok, with a warning logged each time", async () => {
    const mark = logLines.length;
    const cfg = http({ caBundle: undefined as unknown as string, insecureSkipVerify: true });
    expect(await probe("http", cfg, creds())).toMatchObject({ ok: true });
    expect(await probe("http", cfg, creds())).toMatchObject({ ok: true });
    const warnings = warningsSince(mark).filter((m) => m.includes("insecureSkipVerify"));
    expect(warnings).toHaveLength(2);
  });

  it("a bad token => reason auth", async () => {
    const r = await probe("http", http(), { token: "bad-token-value" });
    expect(r).toMatchObject({
      ok: false,
      reason: "AuthenticationFailed",
      errorClass: "permanent",
      providerStatusCode: 401,
    });
    expect(r.message).toBe(`http GET ${web.url}/health: HTTP 401 (credentials rejected)`);
  });

  it("basic and header auth schemes, and a base URL with a path prefix", async () => {
    expect(
      await probe(
        "http",
        http({ healthPath: "/basic/health", auth: { scheme: "basic", username: web.basicUser } }),
        creds(),
      ),
    ).toMatchObject({ ok: true });
    expect(
      await probe(
        "http",
        http({ healthPath: "/header/health", auth: { scheme: "header", headerName: "X-Api-Key" } }),
        creds(),
      ),
    ).toMatchObject({ ok: true });
    expect(
      await probe(
        "http",
        http({ healthPath: "/header/health", auth: { scheme: "header", headerName: "X-Api-Key" } }),
        {
          token: "nope",
        },
      ),
    ).toMatchObject({ ok: false, reason: "AuthenticationFailed", providerStatusCode: 403 });
    expect(await probe("http", http({ baseUrl: `${web.url}/prefix/` }), creds())).toMatchObject({ ok: true });
    expect(
      await probe("http", http({ healthPath: "/open/health", auth: { scheme: "none" } }), undefined),
    ).toMatchObject({ ok: true });
  });

  it("429 => quota_exceeded with Retry-After; 5xx => transient; 404 and redirects => permanent", async () => {
    const status = (code: number) => probe("http", http({ healthPath: `/status/${code}` }), creds());
    expect(await status(429)).toMatchObject({
      ok: false,
      errorClass: "quota_exceeded",
      retryAfterMs: 7000,
      providerStatusCode: 429,
    });
    expect(await status(503)).toMatchObject({ ok: false, errorClass: "transient", providerStatusCode: 503 });
    expect(await status(404)).toMatchObject({ ok: false, errorClass: "permanent", providerStatusCode: 404 });
    const redirect = await status(302);
    expect(redirect).toMatchObject({ ok: false, errorClass: "permanent", providerStatusCode: 302 });
    expect(web.requests.filter((r) => r === "GET /")).toEqual([]); // not followed
    await web.waitForNoOpenSockets();
  });

  it("credentials in the base URL are refused without a connection and never echoed", async () => {
    web.resetCounts();
    const url = `https://probe:url-password-123@127.0.0.1:${web.port}`;
    const r = await probe("http", http({ baseUrl: url }), creds());
    expect(r).toMatchObject({ ok: false, errorClass: "permanent", reason: "InvalidConfig" });
    expect(r.message).not.toContain("url-password-123");
    expect(web.connections()).toBe(0);
  });
});

describe("Mattermost and Discord against the local TLS server", () => {
  it("Mattermost GET /api/v4/users/me with a Bearer token => ok; bad token => auth", async () => {
    const cfg = {
      serverUrl: web.url,
      teamId: "a".repeat(26),
      channelIds: ["b".repeat(26)],
      caBundle: web.caPem,
    };
    expect(await probe("mattermost", cfg, { token: web.token })).toMatchObject({
      ok: true,
      providerStatusCode: 200,
    });
    const bad = await probe("mattermost", cfg, { token: "expired" });
    expect(bad).toMatchObject({ ok: false, reason: "AuthenticationFailed", providerStatusCode: 401 });
    expect(bad.message).toBe(`mattermost GET ${web.url}/api/v4/users/me: HTTP 401 (credentials rejected)`);
  });

  it("Mattermost: a 200 that is not a user => permanent (shape)", async () => {
    const cfg = {
      serverUrl: `${web.url}/not-a-user`,
      teamId: "a".repeat(26),
      channelIds: ["b".repeat(26)],
      caBundle: web.caPem,
    };
    expect(await probe("mattermost", cfg, { token: web.token })).toMatchObject({
      ok: false,
      errorClass: "permanent",
      reason: "UnexpectedResponse",
    });
  });

  it("Discord GET /users/@me with Authorization: Bot => ok; bad token => auth; OAuth Bearer => ok", async () => {
    // Note: the discord v1 schema has no caBundle yet; the probe honours it when present.
    const cfg = {
      guildId: "123456789012345678",
      channelIds: ["223456789012345678"],
      apiBase: `${web.url}/api/v10`,
      caBundle: web.caPem,
    };
    web.resetCounts();
    expect(await probe("discord", cfg, { token: web.token })).toMatchObject({
      ok: true,
      providerStatusCode: 200,
    });
    expect(await probe("discord", cfg, { token: "revoked" })).toMatchObject({
      ok: false,
      reason: "AuthenticationFailed",
    });
    expect(await probe("discord", cfg, { token: web.token, tokenType: "Bearer" })).toMatchObject({
      ok: true,
    });
    expect(web.requests).toEqual([
      "GET /api/v10/users/@me",
      "GET /api/v10/users/@me",
      "GET /api/v10/users/@me",
    ]);
  });
});

// --- PostgreSQL -----------------------------------------------------------------------------------

// The test database (startPostgres), and a server that checks passwords when that one
// does not (the machine's server may trust 127.0.0.1). Stopped in the top-level afterAll.
let pgServer: TestPostgres | undefined;
let pgAuthServer: TestPostgres | undefined;
let pgTarget: { host: string; port: number; database: string };
const pgRole = `probe_login_${process.pid}`;
const pgRolePassword = "pg-role-password-Zq81";

describe("PostgreSQL", () => {
  let authTarget: { host: string; port: number; database: string; adminUrl: string };
  const role = pgRole;
  const rolePassword = pgRolePassword;

  const splitUrl = (url: string) => {
    const u = new URL(url);
    return { host: u.hostname, port: Number(u.port || 5432), database: u.pathname.slice(1), adminUrl: url };
  };
  const sql = async (url: string, text: string) => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query(text);
    } finally {
      await c.end();
    }
  };
  const rejectsWrongPassword = async (url: string): Promise<boolean> => {
    const u = new URL(url);
    u.username = role;
    u.password = "certainly-wrong";
    const c = new pg.Client({ connectionString: u.toString() });
    try {
      await c.connect();
      await c.end();
      return false;
    } catch {
      return true;
    }
  };

  beforeAll(async () => {
    const server = await startPostgres();
    pgServer = server;
    pgTarget = splitUrl(server.url);
    secrets.push(rolePassword);
    await sql(server.url, `CREATE ROLE ${role} LOGIN PASSWORD '${rolePassword}'`);
    let auth = splitUrl(server.url);
    if (!(await rejectsWrongPassword(server.url))) {
      // The TEST_DATABASE_URL server trusts loopback: take an embedded server (scram-sha-256).
      const saved = process.env["TEST_DATABASE_URL"];
      delete process.env["TEST_DATABASE_URL"];
      try {
        pgAuthServer = await startPostgres();
      } finally {
        if (saved !== undefined) process.env["TEST_DATABASE_URL"] = saved;
      }
      await sql(pgAuthServer.url, `CREATE ROLE ${role} LOGIN PASSWORD '${rolePassword}'`);
      auth = splitUrl(pgAuthServer.url);
      if (!(await rejectsWrongPassword(pgAuthServer.url)))
        throw new Error("the embedded server accepts wrong passwords");
    }
    authTarget = auth;
  });

  const cfg = (t: { host: string; port: number; database: string }, extra: JsonObject = {}): JsonObject => ({
    host: t.host,
    port: t.port,
    database: t.database,
    sslmode: "disable",
    ...extra,
  });

  it("connect and SELECT 1 => ok (the test database)", async () => {
    expect(await probe("postgres", cfg(pgTarget), { username: role, password: rolePassword })).toMatchObject({
      ok: true,
    });
  });

  it("wrong password (SQLSTATE 28P01) => reason auth", async () => {
    const r = await probe("postgres", cfg(authTarget), { username: role, password: "wrong-pg-password" });
    expect(r).toMatchObject({ ok: false, reason: "AuthenticationFailed", errorClass: "permanent" });
    expect(r.message).toBe(
      `postgres ${authTarget.host}:${authTarget.port}: authentication failed (SQLSTATE 28P01)`,
    );
    expect(
      await probe("postgres", cfg(authTarget), { username: role, password: rolePassword }),
    ).toMatchObject({
      ok: true,
    });
  });

  it("a database that does not exist => permanent", async () => {
    const r = await probe("postgres", cfg(authTarget, { database: "no_such_db" }), {
      username: role,
      password: rolePassword,
    });
    expect(r).toMatchObject({ ok: false, errorClass: "permanent", reason: "InvalidConfig" });
  });

  it("sslmode=disable and prefer warn; prefer falls back to plain text when the server has no TLS", async () => {
    const mark = logLines.length;
    const r = await probe("postgres", cfg(authTarget, { sslmode: "prefer" }), {
      username: role,
      password: rolePassword,
    });
    expect(r).toMatchObject({ ok: true });
    expect(warningsSince(mark).some((m) => m.includes("sslmode=prefer"))).toBe(true);
  });

  it("sslmode=require or verify-full (the default) against a server without TLS => permanent", async () => {
    const creds = { username: role, password: rolePassword };
    const r = await probe("postgres", cfg(authTarget, { sslmode: "require" }), creds);
    expect(r).toMatchObject({ ok: false, errorClass: "permanent", reason: "TlsFailed" });
    const { sslmode: _drop, ...noSslmode } = cfg(authTarget);
    expect(await probe("postgres", noSslmode, creds)).toMatchObject({
      ok: false,
      errorClass: "permanent",
      reason: "TlsFailed",
    });
  });

  it("leaves no socket open to PostgreSQL", async () => {
    await expectNoOpenClientSockets([pgTarget.port, authTarget.port]);
  });

  it("nothing listening => transient", async () => {
    const r = await probe("postgres", cfg({ host: "127.0.0.1", port: 1, database: "x" }), {
      username: role,
      password: rolePassword,
    });
    expect(r).toMatchObject({ ok: false, errorClass: "transient", reason: "ConnectionFailed" });
  });
});

// --- egress ---------------------------------------------------------------------------------------

describe("egress allowlist is enforced before any connection", () => {
  it("a host outside the allowlist is refused for every kind and no server sees a connection", async () => {
    silent.resetCounts();
    web.resetCounts();
    // "localhost" reaches the loopback servers, but these types only allow 127.0.0.1.
    const cases: [Kind, JsonObject, Record<string, string>][] = [
      [
        "imap",
        { host: "localhost", port: silent.port, mailbox: "INBOX" },
        { username: "u", password: "p-imap-secret" },
      ],
      [
        "smtp",
        { host: "localhost", port: silent.port, from: "a@example.com" },
        { username: "u", password: "p-smtp" },
      ],
      [
        "postgres",
        { host: "localhost", port: silent.port, database: "x" },
        { username: "u", password: "p-pg" },
      ],
      [
        "http",
        { baseUrl: `https://localhost:${web.port}`, healthPath: "/health", auth: { scheme: "bearer" } },
        { token: web.token },
      ],
      [
        "mattermost",
        { serverUrl: `https://localhost:${web.port}`, teamId: "a".repeat(26), channelIds: ["b".repeat(26)] },
        { token: web.token },
      ],
      [
        "discord",
        {
          apiBase: `https://localhost:${web.port}/api/v10`,
          guildId: "1".repeat(18),
          channelIds: ["2".repeat(18)],
        },
        { token: web.token },
      ],
    ];
    for (const [kind, config, credentials] of cases) {
      const type = withAllowlist(TYPES[kind], ["127.0.0.1", "*.example.com"]);
      const r = await probe(kind, config, credentials, { type });
      expect(r, kind).toEqual({
        ok: false,
        latencyMs: expect.any(Number),
        errorClass: "policy_denied",
        reason: "EgressDenied",
        message: `host localhost is not in the egress allowlist of type ${kind}`,
      });
    }
    // Look-alikes of allowed names are refused as well.
    for (const host of ["localhost.", "127.0.0.1.", "localhost.evil.com", "2130706433", "127.1"]) {
      const r = await probe(
        "imap",
        { host, port: silent.port },
        { username: "u", password: "p-imap-secret" },
      );
      expect(r, host).toMatchObject({ ok: false, errorClass: "policy_denied", reason: "EgressDenied" });
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(silent.connections()).toBe(0);
    expect(web.connections()).toBe(0);
  });
});

// --- timeouts and aborts ---------------------------------------------------------------------------

describe("a server that accepts and never answers", () => {
  const configs: [Kind, () => JsonObject, Record<string, string>][] = [
    [
      "imap",
      () => ({ host: "127.0.0.1", port: silent.port, tls: true }),
      { username: "u", password: "p-imap-secret" },
    ],
    [
      "smtp",
      () => ({ host: "127.0.0.1", port: silent.port, from: "a@example.com" }),
      { username: "u", password: "p-smtp" },
    ],
    [
      "postgres",
      () => ({ host: "127.0.0.1", port: silent.port, database: "x" }),
      { username: "u", password: "p-pg" },
    ],
    ["http", () => ({ baseUrl: `https://127.0.0.1:${silent.port}` }), { token: "t-http" }],
    [
      "mattermost",
      () => ({
        serverUrl: `https://127.0.0.1:${silent.port}`,
        teamId: "a".repeat(26),
        channelIds: ["b".repeat(26)],
      }),
      { token: "t-mm" },
    ],
    [
      "discord",
      () => ({
        apiBase: `https://127.0.0.1:${silent.port}/api/v10`,
        guildId: "1".repeat(18),
        channelIds: ["2".repeat(18)],
      }),
      { token: "t-dc" },
    ],
  ];

  for (const [kind, config, credentials] of configs) {
    it(`${kind}: transient within timeoutMs, and the socket is closed`, async () => {
      silent.resetCounts();
      const timeoutMs = 600;
      const started = performance.now();
      const r = await probe(kind, config(), credentials, { timeoutMs });
      const took = performance.now() - started;
      expect(r).toMatchObject({ ok: false, errorClass: "transient", reason: "Timeout" });
      expect(r.message).toMatch(/no answer within 600ms$/);
      expect(took).toBeGreaterThanOrEqual(timeoutMs - 5);
      // The deadline is timeoutMs; the slack is for a busy 2-core machine, not for the probe.
      expect(took).toBeLessThan(timeoutMs + 1000);
      expect(silent.connections()).toBe(1);
      await silent.waitForNoOpenSockets(1000);
    });
  }

  for (const [kind, config, credentials] of configs) {
    it(`${kind}: the caller's signal aborts the probe and closes its socket`, async () => {
      silent.resetCounts();
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 150);
      const started = performance.now();
      const r = await probe(kind, config(), credentials, { timeoutMs: 10_000, signal: controller.signal });
      expect(performance.now() - started).toBeLessThan(1000);
      expect(r).toMatchObject({ ok: false, errorClass: "transient", reason: "Aborted" });
      expect(silent.connections()).toBe(1);
      await silent.waitForNoOpenSockets(1000);
    });
  }

  it("an already aborted signal connects to nothing", async () => {
    silent.resetCounts();
    const r = await probe("http", { baseUrl: `https://127.0.0.1:${silent.port}` }, undefined, {
      signal: AbortSignal.abort(),
    });
    expect(r).toMatchObject({ ok: false, reason: "Aborted" });
    await new Promise((res) => setTimeout(res, 100));
    expect(silent.connections()).toBe(0);
  });
});

// --- dispatch, secrets, durations -----------------------------------------------------------------

describe("createProber", () => {
  it("returns undefined for kind none, unknown kinds and unknown versions", () => {
    const none = structuredClone(TYPES.http);
    for (const v of none.spec.versions) v.healthProbe = { kind: "none" };
    const base = { config: {}, credentials: undefined, timeoutMs: 1000 };
    expect(prober.probe({ ...base, type: none, typeVersion: 2 })).toBeUndefined();
    const odd = structuredClone(TYPES.http);
    for (const v of odd.spec.versions) v.healthProbe = { kind: "toString" as "none" };
    expect(prober.probe({ ...base, type: odd, typeVersion: 2 })).toBeUndefined();
    expect(prober.probe({ ...base, type: TYPES.http, typeVersion: 99 })).toBeUndefined();
  });
});

describe("median probe durations (about 10 runs each, successes against the loopback servers)", () => {
  it("measures each kind and prints the table", async () => {
    const runs = 11;
    const imapCreds = { username: dovecot.user, password: dovecot.password };
    const kinds: [string, () => Promise<Finding>][] = [
      [
        "imap (implicit TLS)",
        () =>
          probe(
            "imap",
            { host: "127.0.0.1", port: dovecot.imapsPort, mailbox: dovecot.mailbox, caBundle: dovecot.caPem },
            imapCreds,
          ),
      ],
      [
        "imap (STARTTLS)",
        () =>
          probe(
            "imap",
            {
              host: "127.0.0.1",
              port: dovecot.imapPort,
              tls: false,
              starttls: true,
              mailbox: dovecot.mailbox,
              caBundle: dovecot.caPem,
            },
            imapCreds,
          ),
      ],
      [
        "smtp (STARTTLS)",
        () =>
          probe(
            "smtp",
            {
              host: "127.0.0.1",
              port: dovecot.submissionPort,
              from: "a@example.com",
              caBundle: dovecot.caPem,
            },
            imapCreds,
          ),
      ],
      [
        "smtp (implicit TLS)",
        () =>
          probe(
            "smtp",
            {
              host: "127.0.0.1",
              port: dovecot.submissionsPort,
              security: "tls",
              from: "a@example.com",
              caBundle: dovecot.caPem,
            },
            imapCreds,
          ),
      ],
      [
        "http (https, bearer)",
        () =>
          probe(
            "http",
            { baseUrl: web.url, healthPath: "/health", auth: { scheme: "bearer" }, caBundle: web.caPem },
            { token: web.token },
          ),
      ],
      [
        "mattermost",
        () =>
          probe(
            "mattermost",
            { serverUrl: web.url, teamId: "a".repeat(26), channelIds: ["b".repeat(26)], caBundle: web.caPem },
            { token: web.token },
          ),
      ],
      [
        "discord",
        () =>
          probe(
            "discord",
            {
              apiBase: `${web.url}/api/v10`,
              guildId: "1".repeat(18),
              channelIds: ["2".repeat(18)],
              caBundle: web.caPem,
            },
            { token: web.token },
          ),
      ],
    ];
    {
      const pgCreds = { username: pgRole, password: pgRolePassword };
      kinds.push([
        "postgres (sslmode=disable)",
        () => probe("postgres", { ...pgTarget, sslmode: "disable" }, pgCreds),
      ]);
      const rows: { kind: string; median: number; min: number; max: number }[] = [];
      for (const [name, run] of kinds) {
        const latencies: number[] = [];
        for (let i = 0; i < runs; i++) {
          const r = await run();
          expect(r, name).toMatchObject({ ok: true });
          latencies.push(r.latencyMs);
        }
        rows.push({
          kind: name,
          median: median(latencies),
          min: Math.min(...latencies),
          max: Math.max(...latencies),
        });
      }
      const covered = new Map<string, Set<string>>();
      for (const { kind, result } of results) {
        if (!covered.has(kind)) covered.set(kind, new Set());
        covered.get(kind)!.add(result.ok ? "ok" : `${result.errorClass}/${result.reason}`);
      }
      const lines = [
        `probe durations over ${runs} runs (ms, latencyMs as reported by the probe):`,
        "| probe | median | min | max | outcomes covered by this suite (errorClass/reason) |",
        "|---|---:|---:|---:|---|",
        ...rows.map((r) => {
          const kind = r.kind.split(" ")[0]!;
          const classes = [...(covered.get(kind) ?? [])].sort().join(", ");
          return `| ${r.kind} | ${r.median.toFixed(1)} | ${r.min.toFixed(1)} | ${r.max.toFixed(1)} | ${classes} |`;
        }),
      ];
      console.log(lines.join("\n"));
    }
  });
});

describe("no socket left behind", () => {
  it("this process holds no open connection to any test server", async () => {
    await expectNoOpenClientSockets([
      dovecot.imapPort,
      dovecot.imapsPort,
      dovecot.submissionPort,
      dovecot.submissionsPort,
      web.port,
      silent.port,
      pgTarget.port,
    ]);
    await web.waitForNoOpenSockets();
    await silent.waitForNoOpenSockets();
  });
});

describe("no credential ever appears in a message or a log line", () => {
  it("scans every result and log line of this suite", () => {
    expect(results.length).toBeGreaterThan(50);
    const texts = [
      ...results.map((r) => JSON.stringify(r.result)),
      ...logLines.map((l) => `${JSON.stringify(l.obj)} ${l.msg ?? ""}`),
    ];
    for (const secret of [
      ...secrets,
      "p-imap-secret",
      "not-the-password",
      "wrong-smtp-password",
      "bad-token-value",
      "wrong-pg-password",
      "url-password-123",
    ]) {
      for (const t of texts) expect(t.includes(secret), `secret found in: ${t}`).toBe(false);
    }
  });
});
