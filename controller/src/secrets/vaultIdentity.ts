// The Vault identity a SecretProvider gives a Connector's namespace (DESIGN §6 "Tenant
// identity by default"): with Kubernetes auth, the provider's service account IN THAT
// NAMESPACE and its role (with {namespace} filled in), so Vault's policy for the role is
// the second wall behind the path guard; AppRole and static tokens are platform
// identities, the same for every namespace.
import { ConnectorError } from "../api/errors.ts";
import type { SecretKeySelector, SecretProvider, VaultProviderSpec } from "../api/types.ts";

export type Identity =
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

/** The identity `provider` gives `namespace`. */
export function identityOf(provider: SecretProvider, namespace: string): Identity {
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
  throw new ConnectorError(
    "validation_error",
    "InvalidSecretProvider",
    `SecretProvider ${provider.metadata.name}: no auth method`,
  );
}

/** Sessions are per identity: equal keys, one session. */
export function identityKey(id: Identity): string {
  switch (id.kind) {
    case "kubernetes":
      return `kubernetes:${id.mountPath}:${id.role}|${id.namespace}/${id.serviceAccount}`;
    case "appRole":
      return `approle:${id.mountPath}:${id.roleId}|platform`;
    case "token":
      return `token:${id.secretRef.namespace}/${id.secretRef.name}/${id.secretRef.key}|platform`;
  }
}

/** For messages: who logged in (never a credential). */
export function describeIdentity(id: Identity): string {
  switch (id.kind) {
    case "kubernetes":
      return `system:serviceaccount:${id.namespace}:${id.serviceAccount} (role ${id.role} at auth/${id.mountPath})`;
    case "appRole":
      return `AppRole at auth/${id.mountPath}`;
    case "token":
      return `the token in Secret ${id.secretRef.namespace}/${id.secretRef.name}`;
  }
}
