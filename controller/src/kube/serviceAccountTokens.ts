// What the secret resolver needs from the cluster to authenticate to Vault:
// - TokenRequest: a short-lived, audience-bound token for a service account in the
//   Connector's own namespace (tenant identity; Vault's TokenReview checks it);
// - one key of a Kubernetes Secret (AppRole SecretIDs and static tokens of platform providers).
// Errors leave as ConnectorErrors holding the status code and the API's message only.
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { SecretKeySelector } from "../api/types.ts";
import { kubeError } from "./apiErrors.ts";
import { ConnectorError } from "../api/errors.ts";
import type { KubeSecretKeySource, ServiceAccountTokenSource } from "../secrets/ports.ts";

/** TokenRequest through CoreV1Api.createNamespacedServiceAccountToken. */
export class KubeServiceAccountTokens implements ServiceAccountTokenSource {
  readonly #api: CoreV1Api;
  requests = 0;

  constructor(kc: KubeConfig) {
    this.#api = kc.makeApiClient(CoreV1Api);
  }

  async request(
    namespace: string,
    serviceAccount: string,
    audiences: string[],
    expirationSeconds: number,
  ): Promise<string> {
    this.requests++;
    const what = `TokenRequest for service account ${namespace}/${serviceAccount}`;
    try {
      const res = await this.#api.createNamespacedServiceAccountToken({
        name: serviceAccount,
        namespace,
        body: {
          apiVersion: "authentication.k8s.io/v1",
          kind: "TokenRequest",
          spec: { audiences, expirationSeconds },
        },
      });
      const token = res.status?.token;
      if (!token)
        throw new ConnectorError("transient", "KubernetesApiError", `${what}: no token in the response`);
      return token;
    } catch (err) {
      throw kubeError(err, what, { notFoundReason: "ServiceAccountNotFound" });
    }
  }
}

/** Reads one key of a Kubernetes Secret (never cached: the value is a credential). */
export class KubeSecretKeys implements KubeSecretKeySource {
  readonly #api: CoreV1Api;

  constructor(kc: KubeConfig) {
    this.#api = kc.makeApiClient(CoreV1Api);
  }

  async read(ref: SecretKeySelector): Promise<string> {
    const what = `Secret ${ref.namespace}/${ref.name}`;
    let data: Record<string, string> | undefined;
    try {
      const s = await this.#api.readNamespacedSecret({ name: ref.name, namespace: ref.namespace });
      data = s.data;
    } catch (err) {
      throw kubeError(err, `reading ${what}`, { notFoundReason: "SecretNotFound" });
    }
    const b64 = data?.[ref.key];
    if (b64 === undefined)
      throw new ConnectorError(
        "permanent",
        "SecretKeyMissing",
        `${what} has no key ${JSON.stringify(ref.key)}`,
      );
    return Buffer.from(b64, "base64").toString("utf8");
  }
}
