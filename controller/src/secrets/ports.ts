// What the secrets code needs from outside (kube/ implements these). Interfaces only; what
// it offers is in reconcile/ports.ts (SecretResolver, SecretProviderChecker).
import type { CaBundleRef, SecretKeySelector, SecretProvider } from "../api/types.ts";

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

/**
 * A Secret of a Connector's own namespace, read AS the service account `serviceAccount` of
 * that namespace (Impersonate-User), for the kubernetes provider: the API server's RBAC
 * decides. Its data base64-decoded. Throws permanent/SecretNotFound,
 * policy_denied/PermissionDenied (403), or a transient error. kube/tenantSecrets.ts.
 */
export interface TenantSecretSource {
  read(
    namespace: string,
    serviceAccount: string,
    name: string,
    signal?: AbortSignal,
  ): Promise<Record<string, string>>;
}

/**
 * A Vault provider's caBundleRef: the PEM from a ConfigMap or Secret of the controller's own
 * namespace. Throws transient/CaBundleUnavailable. kube/tenantSecrets.ts.
 */
export interface CaBundleSource {
  read(ref: CaBundleRef, signal?: AbortSignal): Promise<string>;
}
