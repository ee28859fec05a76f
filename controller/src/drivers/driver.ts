// The contract between a connector type's protocol code and its two callers: the
// controller's health probe and the gateway's operations run the same driver, so what
// certification tests is what runs.
//
// A driver is plain protocol code. The runner (drivers/run.ts) does everything around it
// once for all types: the egress allowlist before anything is resolved or connected, the
// deadline and the caller's cancellation, classification of network and TLS failures, and
// scrubbing credentials out of every message.
import type { ConnectorError } from "../api/errors.ts";
import type { Logger } from "../api/logger.ts";
import type { JsonObject, JsonValue, TypeVersion } from "../api/types.ts";

/** Where a call will connect, computed from the config alone (nothing is resolved). */
export interface Target {
  /** The host exactly as it will be handed to the client library (checked against the allowlist). */
  host: string;
  port: number;
  /** How the target is named in messages: host:port, or a URL without userinfo and query. */
  display: string;
}

/** What a driver is given for one call. Credentials live only as long as the call. */
export interface DriverCall {
  typeName: string;
  version: TypeVersion;
  /** The instance's config: validated against the type's schema, defaults applied. */
  config: JsonObject;
  credentials: Record<string, string> | undefined;
  target: Target;
  /** Aborted at the deadline or when the caller goes away; the driver releases every socket then. */
  signal: AbortSignal;
  timeoutMs: number;
  log: Logger;
}

export interface ProviderReply {
  /** The provider's status code when the protocol has one (HTTP status, SMTP reply code). */
  providerStatusCode?: number;
}

export interface OperationResult extends ProviderReply {
  /** The result, before output validation, redaction and truncation (the gateway's job). */
  data: JsonValue;
  warnings?: string[];
  /** Identifiers of what the call changed at the provider (message ids, row counts), for receipts. */
  remoteChangeIds?: string[];
}

/** One operation: input has passed the operation's inputSchema. Throws a ConnectorError. */
export type OperationHandler = (input: JsonObject, call: DriverCall) => Promise<OperationResult>;

export interface Driver {
  /**
   * Where the driver will connect. Throws ConnectorError (permanent, InvalidConfig) whose
   * problems name the config field (`spec.config.baseUrl`), so validation can refuse a config
   * the driver could never use.
   */
  target(config: JsonObject, version: TypeVersion): Target;
  /** The health check: succeeds, or throws a ConnectorError (reason AuthenticationFailed when credentials were refused). */
  health(call: DriverCall): Promise<ProviderReply>;
  /** Every operation the type's catalog declares that may ever run (never the forbidden ones). */
  operations: Readonly<Record<string, OperationHandler>>;
  /**
   * Protocol-specific classification of a library error the shared network and TLS rules did
   * not recognise (they come first, so a refused connection reads the same for every type);
   * undefined leaves it a transient ProtocolError.
   */
  classify?(err: unknown, call: DriverCall): ConnectorError | undefined;
}
