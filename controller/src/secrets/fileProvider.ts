// The `file` SecretProvider, for local development only: a secret is the JSON object in
// `<directory>/<namespace>/<name>.json`, and a symlink may not lead out of the namespace's
// own directory. No versions, no identity: the path guard is the only wall.
import { readFile, realpath } from "node:fs/promises";
import * as nodePath from "node:path";
import type { FileProviderSpec } from "../api/types.ts";
import { ConnectorError } from "../api/errors.ts";
import type { ProviderCheck } from "../reconcile/ports.ts";

/** Reads `<directory>/<rel>.json`, where `rel` came from the path guard and starts with `namespace/`. */
export async function readSecretFile(
  directory: string,
  namespace: string,
  rel: string,
  providerName: string,
): Promise<Record<string, unknown>> {
  const where = `${providerName}:${rel}`;
  let root: string;
  try {
    root = await realpath(directory);
  } catch {
    throw new ConnectorError(
      "transient",
      "VaultUnavailable",
      `SecretProvider ${providerName}: directory is not readable`,
    );
  }
  let real: string;
  try {
    real = await realpath(nodePath.join(root, `${rel}.json`));
  } catch {
    throw new ConnectorError("permanent", "SecretNotFound", `the secret ${where} does not exist`);
  }
  if (!real.startsWith(nodePath.join(root, namespace) + nodePath.sep))
    throw new ConnectorError(
      "validation_error",
      "InvalidSecretRef",
      `the secret ${where} leads outside the namespace's directory of the provider`,
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(real, "utf8"));
  } catch {
    throw new ConnectorError("permanent", "SecretUnreadable", `the secret ${where} is not a JSON file`);
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed))
    throw new ConnectorError("permanent", "SecretUnreadable", `the secret ${where} is not a JSON object`);
  return parsed as Record<string, unknown>;
}

/** Ready when the directory can be read. */
export async function checkFileProvider(spec: FileProviderSpec): Promise<ProviderCheck> {
  try {
    await realpath(spec.directory);
    return { ready: true, reason: "Ready", message: "file provider (local development only)" };
  } catch {
    return { ready: false, reason: "Unreachable", message: `directory ${spec.directory} is not readable` };
  }
}
