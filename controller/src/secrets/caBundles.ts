// The CA bundle a Vault provider's TLS trusts: inline (spec.vault.caBundle), or from a
// ConfigMap or Secret of the controller's own namespace (spec.vault.caBundleRef), read
// through kube/ and read again once it is older than refreshMs (default 30 s, the
// SecretProvider check's interval, which also refreshes it), so a rotated CA is trusted
// within a minute without editing the provider. A CA is not a secret: it is cached. When a
// re-read fails, the last CA read keeps serving (sessions keep working while the API
// server is away); the provider's Ready condition says the reference is broken.
import { sha256 } from "../api/canonical.ts";
import { systemClock, type Clock } from "../api/clock.ts";
import { ConnectorError } from "../api/errors.ts";
import type { Logger } from "../api/logger.ts";
import type { SecretProvider } from "../api/types.ts";
import type { CaBundleSource } from "./ports.ts";

export const CA_REFRESH_MS = 30_000;

interface Entry {
  /** Identifies the reference: a changed ref is read afresh. */
  ref: string;
  pem: string;
  readAt: number;
}

export interface CaBundlesOptions {
  source?: CaBundleSource | undefined;
  log: Logger;
  clock?: Clock;
  refreshMs?: number;
}

export class CaBundles {
  readonly #o: Required<Omit<CaBundlesOptions, "source">> & { source: CaBundleSource | undefined };
  readonly #entries = new Map<string, Entry>();
  readonly #flights = new Map<string, Promise<string>>();

  constructor(opts: CaBundlesOptions) {
    this.#o = {
      source: opts.source,
      log: opts.log,
      clock: opts.clock ?? systemClock,
      refreshMs: opts.refreshMs ?? CA_REFRESH_MS,
    };
  }

  /**
   * The PEM the provider's TLS trusts (undefined: the system's roots). `fresh` reads the
   * reference now and fails when it cannot (the provider check); otherwise a recent read is
   * reused and a failed re-read falls back to the last one.
   */
  async get(
    provider: SecretProvider,
    opts: { fresh?: boolean; signal?: AbortSignal } = {},
  ): Promise<string | undefined> {
    const vault = provider.spec.vault;
    if (!vault?.caBundleRef) return vault?.caBundle || undefined;
    const name = provider.metadata.name;
    const ref = `${vault.caBundleRef.kind}/${vault.caBundleRef.name}/${vault.caBundleRef.key ?? "ca.crt"}`;
    const cached = this.#entries.get(name);
    const now = this.#o.clock.now().getTime();
    const usable = cached?.ref === ref ? cached : undefined;
    if (!opts.fresh && usable && now - usable.readAt < this.#o.refreshMs) return usable.pem;
    try {
      return await this.#read(name, ref, provider, opts.signal);
    } catch (err) {
      if (opts.fresh || !usable) throw err;
      this.#o.log.warn(
        { provider: name, reason: (err as ConnectorError).reason, err: (err as Error).message },
        "could not re-read the CA bundle; the last one read stays in use",
      );
      return usable.pem;
    }
  }

  /** A short digest of the CA in use, for session keys (no CA: ""). */
  static digest(pem: string | undefined): string {
    return pem ? sha256(pem).slice(0, 16) : "";
  }

  forget(name: string): void {
    this.#entries.delete(name);
  }

  #read(name: string, ref: string, provider: SecretProvider, signal?: AbortSignal): Promise<string> {
    const key = `${name}\u0000${ref}`;
    let flight = this.#flights.get(key);
    if (!flight) {
      const source = this.#o.source;
      if (!source)
        return Promise.reject(
          new ConnectorError(
            "permanent",
            "InvalidSecretProvider",
            `SecretProvider ${name}: this process was started without access to Kubernetes (needed by spec.vault.caBundleRef)`,
          ),
        );
      flight = source.read(provider.spec.vault!.caBundleRef!, signal).then((pem) => {
        const before = this.#entries.get(name);
        if (before && before.ref === ref && before.pem !== pem)
          this.#o.log.info(
            { provider: name },
            "the CA bundle changed; new Vault connections trust the new one",
          );
        this.#entries.set(name, { ref, pem, readAt: this.#o.clock.now().getTime() });
        return pem;
      });
      const done = flight.finally(() => this.#flights.delete(key));
      done.catch(() => undefined);
      this.#flights.set(key, flight);
    }
    return flight;
  }
}
