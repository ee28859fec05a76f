// Reading a driver's config and input: typed accessors over JSON that has passed its schema,
// and the one shape of a value the driver cannot use (permanent InvalidConfig, or
// validation_error for an operation's input), always naming the field.
import { ConnectorError } from "../api/errors.ts";
import { joinPath } from "../api/problems.ts";
import type { JsonObject, JsonValue } from "../api/types.ts";

export function str(config: JsonObject, key: string): string | undefined {
  const v = config[key];
  return typeof v === "string" ? v : undefined;
}

export function bool(config: JsonObject, key: string): boolean | undefined {
  const v = config[key];
  return typeof v === "boolean" ? v : undefined;
}

export function int(config: JsonObject, key: string): number | undefined {
  const v = config[key];
  return typeof v === "number" && Number.isInteger(v) ? v : undefined;
}

export function obj(config: JsonObject, key: string): JsonObject | undefined {
  const v: JsonValue | undefined = config[key];
  return typeof v === "object" && v !== null && !Array.isArray(v) ? v : undefined;
}

/** The strings of an array field (other items ignored); [] when absent. */
export function strings(config: JsonObject, key: string): string[] {
  const v = config[key];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}

/** `spec.config.auth.username` for the field ["auth", "username"]. */
export function configPath(field: string | readonly string[]): string {
  const keys = typeof field === "string" ? [field] : field;
  return keys.reduce((path, key) => joinPath(path, key), "spec.config");
}

/** A config the driver could never use: permanent, and both the message and problems name the field. */
export function configError(where: string, field: string | readonly string[], what: string): ConnectorError {
  const path = configPath(field);
  return new ConnectorError("permanent", "InvalidConfig", `${where}: ${path} ${what}`, {
    problems: [{ path, message: what }],
  });
}

/** An operation's input the driver refuses (beyond what its inputSchema says). */
export function inputError(where: string, field: string, what: string): ConnectorError {
  const path = joinPath("input", field);
  return new ConnectorError("validation_error", "InvalidInput", `${where}: ${path} ${what}`, {
    problems: [{ path, message: what }],
  });
}

/**
 * input[field], which must match the pattern (validation_error) and be listed in the config's
 * listField (policy_denied with the given reason): a channel id, say, that the connector may use.
 */
export function listedInput(
  where: string,
  input: JsonObject,
  field: string,
  config: JsonObject,
  listField: string,
  pattern: RegExp,
  reason: string,
): string {
  const value = str(input, field);
  if (value === undefined || !pattern.test(value))
    throw inputError(where, field, `must match ${pattern.source}`);
  if (!strings(config, listField).includes(value)) {
    const path = joinPath("input", field);
    throw new ConnectorError(
      "policy_denied",
      reason,
      `${where}: ${path} is not one of ${configPath(listField)}`,
      { problems: [{ path, message: `must be one of ${configPath(listField)}` }] },
    );
  }
  return value;
}

/** A string field the driver cannot do without (InvalidConfig naming it when missing or empty). */
export function requireStr(config: JsonObject, key: string, kind: string): string {
  const value = str(config, key);
  if (value === undefined || value === "") throw configError(kind, key, "is missing");
  return value;
}

export function requireHost(config: JsonObject, kind: string): string {
  return requireStr(config, "host", kind);
}

export function requirePort(config: JsonObject, fallback: number, kind: string): number {
  const p = int(config, "port") ?? fallback;
  if (!Number.isInteger(p) || p < 1 || p > 65535)
    throw configError(kind, "port", `${String(p)} is not a valid port`);
  return p;
}

export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A URL for messages: no userinfo, no query, no fragment. */
export function displayUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}
