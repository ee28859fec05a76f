// An IMAP session for one call (imapflow): implicit TLS or STARTTLS, LOGIN, the caller's work,
// LOGOUT; the socket is closed when the call's signal aborts and whatever happens. Also the
// IMAP reading of failures.
//
// Security comes from the config: `security: tls | starttls | none` when present, else
// `tls: true` (the default) is implicit TLS, and `tls: false` is STARTTLS when
// `starttls: true`, plain IMAP when `starttls: false`, and otherwise STARTTLS whenever the
// server offers it.
import { ImapFlow, type ImapFlowOptions, type MailboxObject } from "imapflow";
import { ConnectorError } from "../api/errors.ts";
import { AUTHENTICATION_FAILED } from "../api/model.ts";
import type { JsonObject } from "../api/types.ts";
import { bool, hostPort, requireHost, requirePort, str } from "./config.ts";
import type { DriverCall, Target } from "./driver.ts";
import { errorCodes, requireCredentials, where } from "./failures.ts";
import { tlsOptions, warnInsecure } from "./tls.ts";

type ImapSecurity = "tls" | "starttls" | "opportunistic" | "none";

export function imapSecurity(config: JsonObject): ImapSecurity {
  const security = str(config, "security");
  if (security === "tls" || security === "starttls" || security === "none") return security;
  if (bool(config, "tls") !== false) return "tls";
  const starttls = bool(config, "starttls");
  if (starttls === true) return "starttls";
  if (starttls === false) return "none";
  return "opportunistic";
}

export function imapTarget(config: JsonObject): Target {
  const host = requireHost(config, "imap");
  const port = requirePort(config, imapSecurity(config) === "tls" ? 993 : 143, "imap");
  return { host, port, display: hostPort(host, port) };
}

/** The connector's mailbox (config.mailbox, INBOX by default). */
export function configMailbox(call: DriverCall): string {
  return str(call.config, "mailbox") ?? "INBOX";
}

/** Logs in, runs fn, logs out; the connection is closed on abort and in every case. */
export async function withImapSession<T>(call: DriverCall, fn: (client: ImapFlow) => Promise<T>): Promise<T> {
  const { username, password } = requireCredentials(call, ["username", "password"]);
  const security = imapSecurity(call.config);
  if (security === "none") warnInsecure(call, "plain IMAP without TLS (credentials travel in clear text)");
  const options: ImapFlowOptions = {
    host: call.target.host,
    port: call.target.port,
    secure: security === "tls",
    auth: { user: username, pass: password },
    logger: false,
    disableAutoIdle: true,
    disableCompression: true,
    connectionTimeout: call.timeoutMs,
    greetingTimeout: call.timeoutMs,
    socketTimeout: call.timeoutMs,
    clientInfo: { name: "connector-controller" },
  };
  if (security === "starttls") options.doSTARTTLS = true;
  if (security === "none") options.doSTARTTLS = false;
  if (security !== "none") options.tls = tlsOptions(call);
  const client = new ImapFlow(options);
  // A late socket error after close() must not become an unhandled 'error' event.
  client.on("error", () => undefined);
  const onAbort = () => client.close();
  call.signal.addEventListener("abort", onAbort, { once: true });
  try {
    await client.connect();
    const result = await fn(client);
    await client.logout();
    return result;
  } finally {
    call.signal.removeEventListener("abort", onAbort);
    client.close();
  }
}

/** Selects a mailbox; one that cannot be selected is a permanent MailboxNotFound naming it. */
export async function openMailbox(
  call: DriverCall,
  client: ImapFlow,
  mailbox: string,
  readOnly: boolean,
): Promise<MailboxObject> {
  try {
    return await client.mailboxOpen(mailbox, { readOnly });
  } catch (err) {
    throw mailboxFailure(err, call, mailbox) ?? err;
  }
}

/** A NO (or NONEXISTENT/TRYCREATE) about a mailbox: it does not exist or may not be used. */
export function mailboxFailure(err: unknown, call: DriverCall, mailbox: string): ConnectorError | undefined {
  const e = err as { responseStatus?: string; serverResponseCode?: string };
  if (
    e.responseStatus !== "NO" &&
    e.serverResponseCode !== "NONEXISTENT" &&
    e.serverResponseCode !== "TRYCREATE"
  )
    return undefined;
  const code = e.serverResponseCode ? ` (${e.serverResponseCode})` : "";
  return new ConnectorError(
    "permanent",
    "MailboxNotFound",
    `${where(call)}: mailbox ${JSON.stringify(mailbox)} cannot be selected${code}`,
  );
}

const TRANSIENT_CODES: Record<string, string> = {
  CONNECT_TIMEOUT: "connection timed out",
  GREETING_TIMEOUT: "no greeting from the server",
  UPGRADE_TIMEOUT: "STARTTLS upgrade timed out",
  ETIMEOUT: "the server stopped answering",
  NoConnection: "connection closed by the server",
  EConnectionClosed: "connection closed by the server",
  ClosedAfterConnectText: "connection closed by the server right after connecting",
  ClosedAfterConnectTLS: "connection closed by the server right after the TLS handshake",
};

export function classifyImap(err: unknown, call: DriverCall): ConnectorError | undefined {
  const e = err as {
    authenticationFailed?: boolean;
    serverResponseCode?: string;
    responseStatus?: string;
    tlsFailed?: boolean;
  };
  const at = where(call);
  if (e.authenticationFailed === true) {
    const code = e.serverResponseCode ? ` (${e.serverResponseCode})` : "";
    return new ConnectorError("permanent", AUTHENTICATION_FAILED, `${at}: authentication failed${code}`);
  }
  if (e.tlsFailed === true)
    return new ConnectorError("transient", "TlsFailed", `${at}: the server does not support STARTTLS`);
  for (const code of errorCodes(err)) {
    const text = TRANSIENT_CODES[code];
    if (text !== undefined)
      return new ConnectorError("transient", "ConnectionFailed", `${at}: ${text} (${code})`);
  }
  if (e.serverResponseCode === "UNAVAILABLE" || e.serverResponseCode === "LIMIT")
    return new ConnectorError(
      "transient",
      "ProtocolError",
      `${at}: server unavailable (${e.serverResponseCode})`,
    );
  if (e.responseStatus === "NO" || e.responseStatus === "BAD") {
    const code = e.serverResponseCode ? ` ${e.serverResponseCode}` : "";
    return new ConnectorError(
      "permanent",
      "ProtocolError",
      `${at}: the server refused the command (${e.responseStatus}${code})`,
    );
  }
  return undefined;
}
