// A secret's values as a connector type wants them: its keys mapped to the type's
// credential key names, the required ones present, and a keyed fingerprint to notice a
// rotation without keeping the values.
import { createHmac } from "node:crypto";
import { canonicalJson } from "../api/canonical.ts";
import { ConnectorError } from "../api/errors.ts";

/** A KV value as a string: strings as they are, anything else as JSON. */
function asString(v: unknown): string {
  if (typeof v === "string") return v;
  if (v === null || v === undefined) return "";
  return JSON.stringify(v);
}

/**
 * The secret's values under the type's credential key names: `keys` maps credential key =>
 * key in the secret; keys of the secret not mapped keep their own names.
 */
export function mapSecretKeys(
  data: Record<string, unknown>,
  keys: Record<string, string> | undefined,
  where: string,
): Record<string, string> {
  const values: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) values[k] = asString(v);
  for (const [credKey, secretKey] of Object.entries(keys ?? {})) {
    if (!Object.prototype.hasOwnProperty.call(data, secretKey))
      throw new ConnectorError(
        "permanent",
        "SecretKeyMissing",
        `the secret ${where} has no key ${JSON.stringify(secretKey)} ` +
          `(spec.credentials.secretRef.keys.${credKey})`,
      );
    values[credKey] = asString(data[secretKey]);
  }
  return values;
}

/** Throws permanent/SecretKeyMissing naming the first of `required` that `values` lacks. */
export function requireKeys(values: Record<string, string>, required: readonly string[], where = ""): void {
  const missing = required.filter((k) => !Object.prototype.hasOwnProperty.call(values, k));
  if (missing.length > 0)
    throw new ConnectorError(
      "permanent",
      "SecretKeyMissing",
      `the secret${where ? ` ${where}` : ""} has no key${missing.length > 1 ? "s" : ""} ${missing
        .map((k) => JSON.stringify(k))
        .join(", ")} required by the connector type (map them with spec.credentials.secretRef.keys)`,
    );
}

/**
 * HMAC-SHA256 over the canonical JSON of the values, with the controller's key: an unkeyed
 * hash of a short password could be reversed by guessing.
 */
export function fingerprint(key: Buffer, values: Record<string, string>): string {
  return `hmac-sha256:${createHmac("sha256", key).update(canonicalJson(values)).digest("hex")}`;
}
