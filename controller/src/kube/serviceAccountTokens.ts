// What the secret resolver needs from the cluster to authenticate to Vault:
// - TokenRequest: a short-lived, audience-bound token for a service account in the
//   Connector's own namespace (tenant identity; Vault's TokenReview checks it);
// - one key of a Kubernetes Secret (AppRole SecretIDs and static tokens of platform providers).
// Errors leave as ConnectorErrors holding the status code and the API's message only.
import { ApiException, CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { SecretKeySelector } from "../api/types.ts";
import { ConnectorError } from "../reconcile/errors.ts";
import type { KubeSecretKeySource, ServiceAccountTokenSource } from "../secrets/resolver.ts";

function apiMessage(err: ApiException<unknown>): string {
  const body = (typeof err.body === "string" ? safeJson(err.body) : err.body) as
    { message?: string; reason?: string } | undefined;
  return String(body?.message ?? body?.reason ?? "").slice(0, 300);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { message: text.slice(0, 200) };
  }
}

function wrap(err: unknown, what: string, notFoundReason: string): ConnectorError {
  if (err instanceof ConnectorError) return err;
  if (err instanceof ApiException) {
    const code = err.code;
    const msg = `${what}: ${code} ${apiMessage(err)}`.trim();
    // A missing service account or Secret may be created at any time: retry with backoff.
    if (code === 404)
      return new ConnectorError("transient", notFoundReason, msg, { providerStatusCode: code });
    if (code === 403)
      return new ConnectorError("transient", "KubernetesForbidden", `${msg} (check the controller's RBAC)`, {
        providerStatusCode: code,
      });
    if (code === 429)
      return new ConnectorError("quota_exceeded", "KubernetesThrottled", msg, {
        providerStatusCode: code,
        retryAfterMs: 1_000,
      });
    return new ConnectorError("transient", "KubernetesApiError", msg, { providerStatusCode: code });
  }
  const e = err as { message?: string; code?: string };
  return new ConnectorError(
    "transient",
    "KubernetesApiError",
    `${what}: ${e?.code ?? ""} ${String(e?.message ?? err).slice(0, 300)}`.trim(),
  );
}

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
      throw wrap(err, what, "ServiceAccountNotFound");
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
      throw wrap(err, `reading ${what}`, "SecretNotFound");
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
