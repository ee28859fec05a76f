// TLS options for every probe: certificates are always verified, against the system roots
// plus the config's caBundle. `insecureSkipVerify: true` turns verification off only when
// it is set explicitly, and every probe that does so logs a warning.
import * as tls from "node:tls";
import { isIP } from "node:net";
import type { JsonObject } from "../api/types.ts";
import { bool, str, type ProbeContext } from "./common.ts";

function defaultRoots(): string[] {
  // Node >= 22.15: the roots Node trusts by default (bundled, plus system/extra when enabled).
  return typeof tls.getCACertificates === "function"
    ? tls.getCACertificates("default")
    : [...tls.rootCertificates];
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
  if (caBundle !== undefined && caBundle.trim() !== "") opts.ca = [...defaultRoots(), caBundle];
  if (isIP(ctx.target.host) === 0) opts.servername = ctx.target.host;
  if (bool(config, "insecureSkipVerify") === true) {
    warnInsecure(ctx, "TLS certificate verification is disabled (insecureSkipVerify: true)");
    opts.rejectUnauthorized = false;
  } else {
    opts.rejectUnauthorized = true;
  }
  return opts;
}
