// Vault sessions (DESIGN §6 "Clients and tokens"): one VaultClient per (provider, identity
// (vaultIdentity.ts)), holding one token. A Kubernetes-auth login presents a TokenRequest
// for the identity's service account (audience vault, 600 s).
//
// - Tokens are cached, secret values never. One login or renewal in flight per session.
// - Renewal at ~2/3 of the TTL (jittered, so many sessions do not renew together) on the
//   next use; a token with less than 60 s left counts as expired; one re-login on a refused
//   renewal or a 403; revoke-self whenever a session is dropped (provider changed or
//   deleted, idle, dropAll()). A static token belongs to whoever issued it: never revoked.
import { canonicalJson, sha256 } from "../api/canonical.ts";
import { jitter, systemClock, type Clock } from "../api/clock.ts";
import { ConnectorError } from "../api/errors.ts";
import type { Logger } from "../api/logger.ts";
import type { SecretProvider, VaultProviderSpec } from "../api/types.ts";
import { describeIdentity, identityKey, identityOf, type Identity } from "./vaultIdentity.ts";
import type { KubeSecretKeySource, ServiceAccountTokenSource } from "./ports.ts";
import type { Agent } from "undici";
import { CaBundles } from "./caBundles.ts";
import { VaultClient, vaultPool, type KvSecret, type TokenLease } from "./vaultClient.ts";

export interface VaultSessionsOptions {
  tokens: ServiceAccountTokenSource;
  log: Logger;
  clock?: Clock;
  /** Needed only by appRole and token providers. */
  kubeSecrets?: KubeSecretKeySource | undefined;
  /** A token with less than this left counts as expired (default 60 s). */
  minTokenTtlMs?: number;
  /** Renew at this fraction of the TTL (default 2/3). */
  renewFraction?: number;
  /** ± this fraction of jitter on the renewal time (default 0.1). */
  jitter?: number;
  random?: () => number;
  /** TokenRequest expirationSeconds (default 600). */
  serviceAccountTokenSeconds?: number;
  /** Per-request timeout towards Vault (default 10 s). */
  requestTimeoutMs?: number;
  /** Sessions unused this long are revoked and dropped (default 30 min). */
  idleSessionMs?: number;
}

/** Counters for metrics and tests. */
export interface ResolverStats {
  logins: number;
  loginFailures: number;
  renewals: number;
  reads: number;
  revocations: number;
  sessions: number;
}

interface TokenState {
  /** ms since epoch; null = never expires. */
  expiresAt: number | null;
  /** ms since epoch; null = not renewable. */
  renewAt: number | null;
  ttlSeconds: number;
}

export interface Session {
  readonly key: string;
  readonly provider: string;
  readonly specHash: string;
  /** The CA the session's pool trusts (CaBundles.digest): a rotated caBundleRef makes new sessions. */
  readonly caDigest: string;
  readonly client: VaultClient;
  readonly identity: Identity;
  token: TokenState | undefined;
  /** The single in-flight login or renewal. */
  flight: Promise<void> | undefined;
  lastUsed: number;
}

/** Identifies a provider's spec: sessions made under another spec are stale. */
export function specHash(p: SecretProvider): string {
  return sha256(canonicalJson(p.spec)).slice(0, 16);
}

export class VaultSessions {
  readonly #o: Required<Omit<VaultSessionsOptions, "kubeSecrets">> & {
    kubeSecrets: KubeSecretKeySource | undefined;
  };
  readonly #sessions = new Map<string, Session>();
  /** One connection pool per provider (name and spec), shared by its sessions. */
  readonly #pools = new Map<string, Agent>();
  readonly #stats: Omit<ResolverStats, "sessions"> = {
    logins: 0,
    loginFailures: 0,
    renewals: 0,
    reads: 0,
    revocations: 0,
  };
  #lastSweep = 0;

  constructor(opts: VaultSessionsOptions) {
    this.#o = {
      tokens: opts.tokens,
      log: opts.log,
      clock: opts.clock ?? systemClock,
      kubeSecrets: opts.kubeSecrets,
      minTokenTtlMs: opts.minTokenTtlMs ?? 60_000,
      renewFraction: opts.renewFraction ?? 2 / 3,
      jitter: opts.jitter ?? 0.1,
      random: opts.random ?? Math.random,
      serviceAccountTokenSeconds: opts.serviceAccountTokenSeconds ?? 600,
      requestTimeoutMs: opts.requestTimeoutMs ?? 10_000,
      idleSessionMs: opts.idleSessionMs ?? 30 * 60_000,
    };
  }

  get stats(): ResolverStats {
    return { ...this.#stats, sessions: this.#sessions.size };
  }

  /**
   * The session for the identity `provider` gives `namespace` (a platform identity ignores
   * it), over TLS trusting `caBundle` (the provider's inline one, or what its caBundleRef
   * holds now: caBundles.ts).
   */
  session(provider: SecretProvider, namespace: string, caBundle?: string): Session {
    this.#sweep();
    const name = provider.metadata.name;
    const hash = specHash(provider);
    const ca = caBundle ?? provider.spec.vault?.caBundle;
    const caDigest = CaBundles.digest(ca);
    const identity = identityOf(provider, namespace);
    const key = `${name}|${identityKey(identity)}`;
    // A changed provider invalidates all its sessions (new address, role, CA...).
    for (const s of this.#sessions.values())
      if (s.provider === name && (s.specHash !== hash || s.caDigest !== caDigest))
        void this.#drop(s, s.specHash !== hash ? "provider changed" : "CA bundle changed");
    let s = this.#sessions.get(key);
    if (!s) {
      const vault = provider.spec.vault as VaultProviderSpec;
      s = {
        key,
        provider: name,
        specHash: hash,
        caDigest,
        client: new VaultClient({
          address: vault.address,
          namespace: vault.namespace,
          requestTimeoutMs: this.#o.requestTimeoutMs,
          pool: this.#pool(name, `${hash}|${caDigest}`, ca),
        }),
        identity,
        token: undefined,
        flight: undefined,
        lastUsed: this.#now(),
      };
      this.#sessions.set(key, s);
    }
    s.lastUsed = this.#now();
    return s;
  }

  /** Reads with the session's token; on a 403, one fresh login and one more try. */
  async read(
    s: Session,
    mount: string,
    kvVersion: 1 | 2,
    path: string,
    version: number | undefined,
  ): Promise<KvSecret> {
    for (let attempt = 1; ; attempt++) {
      await this.ensureToken(s);
      try {
        this.#stats.reads++;
        return await s.client.readKv(mount, kvVersion, path, version);
      } catch (err) {
        const e = err as ConnectorError;
        if (e.providerStatusCode !== 403) throw e;
        if (attempt > 1)
          throw new ConnectorError(
            "policy_denied",
            "PermissionDenied",
            `${e.message} (after a fresh login as ${describeIdentity(s.identity)})`,
            { providerStatusCode: 403 },
          );
        // The token may have been revoked or may have expired early.
        this.#o.log.debug({ provider: s.provider, path }, "vault read denied; logging in again once");
        s.token = undefined;
        s.client.setToken(undefined);
      }
    }
  }

  /** Makes sure the session holds a usable token: logs in, or renews, at most once at a time. */
  async ensureToken(s: Session): Promise<void> {
    for (;;) {
      while (s.flight) await s.flight;
      if (this.#usable(s) && !this.#dueForRenewal(s)) return;
      const renew = this.#usable(s);
      const flight: Promise<void> = (renew ? this.#renew(s) : this.#login(s)).finally(() => {
        if (s.flight === flight) s.flight = undefined;
      });
      s.flight = flight;
      await flight;
      // A fresh login is used even when its TTL is shorter than minTokenTtlMs.
      if (!renew || this.#usable(s)) return;
      // A renewal that could not extend the token far enough: log in.
    }
  }

  /** Revokes and drops the provider's sessions, all of them or those not made under `keepSpecHash`. */
  async dropProvider(name: string, why: string, keepSpecHash?: string): Promise<void> {
    await Promise.all(
      [...this.#sessions.values()]
        .filter((s) => s.provider === name && (keepSpecHash === undefined || s.specHash !== keepSpecHash))
        .map((s) => this.#drop(s, why)),
    );
  }

  async dropAll(why: string): Promise<void> {
    await Promise.all([...this.#sessions.values()].map((s) => this.#drop(s, why)));
  }

  #now(): number {
    return this.#o.clock.now().getTime();
  }

  #pool(provider: string, hash: string, caBundle: string | undefined): Agent {
    const key = `${provider}|${hash}`;
    let pool = this.#pools.get(key);
    if (!pool) {
      pool = vaultPool(caBundle, this.#o.requestTimeoutMs);
      this.#pools.set(key, pool);
    }
    return pool;
  }

  /** Closes the pool of `s`'s provider once no session uses it any more. */
  #releasePool(s: Session): void {
    for (const other of this.#sessions.values())
      if (other.provider === s.provider && other.specHash === s.specHash && other.caDigest === s.caDigest)
        return;
    const key = `${s.provider}|${s.specHash}|${s.caDigest}`;
    const pool = this.#pools.get(key);
    this.#pools.delete(key);
    void pool?.close().catch(() => undefined);
  }

  #sweep(): void {
    const now = this.#now();
    if (now - this.#lastSweep < 60_000) return;
    this.#lastSweep = now;
    for (const s of this.#sessions.values())
      if (now - s.lastUsed > this.#o.idleSessionMs && !s.flight) void this.#drop(s, "idle");
  }

  async #drop(s: Session, why: string): Promise<void> {
    if (this.#sessions.get(s.key) === s) this.#sessions.delete(s.key);
    try {
      if (s.client.hasToken && s.identity.kind !== "token") {
        await s.client.revokeSelf();
        this.#stats.revocations++;
      }
    } catch (err) {
      this.#o.log.debug(
        { provider: s.provider, reason: (err as ConnectorError).reason },
        "vault token revocation failed",
      );
    } finally {
      s.client.close();
      s.token = undefined;
      this.#releasePool(s);
    }
    this.#o.log.debug({ provider: s.provider, why }, "vault session dropped");
  }

  #usable(s: Session): boolean {
    const t = s.token;
    if (!t || !s.client.hasToken) return false;
    return t.expiresAt === null || t.expiresAt - this.#now() >= this.#o.minTokenTtlMs;
  }

  #dueForRenewal(s: Session): boolean {
    const t = s.token;
    return !!t && t.renewAt !== null && this.#now() >= t.renewAt;
  }

  #schedule(lease: Pick<TokenLease, "ttlSeconds" | "renewable">): TokenState {
    const { ttlSeconds, renewable } = lease;
    const now = this.#now();
    if (ttlSeconds <= 0) return { expiresAt: null, renewAt: null, ttlSeconds };
    const ttlMs = ttlSeconds * 1000;
    return {
      expiresAt: now + ttlMs,
      renewAt: renewable ? now + jitter(ttlMs * this.#o.renewFraction, this.#o.jitter, this.#o.random) : null,
      ttlSeconds,
    };
  }

  async #login(s: Session): Promise<void> {
    const id = s.identity;
    s.token = undefined;
    try {
      this.#stats.logins++;
      if (id.kind === "kubernetes") {
        const jwt = await this.#o.tokens.request(
          id.namespace,
          id.serviceAccount,
          id.audiences,
          this.#o.serviceAccountTokenSeconds,
        );
        s.token = this.#schedule(await s.client.loginKubernetes(id.mountPath, id.role, jwt));
      } else if (id.kind === "appRole") {
        const secretId = await this.#kubeSecrets().read(id.secretIdRef);
        s.token = this.#schedule(await s.client.loginAppRole(id.mountPath, id.roleId, secretId));
      } else {
        const token = await this.#kubeSecrets().read(id.secretRef);
        s.client.setToken(token.trim());
        s.token = this.#schedule(await s.client.lookupSelf());
      }
      this.#o.log.debug(
        { provider: s.provider, identity: describeIdentity(id), ttlSeconds: s.token.ttlSeconds },
        "vault login",
      );
    } catch (err) {
      this.#stats.loginFailures++;
      s.client.setToken(undefined);
      const e =
        err instanceof ConnectorError
          ? err
          : new ConnectorError("transient", "VaultLoginFailed", String(err));
      if (e.providerStatusCode === 403 || e.providerStatusCode === 401)
        throw new ConnectorError(
          "policy_denied",
          "PermissionDenied",
          `Vault refused the login as ${describeIdentity(id)}: ${e.message}`,
          { providerStatusCode: e.providerStatusCode },
        );
      throw e;
    }
  }

  async #renew(s: Session): Promise<void> {
    const before = s.token;
    try {
      this.#stats.renewals++;
      const next = this.#schedule(await s.client.renewSelf());
      // At token_max_ttl a renewal no longer extends: stop renewing, log in again at expiry.
      if (before?.expiresAt != null && next.expiresAt != null && next.expiresAt <= before.expiresAt + 1000)
        next.renewAt = null;
      s.token = next;
    } catch (err) {
      const e = err as ConnectorError;
      if (e.errorClass === "transient" && this.#usable(s)) {
        // Keep using the current token while it lasts; try to renew again next time.
        this.#o.log.debug(
          { provider: s.provider, reason: e.reason },
          "vault token renewal failed; token still valid",
        );
        if (s.token) s.token.renewAt = this.#now() + 5_000;
        return;
      }
      if (e.errorClass === "transient") throw e;
      this.#o.log.debug(
        { provider: s.provider, reason: e.reason },
        "vault token renewal refused; logging in again",
      );
      s.client.setToken(undefined);
      await this.#login(s);
    }
  }

  #kubeSecrets(): KubeSecretKeySource {
    if (!this.#o.kubeSecrets)
      throw new ConnectorError(
        "permanent",
        "InvalidSecretProvider",
        "this controller was started without access to Kubernetes Secrets (needed by appRole and token providers)",
      );
    return this.#o.kubeSecrets;
  }
}
