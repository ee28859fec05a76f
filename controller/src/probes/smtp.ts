// SMTP probe (nodemailer): EHLO, STARTTLS (or implicit TLS), AUTH, QUIT.
//
// It drives nodemailer's SMTPConnection, the building block of
// createTransport(...).verify(), directly: verify() gives no handle on its socket (so an
// abort could not close it) and passes without AUTH when the server does not advertise
// it, while this probe must prove the credentials.
//
// Security: v2 `security: starttls (default) | tls | none`; v1 `tls: true` is implicit TLS,
// `tls: false` upgrades with STARTTLS when the server offers it.
import SMTPConnection from "nodemailer/lib/smtp-connection";
import type { JsonObject } from "../api/types.ts";
import {
  ProbeFailure,
  bool,
  errorCodes,
  hostPort,
  int,
  requireHost,
  requirePort,
  str,
  type ProbeContext,
  type ProbeKindImpl,
  type ProbeSuccess,
  type ProbeTarget,
} from "./common.ts";
import { tlsOptions, warnInsecure } from "./tls.ts";

type SmtpSecurity = "tls" | "starttls" | "opportunistic" | "none";

export function smtpSecurity(config: JsonObject): SmtpSecurity {
  const security = str(config, "security");
  if (security === "tls" || security === "starttls" || security === "none") return security;
  const tls = bool(config, "tls");
  if (tls === true) return "tls";
  if (tls === false) return "opportunistic";
  return "starttls";
}

function target(config: JsonObject): ProbeTarget {
  const host = requireHost(config, "smtp");
  const security = smtpSecurity(config);
  const fallback = security === "tls" ? 465 : security === "opportunistic" ? 25 : 587;
  const port = requirePort(int(config, "port"), fallback, "smtp");
  return { host, port, display: hostPort(host, port) };
}

function step<T>(
  fn: (cb: (err: Error | null | undefined, value?: T) => void) => void,
): Promise<T | undefined> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));
}

async function run(ctx: ProbeContext): Promise<ProbeSuccess> {
  const { config, credentials } = ctx.input;
  const user = credentials?.["username"];
  const pass = credentials?.["password"];
  if (!user || pass === undefined)
    throw new ProbeFailure(
      "permanent",
      "auth",
      `smtp ${ctx.target.display}: credentials username and password are required`,
    );
  const security = smtpSecurity(config);
  if (security === "none") warnInsecure(ctx, "SMTP without TLS (credentials travel in clear text)");

  const heloName = str(config, "heloName");
  const conn = new SMTPConnection({
    host: ctx.target.host,
    port: ctx.target.port,
    secure: security === "tls",
    requireTLS: security === "starttls",
    ignoreTLS: security === "none",
    ...(heloName !== undefined ? { name: heloName } : {}),
    ...(security === "none" ? {} : { tls: tlsOptions(ctx) }),
    connectionTimeout: ctx.timeoutMs,
    greetingTimeout: ctx.timeoutMs,
    socketTimeout: ctx.timeoutMs,
    dnsTimeout: ctx.timeoutMs,
    socketCloseTimeout: 0,
    allowInternalNetworkInterfaces: true,
    logger: false,
  });
  // Errors arrive through the callbacks; a late one after close() is ignored.
  let lateError: Error | undefined;
  const failed = new Promise<never>((_, reject) =>
    conn.once("error", (err: Error) => {
      lateError = err;
      reject(err);
    }),
  );
  failed.catch(() => undefined);
  const ended = new Promise<void>((resolve) => conn.once("end", () => resolve()));
  const onAbort = () => conn.close();
  ctx.signal.addEventListener("abort", onAbort, { once: true });
  try {
    await Promise.race([step<void>((cb) => conn.connect((err) => cb(err))), failed]);
    if (!conn.allowsAuth)
      throw new ProbeFailure(
        "permanent",
        "protocol",
        `smtp ${ctx.target.display}: the server does not offer AUTH${conn.secure ? "" : " on this unencrypted connection"}`,
      );
    await Promise.race([step<boolean>((cb) => conn.login({ user, pass }, (err, ok) => cb(err, ok))), failed]);
    conn.quit();
    await Promise.race([ended, failed.catch(() => undefined)]);
    if (lateError && !conn.authenticated) throw lateError;
    return {};
  } finally {
    ctx.signal.removeEventListener("abort", onAbort);
    conn.close();
  }
}

function classify(err: unknown, ctx: ProbeContext): ProbeFailure | undefined {
  const e = err as { code?: string; responseCode?: number; command?: string; timeoutType?: string };
  const where = `smtp ${ctx.target.display}`;
  const reply = e.responseCode
    ? ` (${e.responseCode}${e.command ? ` after ${e.command.split(" ")[0]}` : ""})`
    : "";
  const providerStatusCode = e.responseCode || undefined;
  const extra = providerStatusCode ? { providerStatusCode } : {};
  const codes = errorCodes(err);
  if (codes.includes("EAUTH")) {
    if (e.responseCode !== undefined && e.responseCode >= 400 && e.responseCode < 500)
      return new ProbeFailure(
        "transient",
        "protocol",
        `${where}: authentication temporarily unavailable${reply}`,
        extra,
      );
    return new ProbeFailure("permanent", "auth", `${where}: authentication failed${reply}`, extra);
  }
  if (codes.includes("ETIMEDOUT"))
    return new ProbeFailure(
      "transient",
      "timeout",
      `${where}: timed out (${e.timeoutType ?? "ETIMEDOUT"})`,
      extra,
    );
  if (codes.includes("ETLS"))
    return new ProbeFailure("transient", "tls", `${where}: TLS failed${reply}`, extra);
  if (codes.includes("EDNS"))
    return new ProbeFailure("transient", "dns", `${where}: host name could not be resolved`);
  if (codes.includes("ECONNECTION") || codes.includes("ESOCKET"))
    return new ProbeFailure("transient", "connection", `${where}: connection failed${reply}`, extra);
  if (e.responseCode !== undefined) {
    const transient = e.responseCode >= 400 && e.responseCode < 500;
    return new ProbeFailure(
      transient ? "transient" : "permanent",
      "protocol",
      `${where}: server replied${reply}`,
      extra,
    );
  }
  return undefined;
}

export const smtpProbe: ProbeKindImpl = { target, run, classify };
