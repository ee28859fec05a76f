// Resolves a Connector's secretRef through its SecretProvider (DESIGN §6): the path guard
// and the namespace check, then the provider's read (Vault through the tenant's session, a
// Kubernetes Secret of the Connector's namespace read as the tenant's service account, or
// the development file provider), the key mapping and the keyed fingerprint.
//
// Secret values are never cached: concurrent resolves of the same path share one in-flight
// read, and the value is dropped once handed out (at most shareReadsMs later).
import type { SecretProvider, SecretRef, VaultProviderSpec } from "../api/types.ts";
import { ConnectorError } from "../api/errors.ts";
import type { ResolvedSecret } from "../api/model.ts";
import type { ProviderCheck, SecretProviderChecker, SecretResolver } from "../reconcile/ports.ts";
import { readSecretFile } from "./fileProvider.ts";
import {
  checkNamespaceAllowed,
  FILE_PATH_TEMPLATE,
  kubernetesSecretName,
  renderSecretPath,
} from "./pathGuard.ts";
import { CaBundles } from "./caBundles.ts";
import { readerOf } from "./kubernetesProvider.ts";
import type { CaBundleSource, SecretProviderLookup, TenantSecretSource } from "./ports.ts";
import { checkProvider, checkProviderSpec, providerInvalid } from "./providerCheck.ts";
import { fingerprint, mapSecretKeys } from "./values.ts";
import type { KvSecret } from "./vaultClient.ts";
import { specHash, VaultSessions, type ResolverStats, type VaultSessionsOptions } from "./vaultSessions.ts";

export type { ResolverStats } from "./vaultSessions.ts";

export interface VaultSecretResolverOptions extends VaultSessionsOptions {
  providers: SecretProviderLookup;
  /** A namespace's labels (informer cache), for namespaceSelector; undefined when unknown. */
  namespaceLabels: (namespace: string) => Record<string, string> | undefined;
  /** The fingerprint key (kube/hmacKey.ts); at least 16 bytes. */
  hmacKey: Buffer;
  /** A finished read is shared with resolves arriving this soon after it (default 2 s). */
  shareReadsMs?: number;
  /** Needed only by kubernetes providers: Secrets read as the tenant's service account. */
  tenantSecrets?: TenantSecretSource | undefined;
  /** Needed only by Vault providers with a caBundleRef. */
  caBundleSource?: CaBundleSource | undefined;
  /** A caBundleRef is read again once its last read is this old (default 30 s). */
  caRefreshMs?: number;
}

function aborted(): ConnectorError {
  return new ConnectorError("transient", "Aborted", "secret resolution aborted");
}

/** `p`, or a rejection as soon as `signal` aborts (`p` itself goes on for its other waiters). */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(aborted());
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(aborted());
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

export class VaultSecretResolver implements SecretResolver, SecretProviderChecker {
  readonly #providers: SecretProviderLookup;
  readonly #namespaceLabels: (namespace: string) => Record<string, string> | undefined;
  readonly #hmacKey: Buffer;
  readonly #requestTimeoutMs: number;
  readonly #shareReadsMs: number;
  readonly #sessions: VaultSessions;
  readonly #caBundles: CaBundles;
  readonly #tenantSecrets: TenantSecretSource | undefined;
  readonly #reads = new Map<string, Promise<KvSecret>>();
  #closed = false;

  constructor(opts: VaultSecretResolverOptions) {
    if (!Buffer.isBuffer(opts.hmacKey) || opts.hmacKey.length < 16)
      throw new Error("VaultSecretResolver: hmacKey must be a Buffer of at least 16 bytes");
    this.#providers = opts.providers;
    this.#namespaceLabels = opts.namespaceLabels;
    this.#hmacKey = opts.hmacKey;
    this.#requestTimeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.#shareReadsMs = opts.shareReadsMs ?? 2000;
    this.#sessions = new VaultSessions(opts);
    this.#caBundles = new CaBundles({
      source: opts.caBundleSource,
      log: opts.log,
      ...(opts.clock ? { clock: opts.clock } : {}),
      ...(opts.caRefreshMs !== undefined ? { refreshMs: opts.caRefreshMs } : {}),
    });
    this.#tenantSecrets = opts.tenantSecrets;
  }

  get stats(): ResolverStats {
    return this.#sessions.stats;
  }

  /** SecretResolver: the guard, then the provider's read, the key mapping and the fingerprint. */
  async resolve(namespace: string, ref: SecretRef, signal?: AbortSignal): Promise<ResolvedSecret> {
    if (this.#closed)
      throw new ConnectorError("transient", "ResolverClosed", "the secret resolver is closed");
    const provider = this.#provider(ref.provider);
    const name = provider.metadata.name;
    checkNamespaceAllowed(name, provider.spec, namespace, this.#namespaceLabels(namespace));
    if (ref.version !== undefined && (!Number.isInteger(ref.version) || ref.version < 1))
      throw new ConnectorError(
        "validation_error",
        "InvalidSecretRef",
        "spec.credentials.secretRef.version must be a positive integer",
      );

    if (provider.spec.file) {
      const rel = renderSecretPath(FILE_PATH_TEMPLATE, namespace, ref.name);
      if (ref.version !== undefined)
        throw new ConnectorError(
          "validation_error",
          "InvalidSecretRef",
          `spec.credentials.secretRef.version: SecretProvider ${name} is a file provider, which has no versions`,
        );
      const data = await readSecretFile(provider.spec.file.directory, namespace, rel, name);
      const values = mapSecretKeys(data, ref.keys, `${name}:${rel}`);
      return { values, version: null, fingerprint: fingerprint(this.#hmacKey, values) };
    }

    if (provider.spec.kubernetes) {
      const secretName = kubernetesSecretName(namespace, ref.name);
      if (ref.version !== undefined)
        throw new ConnectorError(
          "validation_error",
          "InvalidSecretRef",
          `spec.credentials.secretRef.version: SecretProvider ${name} reads Kubernetes Secrets, which have no versions`,
        );
      const data = await this.readSecret(provider, namespace, secretName, signal);
      const values = mapSecretKeys(data, ref.keys, `${namespace}/${secretName} (SecretProvider ${name})`);
      return { values, version: null, fingerprint: fingerprint(this.#hmacKey, values) };
    }

    const vault = provider.spec.vault as VaultProviderSpec;
    const path = renderSecretPath(vault.pathTemplate, namespace, ref.name);
    const kv = await this.readPath(provider, namespace, path, ref.version, signal);
    const values = mapSecretKeys(kv.data, ref.keys, `${name}:${vault.kv.mount}/${path}`);
    return { values, version: kv.version, fingerprint: fingerprint(this.#hmacKey, values) };
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
    const ca = await raceAbort(this.#caBundles.get(provider), signal);
    const session = this.#sessions.session(provider, namespace, ca);
    const kvVersion = vault.kv.version === 1 ? 1 : 2;
    const key = `${session.key}\u0000${vault.kv.mount}\u0000${kvVersion}\u0000${path}\u0000${version ?? ""}`;
    return this.#shared(
      key,
      () => this.#sessions.read(session, vault.kv.mount, kvVersion, path, version),
      signal,
    );
  }

  /**
   * The lower-level read of a kubernetes provider WITHOUT the name guard or the namespace
   * check: the Secret `secretName` of `namespace`, read as that namespace's reader service
   * account (the API server's RBAC decides). resolve() is the only production caller; tests
   * call it to show that RBAC is the second wall. Concurrent calls share one request.
   */
  async readSecret(
    providerOrName: SecretProvider | string,
    namespace: string,
    secretName: string,
    signal?: AbortSignal,
  ): Promise<Record<string, string>> {
    const provider = typeof providerOrName === "string" ? this.#provider(providerOrName) : providerOrName;
    const reader = readerOf(provider);
    const source = this.#tenantSecrets;
    if (!source)
      throw new ConnectorError(
        "permanent",
        "InvalidSecretProvider",
        "this process was started without a Kubernetes Secret reader (needed by kubernetes providers)",
      );
    const key = `kubernetes\u0000${provider.metadata.name}\u0000${namespace}\u0000${reader}\u0000${secretName}`;
    const timeoutMs = this.#requestTimeoutMs;
    const kv = await this.#shared(
      key,
      async () => ({
        data: await source.read(namespace, reader, secretName, AbortSignal.timeout(timeoutMs)),
        version: null,
      }),
      signal,
    );
    return kv.data as Record<string, string>;
  }

  /**
   * Resolves that arrive while a read is in flight, or within shareReadsMs after it (the
   * probes of one refresh, which the reconciler brings due together), share it.
   */
  async #shared(
    key: string,
    read: () => Promise<KvSecret>,
    signal: AbortSignal | undefined,
  ): Promise<KvSecret> {
    let flight = this.#reads.get(key);
    if (!flight) {
      const started = read();
      flight = started;
      const forget = () => {
        if (this.#reads.get(key) === started) this.#reads.delete(key);
      };
      const share = this.#shareReadsMs;
      started.then(() => (share > 0 ? setTimeout(forget, share).unref() : forget()), forget);
      this.#reads.set(key, flight);
    }
    const kv = await raceAbort(flight, signal);
    // Each caller gets its own copy; nothing of the value stays with the resolver.
    return { data: { ...kv.data }, version: kv.version };
  }

  /** The provider's Ready check (providerCheck.ts), logging in with its platform identity if it has one. */
  checkProvider(provider: SecretProvider, signal?: AbortSignal): Promise<ProviderCheck> {
    return checkProvider(
      provider,
      {
        requestTimeoutMs: Math.min(this.#requestTimeoutMs, 5_000),
        caBundle: (p) => this.#caBundles.get(p, { fresh: true, ...(signal ? { signal } : {}) }),
        authenticate: async (p) =>
          this.#sessions.ensureToken(this.#sessions.session(p, "", await this.#caBundles.get(p))),
      },
      signal,
    );
  }

  /** Call when a provider was updated: its sessions are revoked and dropped (also done lazily). */
  async providerChanged(name: string): Promise<void> {
    const p = this.#providers.get(name);
    await this.#sessions.dropProvider(name, "provider changed", p ? specHash(p) : undefined);
  }

  /** Call when a provider was deleted. */
  async providerDeleted(name: string): Promise<void> {
    this.#caBundles.forget(name);
    await this.#sessions.dropProvider(name, "provider deleted");
  }

  /** Revokes every token and drops every session. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#reads.clear();
    await this.#sessions.dropAll("resolver closed");
  }

  #provider(name: string): SecretProvider {
    const p = this.#providers.get(name);
    if (!p)
      throw new ConnectorError(
        "transient",
        "SecretProviderNotFound",
        `SecretProvider ${name} (spec.credentials.secretRef.provider) does not exist`,
      );
    checkProviderSpec(p);
    return p;
  }
}
