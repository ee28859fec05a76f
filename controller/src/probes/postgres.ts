// PostgreSQL probe (pg): connect with the configured sslmode, SELECT 1, close.
//
// sslmode follows libpq, but stricter: verify-full (the default) checks the chain and the
// host name, verify-ca (and require with a caBundle) the chain only; require and prefer
// verify like verify-full unless config.insecureSkipVerify is set; allow and disable do not
// encrypt (prefer falls back to that when the server has no TLS). Anything weaker than
// verify-ca is logged as a warning on every probe. The CA is the system roots plus caBundle.
import { Socket } from "node:net";
import pg from "pg";
import type { ConnectionOptions } from "node:tls";
import type { JsonObject } from "../api/types.ts";
import {
  ProbeFailure,
  bool,
  errorCodes,
  errorMessage,
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

type SslMode = "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full";
const SSL_MODES: readonly string[] = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

function sslMode(config: JsonObject): SslMode {
  const m = str(config, "sslmode") ?? "verify-full";
  if (!SSL_MODES.includes(m))
    throw new ProbeFailure("permanent", "config", `postgres: unknown sslmode ${JSON.stringify(m)}`);
  return m as SslMode;
}

function target(config: JsonObject): ProbeTarget {
  const host = requireHost(config, "postgres");
  const port = requirePort(int(config, "port"), 5432, "postgres");
  return { host, port, display: hostPort(host, port) };
}

const NO_SSL = "The server does not support SSL connections";

function sslOptions(ctx: ProbeContext, mode: SslMode): ConnectionOptions | false {
  const config = ctx.input.config;
  const hasCa = str(config, "caBundle") !== undefined;
  if (mode === "disable" || mode === "allow") {
    warnInsecure(ctx, `PostgreSQL without TLS (sslmode=${mode})`);
    return false;
  }
  // libpq's prefer/require encrypt without verifying; here they skip verification only with
  // the explicit insecureSkipVerify flag, and otherwise verify like verify-full.
  const skip = bool(config, "insecureSkipVerify") === true;
  if (skip && (mode === "prefer" || (mode === "require" && !hasCa))) {
    warnInsecure(
      ctx,
      `PostgreSQL TLS without certificate verification (sslmode=${mode}, insecureSkipVerify)`,
    );
    return { rejectUnauthorized: false }; // insecureSkipVerify: explicit and logged
  }
  // insecureSkipVerify is not a postgres setting; sslmode says how much to verify.
  const opts = tlsOptions(ctx, { ...config, insecureSkipVerify: false });
  // verify-ca (and require with a CA, as libpq does): the chain, not the name.
  if (mode === "verify-ca" || (mode === "require" && hasCa)) opts.checkServerIdentity = () => undefined;
  return opts;
}

async function attempt(ctx: ProbeContext, ssl: ConnectionOptions | false): Promise<void> {
  const { config, credentials } = ctx.input;
  const connectTimeout = (int(config, "connectTimeoutSeconds") ?? 0) * 1000;
  // The probe owns the socket, so an abort can close it wherever pg is.
  const socket = new Socket();
  const client = new pg.Client({
    host: ctx.target.host,
    port: ctx.target.port,
    database: str(config, "database") ?? "postgres",
    user: credentials?.["username"],
    password: credentials?.["password"] ?? "",
    ssl,
    stream: () => socket,
    connectionTimeoutMillis: connectTimeout > 0 ? Math.min(connectTimeout, ctx.timeoutMs) : ctx.timeoutMs,
    // Client-side only: a statement_timeout startup parameter would be refused by PgBouncer.
    query_timeout: ctx.timeoutMs,
    application_name: str(config, "applicationName") ?? "cynode-connector-probe",
  });
  client.on("error", () => undefined);
  const onAbort = () => socket.destroy();
  ctx.signal.addEventListener("abort", onAbort, { once: true });
  try {
    await client.connect();
    await client.query("SELECT 1");
  } finally {
    ctx.signal.removeEventListener("abort", onAbort);
    await Promise.race([
      client.end().catch(() => undefined),
      new Promise((r) => setTimeout(r, 1000).unref()),
    ]);
    socket.destroy();
  }
}

async function run(ctx: ProbeContext): Promise<ProbeSuccess> {
  if (!ctx.input.credentials?.["username"])
    throw new ProbeFailure(
      "permanent",
      "auth",
      `postgres ${ctx.target.display}: the username credential is required`,
    );
  const mode = sslMode(ctx.input.config);
  const ssl = sslOptions(ctx, mode);
  try {
    await attempt(ctx, ssl);
  } catch (err) {
    // prefer: fall back to plain text when the server has no TLS, as libpq does.
    if (mode === "prefer" && errorMessage(err) === NO_SSL && !ctx.signal.aborted) {
      warnInsecure(ctx, "PostgreSQL without TLS (sslmode=prefer, and the server has no TLS)");
      await attempt(ctx, false);
      return {};
    }
    throw err;
  }
  return {};
}

/** SQLSTATE classes: 28 (invalid authorization) => auth; 08, 53, 57P0x => transient. */
function classify(err: unknown, ctx: ProbeContext): ProbeFailure | undefined {
  const where = `postgres ${ctx.target.display}`;
  const message = errorMessage(err);
  if (message === NO_SSL)
    return new ProbeFailure(
      "permanent",
      "tls",
      `${where}: the server does not support TLS (sslmode requires it)`,
    );
  if (message.includes("timeout") || message === "Connection terminated due to connection timeout")
    return new ProbeFailure("transient", "timeout", `${where}: timed out`);
  if (message.startsWith("Connection terminated"))
    return new ProbeFailure("transient", "connection", `${where}: connection closed by the server`);
  const sqlstate = errorCodes(err).find((c) => /^[0-9A-Z]{5}$/.test(c));
  if (sqlstate === undefined) {
    if (message.includes("password must be a string") || message.includes("SASL"))
      return new ProbeFailure(
        "permanent",
        "auth",
        `${where}: the server asked for a password the credentials do not hold`,
      );
    return undefined;
  }
  if (sqlstate.startsWith("28"))
    return new ProbeFailure("permanent", "auth", `${where}: authentication failed (SQLSTATE ${sqlstate})`);
  if (sqlstate === "3D000")
    return new ProbeFailure("permanent", "config", `${where}: database does not exist (SQLSTATE 3D000)`);
  if (sqlstate.startsWith("08") || sqlstate.startsWith("53") || sqlstate.startsWith("57P"))
    return new ProbeFailure("transient", "protocol", `${where}: server unavailable (SQLSTATE ${sqlstate})`);
  return new ProbeFailure("permanent", "protocol", `${where}: SELECT 1 failed (SQLSTATE ${sqlstate})`);
}

export const postgresProbe: ProbeKindImpl = { target, run, classify };
