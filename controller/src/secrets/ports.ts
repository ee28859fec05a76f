// What the secrets code needs from outside (kube/ implements these) and the one value it
// hands back for a SecretProvider's status. Interfaces only.
import type { SecretKeySelector, SecretProvider, SecretProviderReason } from "../api/types.ts";

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

/** The outcome of checking a provider, for its Ready condition. */
export interface ProviderCheck {
  ready: boolean;
  reason: SecretProviderReason;
  message: string;
}
