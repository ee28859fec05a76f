// TLS options for every probe: certificates are always verified, against the system roots
// plus the config's caBundle. `insecureSkipVerify: true` turns verification off only when
// it is set explicitly, and every probe that does so logs a warning.
import * as tls from "node:tls";
import { isIP } from "node:net";
import type { JsonObject } from "../api/types.ts";
import { createHash } from "node:crypto";
import { ProbeFailure, bool, str, type ProbeContext } from "./common.ts";

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
      throw new ProbeFailure(
        "permanent",
        "config",
        `${kind}: config.caBundle is not a valid PEM certificate bundle`,
      );
    }
    if (contexts.size >= MAX_CONTEXTS) contexts.delete(contexts.keys().next().value as string);
    contexts.set(key, ctx);
  }
  return ctx;
}

export function warnInsecure(ctx: ProbeContext, what: string): void {
  ctx.log.warn(
    { probe: ctx.version.healthProbe.kind, type: ctx.typeName, target: ctx.target.display },
    `INSECURE: ${what} for ${ctx.typeName} probe of ${ctx.target.display}; never use this in production`,
  );
}

/** tls.connect options for the probe's host, from config.caBundle and config.insecureSkipVerify. */
export function tlsOptions(ctx: ProbeContext, config: JsonObject = ctx.input.config): tls.ConnectionOptions {
  const opts: tls.ConnectionOptions = { minVersion: "TLSv1.2" };
  const caBundle = str(config, "caBundle");
  if (caBundle !== undefined && caBundle.trim() !== "")
    opts.secureContext = contextWith(caBundle, ctx.version.healthProbe.kind);
  if (isIP(ctx.target.host) === 0) opts.servername = ctx.target.host;
  if (bool(config, "insecureSkipVerify") === true) {
    warnInsecure(ctx, "TLS certificate verification is disabled (insecureSkipVerify: true)");
    opts.rejectUnauthorized = false;
  } else {
    opts.rejectUnauthorized = true;
  }
  return opts;
}
