// Secure /metrics (observability/secureMetrics.ts): HTTPS with a self-signed certificate
// when no certificate directory is given, 401 without a token the TokenReview accepts, 403
// for a user the SubjectAccessReview refuses `get /metrics`, the metrics for one it allows;
// decisions cached for controller-runtime's times, a failed review never cached. The
// reviewer here is an in-memory AccessReviewer (the module's port); kube/accessReviews.ts,
// the real one, is exercised against a real API server in test/integration/chart.test.ts.
import { X509Certificate, createPublicKey } from "node:crypto";
import { request } from "node:https";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { Counter, Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  MetricsAuthorizer,
  startSecureMetricsServer,
  type AccessReviewer,
  type ReviewedUser,
} from "../../controller/src/observability/secureMetrics.ts";
import { selfSignedCertificate } from "../../controller/src/observability/selfSignedCert.ts";

/** Tokens => users; users allowed to get /metrics; every call counted; failures on demand. */
function reviewer() {
  const calls: string[] = [];
  const state = { down: false };
  const users: Record<string, ReviewedUser> = {
    "prom-token": {
      username: "system:serviceaccount:monitoring:prometheus",
      groups: ["system:serviceaccounts"],
    },
    "dev-token": { username: "dev@example.com", groups: ["developers"] },
  };
  const r: AccessReviewer = {
    async authenticate(token) {
      calls.push("TokenReview");
      if (state.down) throw new Error("connect ECONNREFUSED");
      const user = users[token];
      return user ? { authenticated: true, user } : { authenticated: false };
    },
    async authorizeNonResource(user, verb, path) {
      calls.push(`SubjectAccessReview ${verb} ${path}`);
      if (state.down) throw new Error("connect ECONNREFUSED");
      return { allowed: user.username.startsWith("system:serviceaccount:monitoring:") && verb === "get" };
    },
  };
  return { r, calls, state };
}

describe("selfSignedCertificate", () => {
  it("always encodes a certificate that parses (the serial's DER is minimal), 2,000 times", () => {
    // Before the fix, a serial starting 0x00 then a byte under 0x80 (1 in 256) did not parse.
    for (let i = 0; i < 2000; i++) {
      const { cert } = selfSignedCertificate({ commonName: "m", hosts: ["127.0.0.1"] });
      const serial = new X509Certificate(cert).serialNumber;
      expect(serial).toMatch(/^[4-7][0-9A-F]{31}$/);
    }
  });

  it("makes a valid, self-verifying serving certificate for the given hosts", () => {
    const now = new Date("2030-01-01T00:00:00Z");
    const { cert, key } = selfSignedCertificate({
      commonName: "connector-controller-metrics",
      hosts: ["localhost", "127.0.0.1", "::1", "metrics.example"],
      now,
    });
    const x = new X509Certificate(cert);
    expect(x.subject).toBe("CN=connector-controller-metrics");
    expect(x.issuer).toBe(x.subject);
    expect(x.subjectAltName).toBe(
      "DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:metrics.example",
    );
    expect(x.verify(x.publicKey)).toBe(true);
    expect(x.publicKey.equals(createPublicKey(key))).toBe(true);
    expect(x.checkHost("metrics.example")).toBe("metrics.example");
    expect(x.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(x.ca).toBe(false);
    expect(x.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"]);
    expect(new Date(x.validTo).getTime() - now.getTime()).toBeGreaterThan(364 * 86_400_000);
    expect(new Date(x.validFrom).getTime()).toBeLessThan(now.getTime());
  });
});

describe("MetricsAuthorizer", () => {
  it("refuses a missing or unknown token (401) and a user without get /metrics (403), allows one with it", async () => {
    const { r } = reviewer();
    const a = new MetricsAuthorizer(r);
    expect(await a.check(undefined, "get", "/metrics")).toMatchObject({ ok: false, status: 401 });
    expect(await a.check("Basic dXNlcjpwYXNz", "get", "/metrics")).toMatchObject({ ok: false, status: 401 });
    expect(await a.check("Bearer nobody", "get", "/metrics")).toMatchObject({ ok: false, status: 401 });
    expect(await a.check("Bearer dev-token", "get", "/metrics")).toEqual({
      ok: false,
      status: 403,
      message: 'Forbidden: user "dev@example.com" may not get /metrics',
    });
    expect(await a.check("Bearer prom-token", "get", "/metrics")).toEqual({
      ok: true,
      user: "system:serviceaccount:monitoring:prometheus",
    });
  });

  it("caches a TokenReview for a minute, an allow for 5 minutes and a deny for 30 seconds", async () => {
    const { r, calls } = reviewer();
    let now = 0;
    const a = new MetricsAuthorizer(r, { now: () => now });
    await a.check("Bearer prom-token", "get", "/metrics");
    await a.check("Bearer dev-token", "get", "/metrics");
    expect(calls).toHaveLength(4);
    now = 29_000;
    await a.check("Bearer prom-token", "get", "/metrics");
    await a.check("Bearer dev-token", "get", "/metrics");
    expect(calls).toHaveLength(4); // all cached
    now = 31_000; // the deny expired, the TokenReviews not yet
    await a.check("Bearer dev-token", "get", "/metrics");
    expect(calls.slice(4)).toEqual(["SubjectAccessReview get /metrics"]);
    now = 61_000; // TokenReviews expired, the allow holds
    await a.check("Bearer prom-token", "get", "/metrics");
    expect(calls.slice(5)).toEqual(["TokenReview"]);
    now = 301_000;
    await a.check("Bearer prom-token", "get", "/metrics");
    expect(calls.slice(6)).toEqual(["TokenReview", "SubjectAccessReview get /metrics"]);
  });

  it("answers 503 when the API server cannot review, and asks again next time", async () => {
    const { r, calls, state } = reviewer();
    const a = new MetricsAuthorizer(r);
    state.down = true;
    expect(await a.check("Bearer prom-token", "get", "/metrics")).toMatchObject({ ok: false, status: 503 });
    state.down = false;
    expect(await a.check("Bearer prom-token", "get", "/metrics")).toMatchObject({ ok: true });
    expect(calls.filter((c) => c === "TokenReview")).toHaveLength(2);
  });

  it("keeps at most maxEntries decisions", async () => {
    const { r, calls } = reviewer();
    const a = new MetricsAuthorizer(r, { maxEntries: 2 });
    for (const t of ["a", "b", "c", "a"]) await a.check(`Bearer ${t}`, "get", "/metrics");
    expect(calls).toEqual(["TokenReview", "TokenReview", "TokenReview", "TokenReview"]);
  });
});

describe("startSecureMetricsServer", () => {
  const registry = new Registry();
  new Counter({ name: "secure_metrics_test_total", help: "a test counter", registers: [registry] }).inc();
  const { r } = reviewer();
  let server: Awaited<ReturnType<typeof startSecureMetricsServer>>;
  let port: number;

  beforeAll(async () => {
    server = await startSecureMetricsServer({ host: "127.0.0.1", port: 0, registry, reviewer: r });
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const get = (path: string, token?: string) =>
    new Promise<{ status: number; body: string; cert: X509Certificate }>((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port,
          path,
          rejectUnauthorized: false, // self-signed: what the ServiceMonitor's insecureSkipVerify does
          headers: token ? { authorization: `Bearer ${token}` } : {},
        },
        (res) => {
          let body = "";
          const cert = (res.socket as TLSSocket).getPeerX509Certificate()!;
          res.on("data", (d: Buffer) => (body += d.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body, cert }));
        },
      );
      req.on("error", reject);
      req.end();
    });

  it("serves HTTPS with a self-signed certificate, and the metrics only to an allowed caller", async () => {
    const anonymous = await get("/metrics");
    expect(anonymous.status).toBe(401);
    expect(anonymous.body).not.toContain("secure_metrics_test_total");
    expect(anonymous.cert.subject).toBe("CN=connector-controller-metrics");
    expect((await get("/metrics", "dev-token")).status).toBe(403);
    const prom = await get("/metrics", "prom-token");
    expect(prom.status).toBe(200);
    expect(prom.body).toContain("secure_metrics_test_total 1");
    expect((await get("/healthz", "prom-token")).status).toBe(404);
  });

  it("refuses plain HTTP", async () => {
    const { request: httpRequest } = await import("node:http");
    const outcome = await new Promise<string>((resolve) => {
      const req = httpRequest({ host: "127.0.0.1", port, path: "/metrics" }, (res) =>
        resolve(`HTTP ${res.statusCode}`),
      );
      req.on("error", (e) => resolve(`error ${(e as NodeJS.ErrnoException).code ?? e.message}`));
      req.end();
    });
    expect(outcome).not.toBe("HTTP 200");
  });
});
