// The typed Vault client against a local node:http(s) server that answers as told: the
// requests it sends (paths, mount points, headers, bodies), how it classifies every status
// Vault answers with, Retry-After, timeouts and aborts, and that no token or credential it
// holds or sends ever shows up in an error. The real server is in test/integration/secrets.test.ts.
import * as http from "node:http";
import * as https from "node:https";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ConnectorError } from "../../controller/src/api/errors.ts";
import { VaultClient, vaultPool } from "../../controller/src/secrets/vaultClient.ts";
import { freePort, listen } from "../support/net.ts";
import { createTestCa } from "../support/pki.ts";

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}
interface Answer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Never answer (for timeouts and aborts). */
  hang?: boolean;
}

const TOKEN = "hvs.CAESIJ0123456789abcdefghijklmnopqrstuv";
const JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EiLCJhdWQiOiJ2YXVsdCJ9.c2lnbmF0dXJlLXNpZw";
const SECRET_ID = "5f8c1a2e-secret-id-9d3b";

let server: http.Server;
let address: string;
const seen: Seen[] = [];
let answer: (req: Seen) => Answer = () => ({ status: 200, body: {} });
const clients: VaultClient[] = [];

function serve(req: http.IncomingMessage, res: http.ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const s: Seen = {
      method: req.method ?? "",
      url: req.url ?? "",
      headers: req.headers,
      body: Buffer.concat(chunks).toString("utf8"),
    };
    seen.push(s);
    const a = answer(s);
    if (a.hang) return;
    const text = a.body === undefined ? "" : typeof a.body === "string" ? a.body : JSON.stringify(a.body);
    res.writeHead(a.status, { "content-type": "application/json", ...a.headers });
    res.end(text);
  });
}

function client(opts: Partial<ConstructorParameters<typeof VaultClient>[0]> = {}): VaultClient {
  const c = new VaultClient({ address, requestTimeoutMs: 2_000, ...opts });
  clients.push(c);
  return c;
}

async function failure(p: Promise<unknown>): Promise<ConnectorError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectorError);
    return err as ConnectorError;
  }
  throw new Error("expected a rejection");
}

/** Nothing of `secrets` anywhere in the error, and no cause that could carry the request. */
function expectClean(e: ConnectorError, secrets: string[]): void {
  expect(e.cause).toBeUndefined();
  for (const text of [String(e), JSON.stringify(e), e.stack ?? "", e.message])
    for (const s of secrets) expect(text).not.toContain(s);
}

/** Runs `fn` with these environment variables set, then puts the environment back. */
async function withEnv(vars: Record<string, string>, fn: () => Promise<void>): Promise<void> {
  const before = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    await fn();
  } finally {
    for (const [k, v] of Object.entries(before))
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
  }
}

/** A client that logged in with JWT and holds TOKEN (its login not kept in `seen`). */
async function loggedIn(): Promise<VaultClient> {
  const prev = answer;
  answer = () => ({
    status: 200,
    body: { auth: { client_token: TOKEN, lease_duration: 600, renewable: true } },
  });
  const c = client();
  await c.loginKubernetes("kubernetes", "team-a", JWT);
  answer = prev;
  seen.length = 0;
  return c;
}

beforeAll(async () => {
  server = http.createServer(serve);
  address = `http://127.0.0.1:${(await listen(server)).port}`;
});
afterEach(() => {
  seen.length = 0;
  answer = () => ({ status: 200, body: {} });
  for (const c of clients.splice(0)) c.close();
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe("VaultClient requests", () => {
  it("logs in at the given mount point and sends the token and namespace it got, never the environment's", async () => {
    await withEnv(
      { VAULT_TOKEN: "hvs.FROMTHEENVIRONMENT0123456789abcdef", VAULT_NAMESPACE: "env-ns" },
      async () => {
        answer = () => ({
          status: 200,
          body: { auth: { client_token: TOKEN, accessor: "acc", lease_duration: 900, renewable: true } },
        });
        const c = client({ namespace: "tenant-ns" });
        const lease = await c.loginKubernetes("k8s/cluster-1", "team-a", JWT);
        expect(lease).toEqual({ accessor: "acc", ttlSeconds: 900, renewable: true });
        expect(lease).not.toHaveProperty("token");
        expect(seen[0]).toMatchObject({ method: "POST", url: "/v1/auth/k8s/cluster-1/login" });
        expect(JSON.parse(seen[0]!.body)).toEqual({ role: "team-a", jwt: JWT });
        expect(seen[0]!.headers["x-vault-token"]).toBeUndefined();
        expect(seen[0]!.headers["x-vault-namespace"]).toBe("tenant-ns");

        answer = () => ({
          status: 200,
          body: { data: { data: { password: "pw" }, metadata: { version: 4 } } },
        });
        await c.readKv("kv", 2, "connectors/team-a/imap");
        expect(seen[1]!.headers["x-vault-token"]).toBe(TOKEN);
        expect(seen[1]!.headers["x-vault-namespace"]).toBe("tenant-ns");

        answer = () => ({ status: 200, body: { auth: { client_token: TOKEN, lease_duration: 60 } } });
        await client().loginAppRole("approle-platform", "role-1", SECRET_ID);
        expect(seen[2]).toMatchObject({ method: "POST", url: "/v1/auth/approle-platform/login" });
        expect(JSON.parse(seen[2]!.body)).toEqual({ role_id: "role-1", secret_id: SECRET_ID });
        expect(seen[2]!.headers["x-vault-token"]).toBeUndefined();
        expect(seen[2]!.headers["x-vault-namespace"]).toBeUndefined();
      },
    );
  });

  it("reads KV v2 (latest and pinned) and KV v1, encoding each path segment", async () => {
    const c = await loggedIn();
    answer = () => ({
      status: 200,
      body: { data: { data: { user: "u", pass: "p" }, metadata: { version: 7, deletion_time: "" } } },
    });
    expect(await c.readKv("kv", 2, "connectors/team a/imap")).toEqual({
      data: { user: "u", pass: "p" },
      version: 7,
    });
    await c.readKv("kv", 2, "connectors/team-a/imap", 3);
    answer = () => ({ status: 200, body: { data: { user: "u1" } } });
    expect(await c.readKv("kv1", 1, "connectors/team-a/imap")).toEqual({
      data: { user: "u1" },
      version: null,
    });
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      "GET /v1/kv/data/connectors/team%20a/imap",
      "GET /v1/kv/data/connectors/team-a/imap?version=3",
      "GET /v1/kv1/connectors/team-a/imap",
    ]);
    // Dot segments would be resolved away by the URL: refused before any request.
    for (const sneaky of ["connectors/team-a/../team-b/imap", "./x", "..", "a/."])
      expect(await failure(c.readKv("kv", 2, sneaky))).toMatchObject({
        errorClass: "permanent",
        reason: "VaultClientError",
      });
    const pinnedV1 = await failure(c.readKv("kv1", 1, "x", 2));
    expect(pinnedV1).toMatchObject({ errorClass: "validation_error", reason: "InvalidSecretRef" });
    expect(seen).toHaveLength(3);
  });

  it("a KV v2 version that was deleted or destroyed is SecretDeleted, even when Vault answers 200", async () => {
    const c = await loggedIn();
    answer = () => ({
      status: 200,
      body: { data: { data: null, metadata: { version: 2, deletion_time: "2026-01-01T00:00:00Z" } } },
    });
    expect(await failure(c.readKv("kv", 2, "a/b"))).toMatchObject({
      errorClass: "permanent",
      reason: "SecretDeleted",
      providerStatusCode: 404,
    });
  });

  it("writes KV v2 under data/ and KV v1 at the path, returning the new version", async () => {
    const c = await loggedIn();
    answer = () => ({ status: 200, body: { data: { version: 5, created_time: "2026-01-01T00:00:00Z" } } });
    expect(await c.writeKv("kv", 2, "oauth/team-a/mail", { access_token: "at-1", expires_in: 3600 })).toEqual(
      {
        version: 5,
      },
    );
    answer = () => ({ status: 204 });
    expect(await c.writeKv("kv1", 1, "oauth/team-a/mail", { access_token: "at-1" })).toEqual({
      version: null,
    });
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      "POST /v1/kv/data/oauth/team-a/mail",
      "POST /v1/kv1/oauth/team-a/mail",
    ]);
    expect(JSON.parse(seen[0]!.body)).toEqual({ data: { access_token: "at-1", expires_in: 3600 } });
    expect(JSON.parse(seen[1]!.body)).toEqual({ access_token: "at-1" });
    expect(seen[0]!.headers["x-vault-token"]).toBe(TOKEN);
  });

  it("renews, looks up and revokes its own token; revoking forgets it", async () => {
    const c = await loggedIn();
    answer = () => ({
      status: 200,
      body: { auth: { client_token: TOKEN, lease_duration: 1200, renewable: true } },
    });
    expect(await c.renewSelf()).toMatchObject({ ttlSeconds: 1200, renewable: true });
    answer = () => ({ status: 200, body: { data: { ttl: 1100, renewable: true } } });
    expect(await c.lookupSelf()).toEqual({ ttlSeconds: 1100, renewable: true });
    answer = () => ({ status: 204 });
    await c.revokeSelf();
    expect(c.hasToken).toBe(false);
    await c.revokeSelf(); // no token: nothing sent
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      "POST /v1/auth/token/renew-self",
      "GET /v1/auth/token/lookup-self",
      "POST /v1/auth/token/revoke-self",
    ]);
  });

  it("health reports sealed, standby and uninitialised servers without failing", async () => {
    answer = () => ({
      status: 503,
      body: { initialized: true, sealed: true, standby: true, version: "1.14.1" },
    });
    expect(await client().health()).toEqual({
      initialized: true,
      sealed: true,
      standby: true,
      version: "1.14.1",
    });
    expect(seen[0]!.url).toBe("/v1/sys/health?standbyok=true&sealedcode=200&uninitcode=200");
    answer = () => ({ status: 500, body: { errors: ["boom"] } });
    expect(await failure(client().health())).toMatchObject({
      errorClass: "transient",
      reason: "VaultUnavailable",
    });
  });

  // undici opens a second connection while the first response is still being released;
  // from then on the pool serves every request.
  it("clients of one provider share its pool: at most two kept-alive connections, and closing a client leaves the pool open", async () => {
    let connections = 0;
    const count = () => void connections++;
    server.on("connection", count);
    const pool = vaultPool(undefined, 2_000);
    try {
      answer = () => ({ status: 200, body: { data: { k: "v" } } });
      const shared = [client({ pool }), client({ pool }), client({ pool })];
      for (let i = 0; i < 12; i++) await shared[i % 3]!.readKv("kv1", 1, "x");
      shared[0]!.close();
      await shared[1]!.readKv("kv1", 1, "x");
      expect(connections).toBeLessThanOrEqual(2);
      // Clients without a shared pool: one connection each.
      connections = 0;
      for (let i = 0; i < 3; i++) await client().readKv("kv1", 1, "x");
      expect(connections).toBe(3);
      expect(seen).toHaveLength(16);
    } finally {
      server.off("connection", count);
      await pool.close();
    }
  });

  it("refuses addresses that are not http(s) URLs", () => {
    for (const a of ["not a url", "ftp://vault:21"])
      expect(() => new VaultClient({ address: a })).toThrow(
        expect.objectContaining({ reason: "InvalidSecretProvider" }) as Error,
      );
  });
});

describe("VaultClient errors", () => {
  const table: [number, unknown, string, string][] = [
    [400, { errors: ["invalid role name"] }, "validation_error", "InvalidSecretRef"],
    [401, { errors: ["unauthorized"] }, "policy_denied", "PermissionDenied"],
    [403, { errors: ["permission denied"] }, "policy_denied", "PermissionDenied"],
    [404, { errors: [] }, "permanent", "SecretNotFound"],
    [
      404,
      { data: { data: null, metadata: { destroyed: true, deletion_time: "", version: 3 } } },
      "permanent",
      "SecretDeleted",
    ],
    [412, { errors: ["index not yet replicated"] }, "transient", "VaultUnavailable"],
    [429, { errors: ["request path kv/: rate limit quota exceeded"] }, "quota_exceeded", "QuotaExceeded"],
    [500, { errors: ["internal error"] }, "transient", "VaultUnavailable"],
    [502, "<html>bad gateway</html>", "transient", "VaultUnavailable"],
    [503, { errors: ["Vault is sealed"] }, "transient", "VaultUnavailable"],
    [504, undefined, "transient", "VaultUnavailable"],
    [418, { errors: ["teapot"] }, "permanent", "VaultError"],
  ];
  for (const [status, body, errorClass, reason] of table)
    it(`a read answered ${status} is ${errorClass}/${reason}, with the status code and no token`, async () => {
      const c = await loggedIn();
      // The server echoes what it was sent, as a misbehaving proxy might.
      answer = (req) => ({
        status,
        body:
          body && typeof body === "object" && "errors" in body
            ? {
                errors: [`${(body as { errors: string[] }).errors[0] ?? ""} ${req.headers["x-vault-token"]}`],
              }
            : body,
      });
      const e = await failure(c.readKv("kv", 2, "connectors/team-a/imap"));
      expect(e).toMatchObject({ errorClass, reason, providerStatusCode: status });
      expect(e.message).toContain(`${status}`);
      expectClean(e, [TOKEN, JWT]);
    });

  it("a 404 of anything but a read is VaultNotFound; a sealed 503 says so", async () => {
    const c = await loggedIn();
    answer = () => ({ status: 404, body: { errors: [] } });
    expect((await failure(c.renewSelf())).reason).toBe("VaultNotFound");
    answer = () => ({ status: 503, body: { errors: ["Vault is sealed"] } });
    expect((await failure(c.readKv("kv", 2, "a"))).message).toBe(
      "Vault read of kv/data/a: 503 Vault is sealed",
    );
  });

  it("429 carries the server's Retry-After, in seconds or as a date, and 1 s without one", async () => {
    const c = await loggedIn();
    answer = () => ({ status: 429, body: { errors: ["quota"] }, headers: { "retry-after": "17" } });
    expect((await failure(c.readKv("kv", 2, "a"))).retryAfterMs).toBe(17_000);
    const at = new Date(Date.now() + 30_000).toUTCString();
    answer = () => ({ status: 429, body: { errors: ["quota"] }, headers: { "retry-after": at } });
    const dated = (await failure(c.readKv("kv", 2, "a"))).retryAfterMs ?? 0;
    expect(dated).toBeGreaterThan(25_000);
    expect(dated).toBeLessThanOrEqual(30_000);
    answer = () => ({ status: 429, body: { errors: ["quota"] } });
    expect((await failure(c.readKv("kv", 2, "a"))).retryAfterMs).toBe(1_000);
  });

  it("scrubs the login's JWT and SecretID, the token, and written values from messages Vault echoes", async () => {
    answer = (req) => ({ status: 400, body: { errors: [`cannot parse ${req.body}`] } });
    const k8s = await failure(client().loginKubernetes("kubernetes", "team-a", JWT));
    expect(k8s).toMatchObject({ errorClass: "validation_error", providerStatusCode: 400 });
    expect(k8s.message).toContain("[REDACTED]");
    expectClean(k8s, [JWT]);
    const approle = await failure(client().loginAppRole("approle", "role-1", SECRET_ID));
    expectClean(approle, [SECRET_ID]);

    const c = await loggedIn();
    const value = "a-written-access-token-value";
    answer = (req) => ({
      status: 403,
      body: { errors: [`denied ${req.headers["x-vault-token"]} ${req.body}`] },
    });
    const w = await failure(c.writeKv("kv", 2, "oauth/x", { access_token: value }));
    expect(w).toMatchObject({ errorClass: "policy_denied", reason: "PermissionDenied" });
    expectClean(w, [TOKEN, value]);
    // A token set by hand (a static token provider) is scrubbed too.
    const s = client();
    const staticToken = "s.StaticTokenFromASecret0123";
    s.setToken(staticToken);
    answer = (req) => ({ status: 500, body: { errors: [`oops ${req.headers["x-vault-token"]}`] } });
    expectClean(await failure(s.lookupSelf()), [staticToken]);
  });

  it("an unreachable server, a timeout and an abort are transient; a closed client refuses", async () => {
    const port = await freePort();
    const down = await failure(client({ address: `http://127.0.0.1:${port}` }).health());
    expect(down).toMatchObject({ errorClass: "transient", reason: "VaultUnavailable" });
    expect(down.message).toContain("ECONNREFUSED");

    answer = () => ({ status: 200, hang: true });
    const slow = await failure(client({ requestTimeoutMs: 200 }).readKv("kv", 2, "a"));
    expect(slow).toMatchObject({ errorClass: "transient", reason: "VaultUnavailable" });
    expect(slow.message).toContain("ETIMEDOUT");

    const c = client();
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    expect(await failure(c.readKv("kv", 2, "a", undefined, ac.signal))).toMatchObject({
      errorClass: "transient",
      reason: "Aborted",
    });
    c.close();
    expect(await failure(c.readKv("kv", 2, "a"))).toMatchObject({ reason: "VaultUnavailable" });
    expect(c.closed).toBe(true);
  });

  it("a body larger than any Vault answer is refused", async () => {
    answer = () => ({ status: 200, body: { data: { blob: "x".repeat(2 << 20) } } });
    expect(await failure(client().readKv("kv1", 1, "a"))).toMatchObject({
      errorClass: "transient",
      reason: "VaultUnavailable",
    });
  });
});

describe("VaultClient over TLS", () => {
  let tls: https.Server;
  let tlsAddress: string;
  let caPem: string;
  beforeAll(async () => {
    const ca = await createTestCa("vault-client-test-ca");
    const cert = await ca.issueServerCert();
    caPem = ca.caPem;
    tls = https.createServer({ cert: cert.certPem, key: cert.keyPem }, serve);
    tlsAddress = `https://127.0.0.1:${(await listen(tls)).port}`;
  });
  afterAll(async () => {
    tls.closeAllConnections();
    await new Promise((r) => tls.close(r));
  });

  it("trusts the provider's CA bundle, and nothing else whatever the environment says", async () => {
    answer = () => ({ status: 200, body: { initialized: true, sealed: false, standby: false } });
    expect((await client({ address: tlsAddress, caBundle: caPem }).health()).initialized).toBe(true);
    await withEnv({ VAULT_SKIP_VERIFY: "true", NODE_TLS_REJECT_UNAUTHORIZED: "0" }, async () => {
      const e = await failure(client({ address: tlsAddress }).health());
      expect(e).toMatchObject({ errorClass: "transient", reason: "VaultUnavailable" });
      expect(e.message).toMatch(/certificate|self.signed|verify/i);
    });
  });
});
