// /metrics behind authentication and authorization, as controller-runtime's secure metrics
// serving does (filters.WithAuthenticationAndAuthorization): HTTPS, a bearer token that a
// TokenReview accepts, and a SubjectAccessReview that lets its user `get` the non-resource
// URL /metrics (the ClusterRole <release>-metrics-reader grants it). Decisions are cached
// briefly, with controller-runtime's times: a TokenReview for a minute, an allowed
// SubjectAccessReview for 5 minutes, a denied one for 30 seconds; a failed review is not
// cached. Tokens are cached by their SHA-256 only, and never logged.
//
// The two reviews are Kubernetes calls, made in kube/accessReviews.ts (kubeAccessReviews
// satisfies AccessReviewer); this module only decides and serves.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import { hostname } from "node:os";
import { join } from "node:path";
import type { Registry } from "prom-client";
import type { Logger } from "../api/logger.ts";
import { TtlCache } from "../api/ttlCache.ts";
import { selfSignedCertificate } from "./selfSignedCert.ts";

export interface ReviewedUser {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

/** What the metrics server needs from the API server (kube/accessReviews.ts). */
export interface AccessReviewer {
  authenticate(token: string): Promise<{ authenticated: boolean; user?: ReviewedUser }>;
  authorizeNonResource(user: ReviewedUser, verb: string, path: string): Promise<{ allowed: boolean }>;
}

export type MetricsVerdict =
  { ok: true; user: string } | { ok: false; status: 401 | 403 | 503; message: string };

export interface MetricsAuthOptions {
  authnTtlMs?: number;
  allowTtlMs?: number;
  denyTtlMs?: number;
  /** Entries kept per cache; the oldest go first. */
  maxEntries?: number;
  now?: () => number;
}

/** The decision for one request: 401 without a valid token, 403 without get on the path. */
export class MetricsAuthorizer {
  readonly #reviewer: AccessReviewer;
  readonly #authn: TtlCache<ReviewedUser | null>;
  readonly #authz: TtlCache<boolean>;
  readonly #ttl: { authn: number; allow: number; deny: number };
  /** Reviews asked of the API server (for tests and metrics). */
  reviews = 0;

  constructor(reviewer: AccessReviewer, opts: MetricsAuthOptions = {}) {
    const now = opts.now ?? Date.now;
    const max = opts.maxEntries ?? 1024;
    this.#reviewer = reviewer;
    this.#authn = new TtlCache(max, now);
    this.#authz = new TtlCache(max, now);
    this.#ttl = {
      authn: opts.authnTtlMs ?? 60_000,
      allow: opts.allowTtlMs ?? 5 * 60_000,
      deny: opts.denyTtlMs ?? 30_000,
    };
  }

  async check(authorization: string | undefined, verb: string, path: string): Promise<MetricsVerdict> {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
    if (!m) return { ok: false, status: 401, message: "Unauthorized: a bearer token is required" };
    const tokenKey = createHash("sha256").update(m[1]!).digest("hex");
    let user = this.#authn.get(tokenKey);
    if (user === undefined) {
      try {
        this.reviews++;
        const r = await this.#reviewer.authenticate(m[1]!);
        user = r.authenticated && r.user ? r.user : null;
      } catch {
        return { ok: false, status: 503, message: "the token could not be reviewed; try again" };
      }
      this.#authn.set(tokenKey, user, this.#ttl.authn);
    }
    if (!user) return { ok: false, status: 401, message: "Unauthorized" };
    const who = JSON.stringify([user.username, user.uid ?? "", user.groups ?? [], user.extra ?? {}]);
    const accessKey = `${verb} ${path} ${who}`;
    let allowed = this.#authz.get(accessKey);
    if (allowed === undefined) {
      try {
        this.reviews++;
        allowed = (await this.#reviewer.authorizeNonResource(user, verb, path)).allowed;
      } catch {
        return { ok: false, status: 503, message: "access could not be reviewed; try again" };
      }
      this.#authz.set(accessKey, allowed, allowed ? this.#ttl.allow : this.#ttl.deny);
    }
    if (!allowed)
      return {
        ok: false,
        status: 403,
        message: `Forbidden: user "${user.username}" may not ${verb} ${path}`,
      };
    return { ok: true, user: user.username };
  }
}

export interface SecureMetricsOptions {
  host: string;
  port: number;
  registry: Registry;
  reviewer: AccessReviewer;
  /** A directory holding tls.crt and tls.key (reloaded every minute); absent: self-signed. */
  certDir?: string;
  log?: Logger;
  auth?: MetricsAuthOptions;
}

/** HTTPS /metrics for authorized callers only. Anything else is 404. */
export async function startSecureMetricsServer(
  opts: SecureMetricsOptions,
): Promise<Server & { authorizer: MetricsAuthorizer }> {
  const load = (): { cert: string | Buffer; key: string | Buffer } =>
    opts.certDir
      ? {
          cert: readFileSync(join(opts.certDir, "tls.crt")),
          key: readFileSync(join(opts.certDir, "tls.key")),
        }
      : selfSignedCertificate({
          commonName: "connector-controller-metrics",
          hosts: ["localhost", "127.0.0.1", hostname()],
        });
  const authorizer = new MetricsAuthorizer(opts.reviewer, opts.auth);
  const server = createServer(load(), (req, res) => {
    const send = (code: number, body: string, type = "text/plain; charset=utf-8") => {
      res.writeHead(code, { "content-type": type });
      res.end(body);
    };
    const path = (req.url ?? "/").split("?")[0]!;
    if (path !== "/metrics") return send(404, "not found\n");
    const verb = req.method === "GET" || req.method === "HEAD" ? "get" : (req.method ?? "").toLowerCase();
    void (async () => {
      try {
        const v = await authorizer.check(req.headers.authorization, verb, path);
        if (!v.ok) {
          opts.log?.debug({ status: v.status, path }, "metrics request refused");
          if (v.status === 401) res.setHeader("www-authenticate", 'Bearer realm="metrics"');
          return send(v.status, `${v.message}\n`);
        }
        send(200, await opts.registry.metrics(), opts.registry.contentType);
      } catch (err) {
        send(500, `metrics failed: ${(err as Error).message}\n`);
      }
    })();
  });
  if (opts.certDir) {
    // Certificates are rotated (cert-manager): pick up new files without a restart.
    const reload = setInterval(() => {
      try {
        server.setSecureContext(load());
      } catch (err) {
        opts.log?.warn({ err: (err as Error).message }, "could not reload metrics certificates");
      }
    }, 60_000);
    reload.unref();
    server.on("close", () => clearInterval(reload));
  }
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  opts.log?.info(
    { port: opts.port, selfSigned: !opts.certDir },
    "secure metrics listening (HTTPS, TokenReview + SubjectAccessReview)",
  );
  return Object.assign(server, { authorizer });
}
