// The key of the secret fingerprints (HMAC-SHA256): 32 random bytes in the Secret
// connector-controller-fingerprint-key of the controller's namespace, created once. Every
// replica reads the same key, so fingerprints agree across restarts and leaders.
import { randomBytes } from "node:crypto";
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { ConnectorError, errorChainMessage } from "../api/errors.ts";
import { apiStatus } from "./apiErrors.ts";

export const FINGERPRINT_KEY_SECRET = "connector-controller-fingerprint-key";
export const FINGERPRINT_KEY_FIELD = "key";

function decode(data: Record<string, string> | undefined): Buffer | undefined {
  const b64 = data?.[FINGERPRINT_KEY_FIELD];
  if (!b64) return undefined;
  const key = Buffer.from(b64, "base64");
  return key.length >= 16 ? key : undefined;
}

function fail(what: string, err: unknown): ConnectorError {
  const code = apiStatus(err);
  return new ConnectorError(
    "transient",
    "FingerprintKeyUnavailable",
    `${what} Secret ${FINGERPRINT_KEY_SECRET}${code ? `: ${code}` : `: ${errorChainMessage(err)}`}`,
    code ? { providerStatusCode: code } : {},
  );
}

/**
 * Reads the fingerprint key, creating the Secret with a fresh random key when it does not
 * exist. Two replicas racing to create it: the loser gets 409 and reads the winner's key.
 */
export async function loadOrCreateFingerprintKey(
  kc: KubeConfig,
  namespace: string,
  opts: { attempts?: number } = {},
): Promise<Buffer> {
  const api = kc.makeApiClient(CoreV1Api);
  const attempts = opts.attempts ?? 5;
  for (let i = 0; i < attempts; i++) {
    try {
      const s = await api.readNamespacedSecret({ name: FINGERPRINT_KEY_SECRET, namespace });
      const key = decode(s.data);
      if (!key)
        throw new ConnectorError(
          "permanent",
          "FingerprintKeyInvalid",
          `Secret ${namespace}/${FINGERPRINT_KEY_SECRET} has no key "${FINGERPRINT_KEY_FIELD}" of at least 16 bytes`,
        );
      return key;
    } catch (err) {
      if (err instanceof ConnectorError) throw err;
      if (apiStatus(err) !== 404) throw fail("reading the", err);
    }
    try {
      const created = await api.createNamespacedSecret({
        namespace,
        body: {
          apiVersion: "v1",
          kind: "Secret",
          type: "Opaque",
          metadata: {
            name: FINGERPRINT_KEY_SECRET,
            namespace,
            labels: { "app.kubernetes.io/managed-by": "connector-controller" },
            annotations: {
              "cynodeai.io/purpose":
                "HMAC key of secret fingerprints; deleting it makes every fingerprint change once",
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
      if (apiStatus(err) !== 409) throw fail("creating the", err);
    }
  }
  throw new ConnectorError(
    "transient",
    "FingerprintKeyUnavailable",
    `could not read or create Secret ${namespace}/${FINGERPRINT_KEY_SECRET}`,
  );
}
