// The `kubernetes` SecretProvider: a Connector's secret is a Secret of its OWN namespace,
// named by secretRef.name (pathGuard.ts kubernetesSecretName: one plain name, never a path),
// read as that namespace's reader service account (kube/tenantSecrets.ts impersonates it),
// so the API server's RBAC is the second wall, as Vault's policy is for Vault. The
// controller's own identity never reads a tenant's Secret.
import { DEFAULT_READER_SERVICE_ACCOUNT, type SecretProvider } from "../api/types.ts";
import type { ProviderCheck } from "../reconcile/ports.ts";

/** The reader service account's name (in each Connector's namespace). */
export function readerOf(provider: SecretProvider): string {
  return provider.spec.kubernetes?.serviceAccountName || DEFAULT_READER_SERVICE_ACCOUNT;
}

/**
 * Ready once the spec is valid: there is no server of its own to reach, and whether a
 * namespace's reader may read is RBAC's answer for each read (PermissionDenied on the
 * Connector says which wall refused).
 */
export function checkKubernetesProvider(provider: SecretProvider): ProviderCheck {
  return {
    ready: true,
    reason: "Ready",
    message: `reads Secrets in each Connector's own namespace as its service account ${readerOf(provider)}`,
  };
}
