// Kubernetes Secrets for the `kubernetes` SecretProvider, read WITH THE TENANT'S IDENTITY:
// every GET carries Impersonate-User: system:serviceaccount:<namespace>:<serviceAccount>,
// so the API server authorizes it as the Connector's own namespace's reader service account
// (RBAC is the second wall, as Vault's policy is for Vault). The controller itself needs
// only `impersonate` on that service account, never get on tenants' Secrets.
//
// Also the CA bundles that Vault providers name by caBundleRef, read with the controller's
// own identity in its own namespace.
//
// Nothing is cached: the values are credentials. Errors keep the status code and the API's
// message only (client-node's errors carry whole bodies, here the Secret's data).
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { ConnectorError } from "../api/errors.ts";
import type { CaBundleRef } from "../api/types.ts";
import type { CaBundleSource, TenantSecretSource } from "../secrets/ports.ts";
import { apiStatus, kubeError } from "./apiErrors.ts";
import { requestOptions } from "./requestOptions.ts";

export function serviceAccountUser(namespace: string, serviceAccount: string): string {
  return `system:serviceaccount:${namespace}:${serviceAccount}`;
}

/** base64 values as UTF-8 strings. */
function decode(data: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, b64] of Object.entries(data ?? {})) out[k] = Buffer.from(b64, "base64").toString("utf8");
  return out;
}

/** The API's message of a 403 without the request's details (it names user, verb and resource only). */
function forbiddenMessage(err: unknown): string {
  const e = kubeError(err, "");
  return e.message.replace(/^: 403 /, "").replace(/ \(check the controller's RBAC\)$/, "");
}

export class KubeTenantSecrets implements TenantSecretSource {
  readonly #api: CoreV1Api;
  reads = 0;

  constructor(kc: KubeConfig) {
    this.#api = kc.makeApiClient(CoreV1Api);
  }

  async read(
    namespace: string,
    serviceAccount: string,
    name: string,
    signal?: AbortSignal,
  ): Promise<Record<string, string>> {
    const as = serviceAccountUser(namespace, serviceAccount);
    const what = `Secret ${namespace}/${name}`;
    this.reads++;
    try {
      const s = await this.#api.readNamespacedSecret(
        { name, namespace },
        requestOptions([["Impersonate-User", as]], signal),
      );
      return decode(s.data);
    } catch (err) {
      const code = apiStatus(err);
      if (code === 404)
        throw new ConnectorError(
          "permanent",
          "SecretNotFound",
          `${what} does not exist (spec.credentials.secretRef.name)`,
          { providerStatusCode: 404 },
        );
      if (code === 403 || code === 401) {
        const api = forbiddenMessage(err);
        // Two walls can refuse: the controller may not act as the reader, or the reader may not read.
        const hint = /impersonate/i.test(api)
          ? `the controller may not impersonate ${as}: allow it (the chart's kubernetesSecrets.readerServiceAccounts lists the names it may impersonate)`
          : `${as} may not get it: bind it to a Role granting get on this Secret (docs/kubernetes-secrets.md)`;
        throw new ConnectorError(
          "policy_denied",
          "PermissionDenied",
          `reading ${what} as ${as} was refused: ${hint} (${api})`,
          {
            providerStatusCode: code,
          },
        );
      }
      throw kubeError(err, `reading ${what} as ${as}`);
    }
  }
}

/** CA bundles from ConfigMaps and Secrets of the controller's own namespace. */
export class KubeCaBundles implements CaBundleSource {
  readonly #api: CoreV1Api;
  readonly #namespace: string;
  reads = 0;

  constructor(kc: KubeConfig, namespace: string) {
    this.#api = kc.makeApiClient(CoreV1Api);
    this.#namespace = namespace;
  }

  get namespace(): string {
    return this.#namespace;
  }

  async read(ref: CaBundleRef, signal?: AbortSignal): Promise<string> {
    const ns = this.#namespace;
    const key = ref.key ?? "ca.crt";
    const what = `${ref.kind} ${ns}/${ref.name}`;
    const opts = signal ? requestOptions([["Accept", "application/json"]], signal) : undefined;
    let pem: string | undefined;
    try {
      if (ref.kind === "Secret") {
        const s = await this.#api.readNamespacedSecret({ name: ref.name, namespace: ns }, opts);
        pem = decode(s.data)[key];
      } else {
        const c = await this.#api.readNamespacedConfigMap({ name: ref.name, namespace: ns }, opts);
        pem = c.data?.[key] ?? decode(c.binaryData)[key];
      }
    } catch (err) {
      const e = kubeError(err, `reading the CA bundle (spec.vault.caBundleRef) from ${what}`);
      throw new ConnectorError("transient", "CaBundleUnavailable", e.message, {
        ...(e.providerStatusCode ? { providerStatusCode: e.providerStatusCode } : {}),
      });
    }
    if (!pem?.trim())
      throw new ConnectorError(
        "transient",
        "CaBundleUnavailable",
        `${what} has no key ${JSON.stringify(key)} (spec.vault.caBundleRef.key)`,
      );
    return pem;
  }
}
