// Resolves a Connector's secretRef through its SecretProvider (DESIGN §6).
//
// - Tenant identity by default: a TokenRequest for the provider's serviceAccountName in the
//   CONNECTOR'S namespace (audience vault, 600 s), then Kubernetes auth with the provider's
//   role, so Vault's policy for that role is the second wall behind the path guard. AppRole
//   and static tokens are platform identities, for platform or development providers.
// - One VaultClient ("session") per (provider, auth method + role, tenant namespace/SA).
//   Tokens are cached, secret values never: concurrent resolves of the same path share one
//   in-flight read (and one login), and the result is dropped once handed out.
// - Renewal at ~2/3 of the TTL (jittered) on the next use; a token with less than 60 s left
//   counts as expired; one re-login on a failed renewal or a 403; revoke-self whenever a
//   session is dropped (provider changed or deleted, idle, close()).
// - Fingerprints are HMAC-SHA256 with the controller's key, never an unkeyed hash.
import { createHash, createHmac } from "node:crypto";
import { readFile, realpath } from "node:fs/promises";
import * as nodePath from "node:path";
import {
  DEFAULT_PATH_TEMPLATE,
  type SecretKeySelector,
  type SecretProvider,
  type SecretProviderReason,
  type SecretRef,
  type VaultProviderSpec,
} from "../api/types.ts";
import { ConnectorError } from "../api/errors.ts";
import type { Clock } from "../api/clock.ts";
import type { Logger } from "../api/logger.ts";
import type { ResolvedSecret } from "../api/model.ts";
import type { SecretResolver } from "../reconcile/ports.ts";
import { checkNamespaceAllowed, checkPathTemplate, renderSecretPath } from "./pathGuard.ts";
import { VaultClient, type KvSecret } from "./vaultClient.ts";

// ---------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------

/** SecretProviders by name (the informer cache). */
export interface SecretProviderLookup {
  get(name: string): SecretProvider | undefined;
}

/** TokenRequest (kube/serviceAccountTokens.ts). */
export interface ServiceAccountTokenSource {
  request(
    namespace: string,
    serviceAccount: string,
    audiences: string[],
    expirationSeconds: number,
    signal?: AbortSignal,
  ): Promise<string>;
}

/** One key of a Kubernetes Secret (AppRole SecretIDs, static tokens). kube/serviceAccountTokens.ts. */
export interface KubeSecretKeySource {
  read(ref: SecretKeySelector, signal?: AbortSignal): Promise<string>;
}

export interface VaultSecretResolverOptions {
  providers: SecretProviderLookup;
  tokens: ServiceAccountTokenSource;
  /** A namespace's labels (informer cache), for namespaceSelector; undefined when unknown. */
  namespaceLabels: (namespace: string) => Record<string, string> | undefined;
  /** The fingerprint key (kube/hmacKey.ts); at least 16 bytes. */
  hmacKey: Buffer;
  log: Logger;
  clock?: Clock;
  /** Needed only by appRole and token providers. */
  kubeSecrets?: KubeSecretKeySource;
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
  /** A finished read is shared with resolves arriving this soon after it (default 2 s). */
  shareReadsMs?: number;
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

/** The outcome of checking a provider, for its Ready condition. */
export interface ProviderCheck {
  ready: boolean;
  reason: SecretProviderReason;
  message: string;
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

const SERVICE_ACCOUNT_TOKEN_SECONDS = 600;

type Identity =
  | {
      kind: "kubernetes";
      namespace: string;
      serviceAccount: string;
      mountPath: string;
      role: string;
      audiences: string[];
    }
  | { kind: "appRole"; mountPath: string; roleId: string; secretIdRef: SecretKeySelector }
  | { kind: "token"; secretRef: SecretKeySelector };

interface TokenState {
  /** ms since epoch; null = never expires. */
  expiresAt: number | null;
  /** ms since epoch; null = not renewable. */
  renewAt: number | null;
  ttlSeconds: number;
}

interface Session {
  key: string;
  provider: string;
  specHash: string;
  client: VaultClient;
  identity: Identity;
  token: TokenState | undefined;
  /** The single in-flight login or renewal. */
  flight: Promise<void> | undefined;
  lastUsed: number;
}

function specHash(p: SecretProvider): string {
  return createHash("sha256")
    .update(JSON.stringify(canonical(p.spec)))
    .digest("hex")
    .slice(0, 16);
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === "object")
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  return v;
}

function kvVersionOf(spec: VaultProviderSpec): 1 | 2 {
  return spec.kv.version === 1 ? 1 : 2;
}

/** A KV value as a string: strings as they are, anything else as JSON. */
function asString(v: unknown): string {
  if (typeof v === "string") return v;
  if (v === null || v === undefined) return "";
  return JSON.stringify(v);
}

/**
 * The secret's values under the type's credential key names: `keys` maps credential key =>
 * key in the secret; keys of the secret not mapped keep their own names.
 */
export function mapSecretKeys(
  data: Record<string, unknown>,
  keys: Record<string, string> | undefined,
  where: string,
): Record<string, string> {
  const values: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) values[k] = asString(v);
  for (const [credKey, secretKey] of Object.entries(keys ?? {})) {
    if (!Object.prototype.hasOwnProperty.call(data, secretKey))
      throw new ConnectorError(
        "permanent",
        "SecretKeyMissing",
        `the secret ${where} has no key ${JSON.stringify(secretKey)} ` +
          `(spec.credentials.secretRef.keys.${credKey})`,
      );
    values[credKey] = asString(data[secretKey]);
  }
  return values;
}

/** Throws permanent/SecretKeyMissing naming the first of `required` that `values` lacks. */
export function requireKeys(values: Record<string, string>, required: readonly string[], where = ""): void {
  const missing = required.filter((k) => !Object.prototype.hasOwnProperty.call(values, k));
  if (missing.length > 0)
    throw new ConnectorError(
      "permanent",
      "SecretKeyMissing",
      `the secret${where ? ` ${where}` : ""} has no key${missing.length > 1 ? "s" : ""} ${missing
        .map((k) => JSON.stringify(k))
        .join(", ")} required by the connector type (map them with spec.credentials.secretRef.keys)`,
    );
}

/** HMAC-SHA256 over the canonical JSON of the values, with the controller's key. */
export function fingerprint(key: Buffer, values: Record<string, string>): string {
  return `hmac-sha256:${createHmac("sha256", key)
    .update(JSON.stringify(canonical(values)))
    .digest("hex")}`;
}

function raceAbort<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted)
    return Promise.reject(new ConnectorError("transient", "Aborted", "secret resolution aborted"));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void =>
      reject(new ConnectorError("transient", "Aborted", "secret resolution aborted"));
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

function providerInvalid(name: string, message: string): ConnectorError {
  return new ConnectorError(
    "validation_error",
    "InvalidSecretProvider",
    `SecretProvider ${name}: ${message}`,
  );
}

/** Static checks of a provider's spec (the CRD enforces most; informers may carry old objects). */
export function checkProviderSpec(p: SecretProvider): void {
  const name = p.metadata.name;
  const { vault, file } = p.spec ?? {};
  if (!!vault === !!file) throw providerInvalid(name, "exactly one of spec.vault and spec.file must be set");
  if (file) {
    if (!nodePath.isAbsolute(file.directory))
      throw providerInvalid(name, "spec.file.directory must be absolute");
    return;
  }
  if (!vault) return;
  try {
    const u = new URL(vault.address);
    if (u.protocol !== "https:" && u.protocol !== "http:") throw new Error("protocol");
  } catch {
    throw providerInvalid(name, "spec.vault.address must be an http(s) URL");
  }
  if (!vault.kv?.mount || !/^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/.test(vault.kv.mount))
    throw providerInvalid(name, "spec.vault.kv.mount is missing or invalid");
  const auth = vault.auth ?? {};
  const methods = [auth.kubernetes, auth.appRole, auth.token].filter((x) => x !== undefined);
  if (methods.length !== 1)
    throw providerInvalid(name, "exactly one of spec.vault.auth.kubernetes, appRole and token must be set");
  try {
    checkPathTemplate(vault.pathTemplate ?? DEFAULT_PATH_TEMPLATE);
  } catch (err) {
    throw providerInvalid(name, (err as Error).message);
  }
}

// ---------------------------------------------------------------------------------------
// The resolver
// ---------------------------------------------------------------------------------------

export class VaultSecretResolver implements SecretResolver {
  readonly #o: Required<
    Omit<VaultSecretResolverOptions, "kubeSecrets" | "clock" | "random"> & { random: () => number }
  > & { kubeSecrets: KubeSecretKeySource | undefined; clock: Clock };
  readonly #sessions = new Map<string, Session>();
  readonly #reads = new Map<string, Promise<KvSecret>>();
  readonly #stats: Omit<ResolverStats, "sessions"> = {
    logins: 0,
    loginFailures: 0,
    renewals: 0,
    reads: 0,
    revocations: 0,
  };
  #lastSweep = 0;
  #closed = false;

  constructor(opts: VaultSecretResolverOptions) {
    if (!Buffer.isBuffer(opts.hmacKey) || opts.hmacKey.length < 16)
      throw new Error("VaultSecretResolver: hmacKey must be a Buffer of at least 16 bytes");
    this.#o = {
      providers: opts.providers,
      tokens: opts.tokens,
      namespaceLabels: opts.namespaceLabels,
      hmacKey: opts.hmacKey,
      log: opts.log,
      clock: opts.clock ?? { now: () => new Date() },
      kubeSecrets: opts.kubeSecrets,
      minTokenTtlMs: opts.minTokenTtlMs ?? 60_000,
      renewFraction: opts.renewFraction ?? 2 / 3,
      jitter: opts.jitter ?? 0.1,
      random: opts.random ?? Math.random,
      serviceAccountTokenSeconds: opts.serviceAccountTokenSeconds ?? SERVICE_ACCOUNT_TOKEN_SECONDS,
      requestTimeoutMs: opts.requestTimeoutMs ?? 10_000,
      idleSessionMs: opts.idleSessionMs ?? 30 * 60_000,
      shareReadsMs: opts.shareReadsMs ?? 2000,
    };
  }

  get stats(): ResolverStats {
    return { ...this.#stats, sessions: this.#sessions.size };
  }

  /** SecretResolver: the guard, then the provider's read, the key mapping and the fingerprint. */
  async resolve(namespace: string, ref: SecretRef, signal?: AbortSignal): Promise<ResolvedSecret> {
    if (this.#closed)
      throw new ConnectorError("transient", "ResolverClosed", "the secret resolver is closed");
    const provider = this.#provider(ref.provider);
    checkNamespaceAllowed(
      provider.metadata.name,
      provider.spec,
      namespace,
      this.#o.namespaceLabels(namespace),
    );
    if (ref.version !== undefined && (!Number.isInteger(ref.version) || ref.version < 1))
      throw new ConnectorError(
        "validation_error",
        "InvalidSecretRef",
        "spec.credentials.secretRef.version must be a positive integer",
      );

    if (provider.spec.file) {
      const template = "{namespace}/{name}";
      const rel = renderSecretPath(template, namespace, ref.name);
      if (ref.version !== undefined)
        throw new ConnectorError(
          "validation_error",
          "InvalidSecretRef",
          `spec.credentials.secretRef.version: SecretProvider ${provider.metadata.name} is a file provider, which has no versions`,
        );
      const data = await this.#readFile(provider.spec.file.directory, namespace, rel, provider.metadata.name);
      const values = mapSecretKeys(data, ref.keys, `${provider.metadata.name}:${rel}`);
      return { values, version: null, fingerprint: fingerprint(this.#o.hmacKey, values) };
    }

    const vault = provider.spec.vault as VaultProviderSpec;
    const path = renderSecretPath(vault.pathTemplate, namespace, ref.name);
    const kv = await this.readPath(provider, namespace, path, ref.version, signal);
    const values = mapSecretKeys(kv.data, ref.keys, `${provider.metadata.name}:${vault.kv.mount}/${path}`);
    return { values, version: kv.version, fingerprint: fingerprint(this.#o.hmacKey, values) };
  }

  /**
   * The lower-level read WITHOUT the path guard or the namespace check: reads `path` (relative
   * to the KV mount) with the identity the provider gives `namespace`. resolve() is the only
   * production caller; tests call it to show that Vault's own policy is the second wall.
   * Concurrent calls for the same (identity, path, version) share one request.
   */
  async readPath(
    providerOrName: SecretProvider | string,
    namespace: string,
    path: string,
    version?: number,
    signal?: AbortSignal,
  ): Promise<KvSecret> {
    const provider = typeof providerOrName === "string" ? this.#provider(providerOrName) : providerOrName;
    const vault = provider.spec.vault;
    if (!vault) throw providerInvalid(provider.metadata.name, "spec.vault is not set");
    const session = this.#session(provider, namespace);
    const kvVersion = kvVersionOf(vault);
    const key = `${session.key}\u0000${vault.kv.mount}\u0000${kvVersion}\u0000${path}\u0000${version ?? ""}`;
    let flight = this.#reads.get(key);
    if (!flight) {
      // Resolves that arrive while a read is in flight, or within shareReadsMs after it (the
      // probes of one refresh, which the reconciler brings due together), share it. The value
      // is held no longer than that window.
      const read = this.#readWithRetry(session, vault.kv.mount, kvVersion, path, version);
      flight = read;
      const forget = () => {
        if (this.#reads.get(key) === read) this.#reads.delete(key);
      };
      const share = this.#o.shareReadsMs;
      read.then(() => (share > 0 ? setTimeout(forget, share).unref() : forget()), forget);
      this.#reads.set(key, flight);
    }
    const kv = await raceAbort(flight, signal);
    // Each caller gets its own copy; nothing of the value stays with the resolver.
    return { data: { ...kv.data }, version: kv.version };
  }

  /**
   * Checks a provider for its Ready condition: config, reachability, seal status and, where
   * a platform identity exists (appRole, token), that it can log in. Kubernetes-auth
   * providers have no identity of their own (tenants log in), so reachable + unsealed = Ready.
   */
  async checkProvider(provider: SecretProvider, signal?: AbortSignal): Promise<ProviderCheck> {
    try {
      checkProviderSpec(provider);
    } catch (err) {
      return { ready: false, reason: "InvalidConfig", message: (err as Error).message };
    }
    if (provider.spec.file) {
      try {
        await realpath(provider.spec.file.directory);
        return { ready: true, reason: "Ready", message: "file provider (local development only)" };
      } catch {
        return {
          ready: false,
          reason: "Unreachable",
          message: `directory ${provider.spec.file.directory} is not readable`,
        };
      }
    }
    const vault = provider.spec.vault as VaultProviderSpec;
    const client = new VaultClient({
      address: vault.address,
      caBundle: vault.caBundle,
      namespace: vault.namespace,
      requestTimeoutMs: Math.min(this.#o.requestTimeoutMs, 5_000),
    });
    try {
      const h = await client.health(signal);
      if (!h.initialized) return { ready: false, reason: "Unreachable", message: "Vault is not initialized" };
      if (h.sealed) return { ready: false, reason: "Sealed", message: "Vault is sealed" };
    } catch (err) {
      const e = err as ConnectorError;
      return { ready: false, reason: "Unreachable", message: e.message };
    } finally {
      client.close();
    }
    if (vault.auth.kubernetes)
      return {
        ready: true,
        reason: "Ready",
        message: `reachable and unsealed; tenants log in with role ${vault.auth.kubernetes.role}`,
      };
    try {
      const session = this.#session(provider, "");
      await this.#ensureToken(session);
      return { ready: true, reason: "Ready", message: "reachable, unsealed and authenticated" };
    } catch (err) {
      const e = err as ConnectorError;
      if (e.reason === "VaultUnavailable") return { ready: false, reason: "Unreachable", message: e.message };
      return { ready: false, reason: "Unauthenticated", message: e.message };
    }
  }

  /** Call when a provider was updated: its sessions are revoked and dropped (also done lazily). */
  async providerChanged(name: string): Promise<void> {
    const p = this.#o.providers.get(name);
    const hash = p ? specHash(p) : undefined;
    await Promise.all(
      [...this.#sessions.values()]
        .filter((s) => s.provider === name && s.specHash !== hash)
        .map((s) => this.#drop(s, "provider changed")),
    );
  }

  /** Call when a provider was deleted. */
  async providerDeleted(name: string): Promise<void> {
    await Promise.all(
      [...this.#sessions.values()]
        .filter((s) => s.provider === name)
        .map((s) => this.#drop(s, "provider deleted")),
    );
  }

  /** Revokes every token and drops every session. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#reads.clear();
    await Promise.all([...this.#sessions.values()].map((s) => this.#drop(s, "resolver closed")));
  }

  // -------------------------------------------------------------------------------------

  #provider(name: string): SecretProvider {
    const p = this.#o.providers.get(name);
    if (!p)
      throw new ConnectorError(
        "transient",
        "SecretProviderNotFound",
        `SecretProvider ${name} (spec.credentials.secretRef.provider) does not exist`,
      );
    checkProviderSpec(p);
    return p;
  }

  #now(): number {
    return this.#o.clock.now().getTime();
  }

  #identity(provider: SecretProvider, namespace: string): Identity {
    const auth = (provider.spec.vault as VaultProviderSpec).auth;
    if (auth.kubernetes)
      return {
        kind: "kubernetes",
        namespace,
        serviceAccount: auth.kubernetes.serviceAccountName,
        mountPath: auth.kubernetes.mountPath ?? "kubernetes",
        role: auth.kubernetes.role.split("{namespace}").join(namespace),
        audiences: auth.kubernetes.audiences?.length ? auth.kubernetes.audiences : ["vault"],
      };
    if (auth.appRole)
      return {
        kind: "appRole",
        mountPath: auth.appRole.mountPath ?? "approle",
        roleId: auth.appRole.roleId,
        secretIdRef: auth.appRole.secretIdRef,
      };
    if (auth.token) return { kind: "token", secretRef: auth.token.secretRef };
    throw providerInvalid(provider.metadata.name, "no auth method");
  }

  #session(provider: SecretProvider, namespace: string): Session {
    this.#sweep();
    const name = provider.metadata.name;
    const hash = specHash(provider);
    const identity = this.#identity(provider, namespace);
    const idKey =
      identity.kind === "kubernetes"
        ? `kubernetes:${identity.mountPath}:${identity.role}|${identity.namespace}/${identity.serviceAccount}`
        : identity.kind === "appRole"
          ? `approle:${identity.mountPath}:${identity.roleId}|platform`
          : `token:${identity.secretRef.namespace}/${identity.secretRef.name}/${identity.secretRef.key}|platform`;
    const key = `${name}|${idKey}`;
    // A changed provider invalidates all its sessions (new address, role, CA...).
    for (const s of this.#sessions.values())
      if (s.provider === name && s.specHash !== hash) void this.#drop(s, "provider changed");
    let s = this.#sessions.get(key);
    if (!s) {
      const vault = provider.spec.vault as VaultProviderSpec;
      s = {
        key,
        provider: name,
        specHash: hash,
        client: new VaultClient({
          address: vault.address,
          caBundle: vault.caBundle,
          namespace: vault.namespace,
          requestTimeoutMs: this.#o.requestTimeoutMs,
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

  #sweep(): void {
    const now = this.#now();
    if (now - this.#lastSweep < 60_000) return;
    this.#lastSweep = now;
    for (const s of this.#sessions.values())
      if (now - s.lastUsed > this.#o.idleSessionMs && !s.flight) void this.#drop(s, "idle");
  }

  async #drop(s: Session, why: string): Promise<void> {
    if (this.#sessions.get(s.key) === s) this.#sessions.delete(s.key);
    const hadToken = s.client.hasToken && s.identity.kind !== "token";
    try {
      // A static token belongs to whoever issued it: never revoke it.
      if (hadToken) {
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
    }
    this.#o.log.debug({ provider: s.provider, why }, "vault session dropped");
  }

  async #readWithRetry(
    s: Session,
    mount: string,
    kvVersion: 1 | 2,
    path: string,
    version: number | undefined,
  ): Promise<KvSecret> {
    await this.#ensureToken(s);
    try {
      this.#stats.reads++;
      return await s.client.readKv(mount, kvVersion, path, version);
    } catch (err) {
      const e = err as ConnectorError;
      if (e.providerStatusCode !== 403) throw e;
      // One fresh login (the token may have been revoked or expired early), then one retry.
      this.#o.log.debug({ provider: s.provider, path }, "vault read denied; logging in again once");
      s.token = undefined;
      s.client.setToken(undefined);
      await this.#ensureToken(s);
      try {
        this.#stats.reads++;
        return await s.client.readKv(mount, kvVersion, path, version);
      } catch (err2) {
        const e2 = err2 as ConnectorError;
        if (e2.providerStatusCode === 403)
          throw new ConnectorError(
            "policy_denied",
            "PermissionDenied",
            `${e2.message} (after a fresh login as ${describeIdentity(s.identity)})`,
            { providerStatusCode: 403 },
          );
        throw e2;
      }
    }
  }

  /** Makes sure the session holds a usable token: logs in, or renews, at most once at a time. */
  async #ensureToken(s: Session): Promise<void> {
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

  #usable(s: Session): boolean {
    const t = s.token;
    if (!t || !s.client.hasToken) return false;
    return t.expiresAt === null || t.expiresAt - this.#now() >= this.#o.minTokenTtlMs;
  }

  #dueForRenewal(s: Session): boolean {
    const t = s.token;
    return !!t && t.renewAt !== null && this.#now() >= t.renewAt;
  }

  #schedule(ttlSeconds: number, renewable: boolean): TokenState {
    const now = this.#now();
    if (ttlSeconds <= 0) return { expiresAt: null, renewAt: null, ttlSeconds };
    const ttlMs = ttlSeconds * 1000;
    const jitter = 1 + this.#o.jitter * (2 * this.#o.random() - 1);
    return {
      expiresAt: now + ttlMs,
      renewAt: renewable ? now + ttlMs * this.#o.renewFraction * jitter : null,
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
        const login = await s.client.loginKubernetes(id.mountPath, id.role, jwt);
        s.token = this.#schedule(login.ttlSeconds, login.renewable);
      } else if (id.kind === "appRole") {
        const secretId = await this.#kubeSecrets().read(id.secretIdRef);
        const login = await s.client.loginAppRole(id.mountPath, id.roleId, secretId);
        s.token = this.#schedule(login.ttlSeconds, login.renewable);
      } else {
        const token = await this.#kubeSecrets().read(id.secretRef);
        s.client.setToken(token.trim());
        const self = await s.client.lookupSelf();
        s.token = this.#schedule(self.ttlSeconds, self.renewable);
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
      const r = await s.client.renewSelf();
      const next = this.#schedule(r.ttlSeconds, r.renewable);
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
      // A refused renewal: one fresh login.
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

  async #readFile(
    directory: string,
    namespace: string,
    rel: string,
    providerName: string,
  ): Promise<Record<string, unknown>> {
    const where = `${providerName}:${rel}`;
    let root: string;
    try {
      root = await realpath(directory);
    } catch {
      throw new ConnectorError(
        "transient",
        "VaultUnavailable",
        `SecretProvider ${providerName}: directory is not readable`,
      );
    }
    const file = nodePath.join(root, `${rel}.json`);
    let real: string;
    try {
      real = await realpath(file);
    } catch {
      throw new ConnectorError("permanent", "SecretNotFound", `the secret ${where} does not exist`);
    }
    // A symlink must not lead out of the namespace's own directory.
    if (!real.startsWith(nodePath.join(root, namespace) + nodePath.sep))
      throw new ConnectorError(
        "validation_error",
        "InvalidSecretRef",
        `the secret ${where} leads outside the namespace's directory of the provider`,
      );
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(real, "utf8"));
    } catch {
      throw new ConnectorError("permanent", "SecretUnreadable", `the secret ${where} is not a JSON file`);
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed))
      throw new ConnectorError("permanent", "SecretUnreadable", `the secret ${where} is not a JSON object`);
    return parsed as Record<string, unknown>;
  }
}

function describeIdentity(id: Identity): string {
  switch (id.kind) {
    case "kubernetes":
      return `system:serviceaccount:${id.namespace}:${id.serviceAccount} (role ${id.role} at auth/${id.mountPath})`;
    case "appRole":
      return `AppRole at auth/${id.mountPath}`;
    case "token":
      return `the token in Secret ${id.secretRef.namespace}/${id.secretRef.name}`;
  }
}
