// What the secrets code needs from outside (kube/ implements these). Interfaces only; what
// it offers is in reconcile/ports.ts (SecretResolver, SecretProviderChecker).
import type { SecretKeySelector, SecretProvider } from "../api/types.ts";

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
