// Resolves a Connector's secretRef through its SecretProvider (DESIGN §6): the path guard
// and the namespace check, then the provider's read (Vault through the tenant's session,
// or the development file provider), the key mapping and the keyed fingerprint.
//
// Secret values are never cached: concurrent resolves of the same path share one in-flight
// read, and the value is dropped once handed out (at most shareReadsMs later).
import type { SecretProvider, SecretRef, VaultProviderSpec } from "../api/types.ts";
import { ConnectorError } from "../api/errors.ts";
import type { ResolvedSecret } from "../api/model.ts";
import type { ProviderCheck, SecretProviderChecker, SecretResolver } from "../reconcile/ports.ts";
import { readSecretFile } from "./fileProvider.ts";
import { checkNamespaceAllowed, FILE_PATH_TEMPLATE, renderSecretPath } from "./pathGuard.ts";
import type { SecretProviderLookup } from "./ports.ts";
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
    const session = this.#sessions.session(provider, namespace);
    const kvVersion = vault.kv.version === 1 ? 1 : 2;
    const key = `${session.key}\u0000${vault.kv.mount}\u0000${kvVersion}\u0000${path}\u0000${version ?? ""}`;
    let flight = this.#reads.get(key);
    if (!flight) {
      // Resolves that arrive while a read is in flight, or within shareReadsMs after it (the
      // probes of one refresh, which the reconciler brings due together), share it.
      const read = this.#sessions.read(session, vault.kv.mount, kvVersion, path, version);
      flight = read;
      const forget = () => {
        if (this.#reads.get(key) === read) this.#reads.delete(key);
      };
      const share = this.#shareReadsMs;
      read.then(() => (share > 0 ? setTimeout(forget, share).unref() : forget()), forget);
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
        authenticate: (p) => this.#sessions.ensureToken(this.#sessions.session(p, "")),
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
