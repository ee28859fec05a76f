// One PostgreSQL session for a call of the postgres type (pg): connect with the configured
// sslmode and the credentials, run the caller's work, close; and the reading of PostgreSQL's
// failures (SQLSTATE classes) shared by the health check and the operations.
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
import type { DriverCall, Target } from "./driver.ts";
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

export function postgresTarget(config: JsonObject): Target {
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

async function attempt<T>(
  call: DriverCall,
  ssl: ConnectionOptions | false,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
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
    return await fn(client);
  } finally {
    call.signal.removeEventListener("abort", onAbort);
    await Promise.race([
      client.end().catch(() => undefined),
      new Promise((r) => setTimeout(r, 1000).unref()),
    ]);
    socket.destroy();
  }
}

/** Runs fn on a connected session (closed afterwards, and on abort), TLS as config.sslmode says. */
export async function withPgSession<T>(call: DriverCall, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  requireCredentials(call, ["username"]);
  const mode = sslMode(call.config);
  const ssl = sslOptions(call, mode);
  try {
    return await attempt(call, ssl, fn);
  } catch (err) {
    // prefer: fall back to plain text when the server has no TLS, as libpq does (the refusal
    // comes during connect, before fn ran).
    if (mode === "prefer" && errorMessage(err) === NO_SSL && !call.signal.aborted) {
      warnInsecure(call, "PostgreSQL without TLS (sslmode=prefer, and the server has no TLS)");
      return await attempt(call, false, fn);
    }
    throw err;
  }
}

const MAX_SERVER_MESSAGE_CHARS = 300;

/** The server's message about a statement (not its DETAIL, which may quote row values), bounded. */
function serverSays(err: unknown, sqlstate: string): string {
  const text = errorMessage(err).replace(/\s+/g, " ").slice(0, MAX_SERVER_MESSAGE_CHARS);
  return `SQLSTATE ${sqlstate}: ${text}`;
}

/**
 * PostgreSQL's failures by SQLSTATE class: 28 auth; 3D000 the configured database; 08, 53,
 * 57P, 40 (serialization, deadlock) transient, 57014 (statement_timeout) a transient Timeout;
 * 25006 a write in a read-only transaction and 42501 a missing privilege are policy_denied; the
 * caller's statement (42 syntax and names, 22 data, 0A unsupported, multiple commands) is a
 * validation_error naming the server's message; 23 (constraints) permanent.
 */
export function classifyPostgres(err: unknown, call: DriverCall): ConnectorError | undefined {
  const at = where(call);
  const message = errorMessage(err);
  const sqlstate = errorCodes(err).find((c) => /^[0-9A-Z]{5}$/.test(c));
  if (sqlstate === undefined) {
    if (message === NO_SSL)
      return new ConnectorError(
        "permanent",
        "TlsFailed",
        `${at}: the server does not support TLS (sslmode requires it)`,
      );
    if (/timeout/i.test(message)) return new ConnectorError("transient", "Timeout", `${at}: timed out`);
    if (message.startsWith("Connection terminated"))
      return new ConnectorError("transient", "ConnectionFailed", `${at}: connection closed by the server`);
    if (message.includes("password must be a string") || message.includes("SASL"))
      return new ConnectorError(
        "permanent",
        AUTHENTICATION_FAILED,
        `${at}: the server asked for a password the credentials do not hold`,
      );
    return undefined;
  }
  const cls = sqlstate.slice(0, 2);
  if (cls === "28")
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
  if (sqlstate === "57014")
    return new ConnectorError(
      "transient",
      "Timeout",
      `${at}: statement canceled (SQLSTATE 57014: statement timeout)`,
    );
  if (cls === "08" || cls === "53" || sqlstate.startsWith("57P"))
    return new ConnectorError(
      "transient",
      "ProtocolError",
      `${at}: server unavailable (SQLSTATE ${sqlstate})`,
    );
  if (cls === "40")
    return new ConnectorError("transient", "SerializationFailure", `${at}: ${serverSays(err, sqlstate)}`);
  if (sqlstate === "25006")
    return new ConnectorError(
      "policy_denied",
      "ReadOnlyTransaction",
      `${at}: the statement writes, and this operation runs read-only (SQLSTATE 25006)`,
    );
  if (sqlstate === "42501")
    return new ConnectorError(
      "policy_denied",
      "InsufficientPrivilege",
      `${at}: ${serverSays(err, sqlstate)}`,
    );
  if (sqlstate === "42601" && message.includes("multiple commands"))
    return new ConnectorError("validation_error", "MultipleStatements", `${at}: one statement per call`, {
      problems: [{ path: "input.sql", message: "must be a single statement" }],
    });
  if (cls === "42" || cls === "22" || cls === "0A" || cls === "21" || cls === "2F" || cls === "34")
    return new ConnectorError("validation_error", "InvalidStatement", `${at}: ${serverSays(err, sqlstate)}`, {
      problems: [{ path: "input.sql", message: serverSays(err, sqlstate) }],
    });
  if (cls === "23")
    return new ConnectorError("permanent", "ConstraintViolation", `${at}: ${serverSays(err, sqlstate)}`);
  return new ConnectorError("permanent", "ProtocolError", `${at}: statement failed (SQLSTATE ${sqlstate})`);
}
