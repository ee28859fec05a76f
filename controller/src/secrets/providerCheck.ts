// SecretProvider checks: the static ones of its spec (the CRD enforces most, but informers
// may carry objects from before a CRD change), and the live one behind its Ready condition.
import * as nodePath from "node:path";
import { DEFAULT_PATH_TEMPLATE, type SecretProvider, type VaultProviderSpec } from "../api/types.ts";
import { ConnectorError } from "../api/errors.ts";
import { checkFileProvider } from "./fileProvider.ts";
import { checkKubernetesProvider } from "./kubernetesProvider.ts";
import { checkPathTemplate } from "./pathGuard.ts";
import type { ProviderCheck } from "../reconcile/ports.ts";
import { VaultClient } from "./vaultClient.ts";

export function providerInvalid(name: string, message: string): ConnectorError {
  return new ConnectorError(
    "validation_error",
    "InvalidSecretProvider",
    `SecretProvider ${name}: ${message}`,
  );
}

/** Throws validation_error/InvalidSecretProvider naming what is wrong with the spec. */
export function checkProviderSpec(p: SecretProvider): void {
  const name = p.metadata.name;
  const { vault, kubernetes, file } = p.spec ?? {};
  if ([vault, kubernetes, file].filter((x) => x !== undefined).length !== 1)
    throw providerInvalid(name, "exactly one of spec.vault, spec.kubernetes and spec.file must be set");
  if (kubernetes) {
    const sa = kubernetes.serviceAccountName;
    if (sa !== undefined && (sa.length > 253 || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(sa)))
      throw providerInvalid(name, "spec.kubernetes.serviceAccountName is not a valid service account name");
    return;
  }
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
  if (vault.caBundle && vault.caBundleRef)
    throw providerInvalid(name, "set at most one of spec.vault.caBundle and spec.vault.caBundleRef");
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

export interface ProviderCheckOptions {
  /** Timeout of the health request. */
  requestTimeoutMs: number;
  /** Logs in with the provider's platform identity (appRole, token). */
  authenticate(provider: SecretProvider): Promise<void>;
  /** The CA the TLS trusts, read now (a caBundleRef); the inline caBundle when absent. */
  caBundle?(provider: SecretProvider): Promise<string | undefined>;
}

/**
 * A provider's Ready check: config, reachability, seal status and, where a platform
 * identity exists (appRole, token), that it can log in. Kubernetes-auth providers have no
 * identity of their own (tenants log in), so reachable and unsealed is Ready; a kubernetes
 * provider is Ready once its spec is valid (RBAC answers each read).
 */
export async function checkProvider(
  provider: SecretProvider,
  opts: ProviderCheckOptions,
  signal?: AbortSignal,
): Promise<ProviderCheck> {
  try {
    checkProviderSpec(provider);
  } catch (err) {
    return { ready: false, reason: "InvalidConfig", message: (err as Error).message };
  }
  if (provider.spec.file) return checkFileProvider(provider.spec.file);
  if (provider.spec.kubernetes) return checkKubernetesProvider(provider);
  const vault = provider.spec.vault as VaultProviderSpec;
  let caBundle = vault.caBundle;
  if (vault.caBundleRef && opts.caBundle)
    try {
      caBundle = await opts.caBundle(provider);
    } catch (err) {
      return { ready: false, reason: "InvalidConfig", message: (err as Error).message };
    }
  const client = new VaultClient({
    address: vault.address,
    caBundle,
    namespace: vault.namespace,
    requestTimeoutMs: opts.requestTimeoutMs,
  });
  try {
    const h = await client.health(signal);
    if (!h.initialized) return { ready: false, reason: "Unreachable", message: "Vault is not initialized" };
    if (h.sealed) return { ready: false, reason: "Sealed", message: "Vault is sealed" };
  } catch (err) {
    return { ready: false, reason: "Unreachable", message: (err as ConnectorError).message };
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
    await opts.authenticate(provider);
    return { ready: true, reason: "Ready", message: "reachable, unsealed and authenticated" };
  } catch (err) {
    const e = err as ConnectorError;
    if (e.reason === "VaultUnavailable") return { ready: false, reason: "Unreachable", message: e.message };
    return { ready: false, reason: "Unauthenticated", message: e.message };
  }
}
