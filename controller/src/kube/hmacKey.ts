// HMAC keys shared by every replica: 32 random bytes in a Secret of the controller's
// namespace, created once. The fingerprint key (secret fingerprints agree across restarts
// and leaders) and the approval key (gateway replicas verify each other's approvals).
import { randomBytes } from "node:crypto";
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { ConnectorError, errorChainMessage } from "../api/errors.ts";
import { apiStatus } from "./apiErrors.ts";

export const FINGERPRINT_KEY_SECRET = "connector-controller-fingerprint-key";
export const APPROVAL_KEY_SECRET = "connector-gateway-approval-key";
export const FINGERPRINT_KEY_FIELD = "key";

function decode(data: Record<string, string> | undefined): Buffer | undefined {
  const b64 = data?.[FINGERPRINT_KEY_FIELD];
  if (!b64) return undefined;
  const key = Buffer.from(b64, "base64");
  return key.length >= 16 ? key : undefined;
}

function fail(what: string, secret: string, err: unknown): ConnectorError {
  const code = apiStatus(err);
  return new ConnectorError(
    "transient",
    "FingerprintKeyUnavailable",
    `${what} Secret ${secret}${code ? `: ${code}` : `: ${errorChainMessage(err)}`}`,
    code ? { providerStatusCode: code } : {},
  );
}

/**
 * Reads the fingerprint key, creating the Secret with a fresh random key when it does not
 * exist. Two replicas racing to create it: the loser gets 409 and reads the winner's key.
 */
export function loadOrCreateFingerprintKey(
  kc: KubeConfig,
  namespace: string,
  opts: { attempts?: number } = {},
) {
  return loadOrCreateKey(
    kc,
    namespace,
    FINGERPRINT_KEY_SECRET,
    "HMAC key of secret fingerprints; deleting it makes every fingerprint change once",
    opts,
  );
}

export async function loadOrCreateKey(
  kc: KubeConfig,
  namespace: string,
  secret: string,
  purpose: string,
  opts: { attempts?: number } = {},
): Promise<Buffer> {
  const api = kc.makeApiClient(CoreV1Api);
  const attempts = opts.attempts ?? 5;
  for (let i = 0; i < attempts; i++) {
    try {
      const s = await api.readNamespacedSecret({ name: secret, namespace });
      const key = decode(s.data);
      if (!key)
        throw new ConnectorError(
          "permanent",
          "FingerprintKeyInvalid",
          `Secret ${namespace}/${secret} has no key "${FINGERPRINT_KEY_FIELD}" of at least 16 bytes`,
        );
      return key;
    } catch (err) {
      if (err instanceof ConnectorError) throw err;
      if (apiStatus(err) !== 404) throw fail("reading the", secret, err);
    }
    try {
      const created = await api.createNamespacedSecret({
        namespace,
        body: {
          apiVersion: "v1",
          kind: "Secret",
          type: "Opaque",
          metadata: {
            name: secret,
            namespace,
            labels: { "app.kubernetes.io/managed-by": "connector-controller" },
            annotations: {
              "cynodeai.io/purpose": purpose,
            },
          },
          immutable: true,
          data: { [FINGERPRINT_KEY_FIELD]: randomBytes(32).toString("base64") },
        },
      });
      const key = decode(created.data);
      if (key) return key;
    } catch (err) {
      // 409: another replica created it first; read theirs.
      if (apiStatus(err) !== 409) throw fail("creating the", secret, err);
    }
  }
  throw new ConnectorError(
    "transient",
    "FingerprintKeyUnavailable",
    `could not read or create Secret ${namespace}/${secret}`,
  );
}
