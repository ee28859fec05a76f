// An SMTP session for one call (nodemailer's SMTPConnection): EHLO, STARTTLS (or implicit
// TLS), AUTH, the caller's work, QUIT; the socket is closed when the call's signal aborts and
// whatever happens. Also the SMTP reading of failures.
//
// SMTPConnection is driven directly rather than through createTransport(): a transport gives
// no handle on its socket (so an abort could not close it), and its verify() passes without
// AUTH when the server does not advertise it, while this driver must prove the credentials.
//
// Security: v2 `security: starttls (default) | tls | none`; v1 `tls: true` is implicit TLS,
// `tls: false` upgrades with STARTTLS when the server offers it.
import SMTPConnection from "nodemailer/lib/smtp-connection";
import { ConnectorError } from "../api/errors.ts";
import { AUTHENTICATION_FAILED } from "../api/model.ts";
import type { JsonObject } from "../api/types.ts";
import { bool, hostPort, requireHost, requirePort, str } from "./config.ts";
import type { DriverCall, Target } from "./driver.ts";
import { errorCodes, requireCredentials, where } from "./failures.ts";
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

export function smtpTarget(config: JsonObject): Target {
  const host = requireHost(config, "smtp");
  const security = smtpSecurity(config);
  const fallback = security === "tls" ? 465 : security === "opportunistic" ? 25 : 587;
  const port = requirePort(config, fallback, "smtp");
  return { host, port, display: hostPort(host, port) };
}

/** A node-style callback step as a promise. */
export function step<T>(
  fn: (cb: (err: Error | null | undefined, value?: T) => void) => void,
): Promise<T | undefined> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));
}

/** What a session's work gets: the authenticated connection, and `run` to race a step against its errors. */
export interface SmtpSession {
  conn: SMTPConnection;
  run<T>(stepPromise: Promise<T>): Promise<T>;
}

/** Connects, authenticates, runs fn, quits; the connection is closed on abort and in every case. */
export async function withSmtpSession<T>(
  call: DriverCall,
  fn: (session: SmtpSession) => Promise<T>,
): Promise<T> {
  const { username, password } = requireCredentials(call, ["username", "password"]);
  const security = smtpSecurity(call.config);
  if (security === "none") warnInsecure(call, "SMTP without TLS (credentials travel in clear text)");
  const heloName = str(call.config, "heloName");
  const conn = new SMTPConnection({
    host: call.target.host,
    port: call.target.port,
    secure: security === "tls",
    requireTLS: security === "starttls",
    ignoreTLS: security === "none",
    ...(heloName !== undefined ? { name: heloName } : {}),
    ...(security === "none" ? {} : { tls: tlsOptions(call) }),
    connectionTimeout: call.timeoutMs,
    greetingTimeout: call.timeoutMs,
    socketTimeout: call.timeoutMs,
    dnsTimeout: call.timeoutMs,
    socketCloseTimeout: 0,
    allowInternalNetworkInterfaces: true,
    logger: false,
  });
  // Errors arrive through the callbacks and the 'error' event; a late one after close() is ignored.
  let lateError: Error | undefined;
  const failed = new Promise<never>((_, reject) =>
    conn.once("error", (err: Error) => {
      lateError = err;
      reject(err);
    }),
  );
  failed.catch(() => undefined);
  const run = <S>(p: Promise<S>) => Promise.race([p, failed]);
  const ended = new Promise<void>((resolve) => conn.once("end", () => resolve()));
  const onAbort = () => conn.close();
  call.signal.addEventListener("abort", onAbort, { once: true });
  try {
    await run(step<void>((cb) => conn.connect((err) => cb(err))));
    if (!conn.allowsAuth)
      throw new ConnectorError(
        "permanent",
        "ProtocolError",
        `${where(call)}: the server does not offer AUTH${conn.secure ? "" : " on this unencrypted connection"}`,
      );
    await run(
      step<boolean>((cb) => conn.login({ user: username, pass: password }, (err, ok) => cb(err, ok))),
    );
    const result = await fn({ conn, run });
    conn.quit();
    await Promise.race([ended, failed.catch(() => undefined)]);
    if (lateError && !conn.authenticated) throw lateError;
    return result;
  } finally {
    call.signal.removeEventListener("abort", onAbort);
    conn.close();
  }
}

export function classifySmtp(err: unknown, call: DriverCall): ConnectorError | undefined {
  const e = err as { code?: string; responseCode?: number; command?: string; timeoutType?: string };
  const at = where(call);
  const reply = e.responseCode
    ? ` (${e.responseCode}${e.command ? ` after ${e.command.split(" ")[0]}` : ""})`
    : "";
  const providerStatusCode = e.responseCode || undefined;
  const extra = providerStatusCode ? { providerStatusCode } : {};
  const codes = errorCodes(err);
  const temporary = e.responseCode !== undefined && e.responseCode >= 400 && e.responseCode < 500;
  if (codes.includes("EAUTH")) {
    if (temporary)
      return new ConnectorError(
        "transient",
        "ProtocolError",
        `${at}: authentication temporarily unavailable${reply}`,
        extra,
      );
    return new ConnectorError(
      "permanent",
      AUTHENTICATION_FAILED,
      `${at}: authentication failed${reply}`,
      extra,
    );
  }
  if (codes.includes("ETIMEDOUT"))
    return new ConnectorError(
      "transient",
      "Timeout",
      `${at}: timed out (${e.timeoutType ?? "ETIMEDOUT"})`,
      extra,
    );
  if (codes.includes("ETLS"))
    return new ConnectorError("transient", "TlsFailed", `${at}: TLS failed${reply}`, extra);
  if (codes.includes("EDNS"))
    return new ConnectorError("transient", "DnsFailed", `${at}: host name could not be resolved`);
  if (codes.includes("ECONNECTION") || codes.includes("ESOCKET"))
    return new ConnectorError("transient", "ConnectionFailed", `${at}: connection failed${reply}`, extra);
  if (codes.includes("EENVELOPE"))
    return new ConnectorError(
      temporary ? "transient" : "permanent",
      "EnvelopeRejected",
      `${at}: the server refused the sender or every recipient${reply}`,
      extra,
    );
  if (e.responseCode !== undefined)
    return new ConnectorError(
      temporary ? "transient" : "permanent",
      "ProtocolError",
      `${at}: server replied${reply}`,
      extra,
    );
  return undefined;
}
