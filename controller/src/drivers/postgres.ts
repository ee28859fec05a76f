// The postgres type (pg): the health check connects with the configured sslmode, runs
// SELECT 1 and closes.
//
// sslmode follows libpq, but stricter: verify-full (the default) checks the chain and the
// host name, verify-ca (and require with a caBundle) the chain only; require and prefer
// verify like verify-full unless config.insecureSkipVerify is set; allow and disable do not
// encrypt (prefer falls back to that when the server has no TLS). Anything weaker than
// verify-ca is logged as a warning on every call. The CA is the system roots plus caBundle.
import { Socket } from "node:net";
import type { ConnectionOptions } from "node:tls";
import pg from "pg";
import { ConnectorError } from "../api/errors.ts";
import { AUTHENTICATION_FAILED } from "../api/model.ts";
import type { JsonObject } from "../api/types.ts";
import { bool, configError, hostPort, int, requireHost, requirePort, str } from "./config.ts";
import type { Driver, DriverCall, ProviderReply, Target } from "./driver.ts";
import { errorCodes, errorMessage, requireCredentials, where } from "./failures.ts";
import { tlsOptions, warnInsecure } from "./tls.ts";

type SslMode = "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full";
const SSL_MODES: readonly string[] = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

function sslMode(config: JsonObject): SslMode {
  const m = str(config, "sslmode") ?? "verify-full";
  if (!SSL_MODES.includes(m))
    throw configError("postgres", "sslmode", `${JSON.stringify(m)} is not a known sslmode`);
  return m as SslMode;
}

function target(config: JsonObject): Target {
  const host = requireHost(config, "postgres");
  const port = requirePort(config, 5432, "postgres");
  return { host, port, display: hostPort(host, port) };
}

const NO_SSL = "The server does not support SSL connections";

function sslOptions(call: DriverCall, mode: SslMode): ConnectionOptions | false {
  const config = call.config;
  const hasCa = str(config, "caBundle") !== undefined;
  if (mode === "disable" || mode === "allow") {
    warnInsecure(call, `PostgreSQL without TLS (sslmode=${mode})`);
    return false;
  }
  // libpq's prefer/require encrypt without verifying; here they skip verification only with
  // the explicit insecureSkipVerify flag, and otherwise verify like verify-full.
  const skip = bool(config, "insecureSkipVerify") === true;
  if (skip && (mode === "prefer" || (mode === "require" && !hasCa))) {
    warnInsecure(
      call,
      `PostgreSQL TLS without certificate verification (sslmode=${mode}, insecureSkipVerify)`,
    );
    return { rejectUnauthorized: false }; // insecureSkipVerify: explicit and logged
  }
  // insecureSkipVerify is not a postgres setting; sslmode says how much to verify.
  const opts = tlsOptions(call, { ...config, insecureSkipVerify: false });
  // verify-ca (and require with a CA, as libpq does): the chain, not the name.
  if (mode === "verify-ca" || (mode === "require" && hasCa)) opts.checkServerIdentity = () => undefined;
  return opts;
}

async function attempt(call: DriverCall, ssl: ConnectionOptions | false): Promise<void> {
  const { config, credentials } = call;
  const connectTimeout = (int(config, "connectTimeoutSeconds") ?? 0) * 1000;
  // The driver owns the socket, so an abort can close it wherever pg is.
  const socket = new Socket();
  const client = new pg.Client({
    host: call.target.host,
    port: call.target.port,
    database: str(config, "database") ?? "postgres",
    user: credentials?.["username"],
    password: credentials?.["password"] ?? "",
    ssl,
    stream: () => socket,
    connectionTimeoutMillis: connectTimeout > 0 ? Math.min(connectTimeout, call.timeoutMs) : call.timeoutMs,
    // Client-side only: a statement_timeout startup parameter would be refused by PgBouncer.
    query_timeout: call.timeoutMs,
    application_name: str(config, "applicationName") ?? "cynode-connector-probe",
  });
  client.on("error", () => undefined);
  const onAbort = () => socket.destroy();
  call.signal.addEventListener("abort", onAbort, { once: true });
  try {
    await client.connect();
    await client.query("SELECT 1");
  } finally {
    call.signal.removeEventListener("abort", onAbort);
    await Promise.race([
      client.end().catch(() => undefined),
      new Promise((r) => setTimeout(r, 1000).unref()),
    ]);
    socket.destroy();
  }
}

async function health(call: DriverCall): Promise<ProviderReply> {
  requireCredentials(call, ["username"]);
  const mode = sslMode(call.config);
  const ssl = sslOptions(call, mode);
  try {
    await attempt(call, ssl);
  } catch (err) {
    // prefer: fall back to plain text when the server has no TLS, as libpq does.
    if (mode === "prefer" && errorMessage(err) === NO_SSL && !call.signal.aborted) {
      warnInsecure(call, "PostgreSQL without TLS (sslmode=prefer, and the server has no TLS)");
      await attempt(call, false);
      return {};
    }
    throw err;
  }
  return {};
}

/** SQLSTATE classes: 28 (invalid authorization) => auth; 08, 53, 57P0x => transient. */
function classify(err: unknown, call: DriverCall): ConnectorError | undefined {
  const at = where(call);
  const message = errorMessage(err);
  if (message === NO_SSL)
    return new ConnectorError(
      "permanent",
      "TlsFailed",
      `${at}: the server does not support TLS (sslmode requires it)`,
    );
  if (message.includes("timeout") || message === "Connection terminated due to connection timeout")
    return new ConnectorError("transient", "Timeout", `${at}: timed out`);
  if (message.startsWith("Connection terminated"))
    return new ConnectorError("transient", "ConnectionFailed", `${at}: connection closed by the server`);
  const sqlstate = errorCodes(err).find((c) => /^[0-9A-Z]{5}$/.test(c));
  if (sqlstate === undefined) {
    if (message.includes("password must be a string") || message.includes("SASL"))
      return new ConnectorError(
        "permanent",
        AUTHENTICATION_FAILED,
        `${at}: the server asked for a password the credentials do not hold`,
      );
    return undefined;
  }
  if (sqlstate.startsWith("28"))
    return new ConnectorError(
      "permanent",
      AUTHENTICATION_FAILED,
      `${at}: authentication failed (SQLSTATE ${sqlstate})`,
    );
  if (sqlstate === "3D000")
    return new ConnectorError(
      "permanent",
      "InvalidConfig",
      `${at}: database does not exist (SQLSTATE 3D000)`,
      {
        problems: [{ path: "spec.config.database", message: "does not exist" }],
      },
    );
  if (sqlstate.startsWith("08") || sqlstate.startsWith("53") || sqlstate.startsWith("57P"))
    return new ConnectorError(
      "transient",
      "ProtocolError",
      `${at}: server unavailable (SQLSTATE ${sqlstate})`,
    );
  return new ConnectorError("permanent", "ProtocolError", `${at}: SELECT 1 failed (SQLSTATE ${sqlstate})`);
}

export const postgresDriver: Driver = { target, health, operations: {}, classify };
