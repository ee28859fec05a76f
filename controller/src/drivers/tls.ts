// TLS options for every driver: certificates are always verified, against the system roots
// plus the config's caBundle. `insecureSkipVerify: true` turns verification off only when
// it is set explicitly, and every call that does so logs a warning.
import { createHash } from "node:crypto";
import { isIP } from "node:net";
import * as tls from "node:tls";
import type { JsonObject } from "../api/types.ts";
import { bool, configError, str } from "./config.ts";
import type { DriverCall } from "./driver.ts";

function defaultRoots(): string[] {
  // Node >= 22.15: the roots Node trusts by default (bundled, plus system/extra when enabled).
  return typeof tls.getCACertificates === "function"
    ? tls.getCACertificates("default")
    : [...tls.rootCertificates];
}

// Parsing the ~270 default roots costs tens of milliseconds; the context built from them and
// one caBundle is kept (a handful of distinct bundles in practice; bounded anyway).
const contexts = new Map<string, tls.SecureContext>();
const MAX_CONTEXTS = 64;

function contextWith(caBundle: string, kind: string): tls.SecureContext {
  const key = createHash("sha256").update(caBundle).digest("hex");
  let ctx = contexts.get(key);
  if (!ctx) {
    try {
      ctx = tls.createSecureContext({ ca: [...defaultRoots(), caBundle], minVersion: "TLSv1.2" });
    } catch {
      throw configError(kind, "caBundle", "is not a valid PEM certificate bundle");
    }
    if (contexts.size >= MAX_CONTEXTS) contexts.delete(contexts.keys().next().value as string);
    contexts.set(key, ctx);
  }
  return ctx;
}

export function warnInsecure(call: DriverCall, what: string): void {
  call.log.warn(
    { driver: call.version.healthProbe.kind, type: call.typeName, target: call.target.display },
    `INSECURE: ${what} for ${call.typeName} at ${call.target.display}; never use this in production`,
  );
}

/** tls.connect options for the call's host, from config.caBundle and config.insecureSkipVerify. */
export function tlsOptions(call: DriverCall, config: JsonObject = call.config): tls.ConnectionOptions {
  const opts: tls.ConnectionOptions = { minVersion: "TLSv1.2" };
  const caBundle = str(config, "caBundle");
  if (caBundle !== undefined && caBundle.trim() !== "")
    opts.secureContext = contextWith(caBundle, call.version.healthProbe.kind);
  if (isIP(call.target.host) === 0) opts.servername = call.target.host;
  if (bool(config, "insecureSkipVerify") === true) {
    warnInsecure(call, "TLS certificate verification is disabled (insecureSkipVerify: true)");
    opts.rejectUnauthorized = false;
  } else {
    opts.rejectUnauthorized = true;
  }
  return opts;
}
