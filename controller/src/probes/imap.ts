// IMAP probe (imapflow): implicit TLS or STARTTLS, LOGIN, EXAMINE (a read-only SELECT) of the
// configured mailbox, LOGOUT.
//
// Security comes from the config: `security: tls | starttls | none` when present, else
// `tls: true` (the default) is implicit TLS, and `tls: false` is STARTTLS when
// `starttls: true`, plain IMAP when `starttls: false`, and otherwise STARTTLS whenever the
// server offers it.
import { ImapFlow, type ImapFlowOptions } from "imapflow";
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
  type ProbeTarget,
} from "./common.ts";
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

function target(config: JsonObject): ProbeTarget {
  const host = requireHost(config, "imap");
  const port = requirePort(int(config, "port"), imapSecurity(config) === "tls" ? 993 : 143, "imap");
  return { host, port, display: hostPort(host, port) };
}

async function run(ctx: ProbeContext): Promise<Record<string, never>> {
  const { config, credentials } = ctx.input;
  const user = credentials?.["username"];
  const pass = credentials?.["password"];
  if (!user || pass === undefined)
    throw new ProbeFailure(
      "permanent",
      "auth",
      `imap ${ctx.target.display}: credentials username and password are required`,
    );
  const mailbox = str(config, "mailbox") ?? "INBOX";
  const security = imapSecurity(config);
  if (security === "none") warnInsecure(ctx, "plain IMAP without TLS (credentials travel in clear text)");

  const options: ImapFlowOptions = {
    host: ctx.target.host,
    port: ctx.target.port,
    secure: security === "tls",
    auth: { user, pass },
    logger: false,
    disableAutoIdle: true,
    disableCompression: true,
    connectionTimeout: ctx.timeoutMs,
    greetingTimeout: ctx.timeoutMs,
    socketTimeout: ctx.timeoutMs,
    clientInfo: { name: "connector-controller-probe" },
  };
  if (security === "starttls") options.doSTARTTLS = true;
  if (security === "none") options.doSTARTTLS = false;
  if (security !== "none") options.tls = tlsOptions(ctx);
  const client = new ImapFlow(options);
  // A late socket error after close() must not become an unhandled 'error' event.
  client.on("error", () => undefined);
  const onAbort = () => client.close();
  ctx.signal.addEventListener("abort", onAbort, { once: true });
  try {
    await client.connect();
    try {
      await client.mailboxOpen(mailbox, { readOnly: true });
    } catch (err) {
      throw mailboxFailure(err, ctx, mailbox);
    }
    await client.logout();
    return {};
  } finally {
    ctx.signal.removeEventListener("abort", onAbort);
    client.close();
  }
}

function mailboxFailure(err: unknown, ctx: ProbeContext, mailbox: string): unknown {
  const e = err as { responseStatus?: string; serverResponseCode?: string; code?: string };
  if (e.responseStatus === "NO" || e.serverResponseCode === "NONEXISTENT") {
    const code = e.serverResponseCode ? ` (${e.serverResponseCode})` : "";
    return new ProbeFailure(
      "permanent",
      "mailbox",
      `imap ${ctx.target.display}: mailbox ${JSON.stringify(mailbox)} cannot be selected${code}`,
    );
  }
  return err;
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

function classify(err: unknown, ctx: ProbeContext): ProbeFailure | undefined {
  const e = err as {
    authenticationFailed?: boolean;
    serverResponseCode?: string;
    responseStatus?: string;
    tlsFailed?: boolean;
    message?: string;
  };
  const where = `imap ${ctx.target.display}`;
  if (e.authenticationFailed === true) {
    const code = e.serverResponseCode ? ` (${e.serverResponseCode})` : "";
    return new ProbeFailure("permanent", "auth", `${where}: authentication failed${code}`);
  }
  if (e.tlsFailed === true)
    return new ProbeFailure("transient", "tls", `${where}: the server does not support STARTTLS`);
  for (const code of errorCodes(err)) {
    const text = TRANSIENT_CODES[code];
    if (text !== undefined) return new ProbeFailure("transient", "connection", `${where}: ${text} (${code})`);
  }
  if (e.serverResponseCode === "UNAVAILABLE" || e.serverResponseCode === "LIMIT")
    return new ProbeFailure(
      "transient",
      "protocol",
      `${where}: server unavailable (${e.serverResponseCode})`,
    );
  if (e.responseStatus === "NO" || e.responseStatus === "BAD") {
    const code = e.serverResponseCode ? ` ${e.serverResponseCode}` : "";
    return new ProbeFailure(
      "permanent",
      "protocol",
      `${where}: the server refused the probe (${e.responseStatus}${code})`,
    );
  }
  return undefined;
}

export const imapProbe: ProbeKindImpl = { target, run, classify };
