// The one runner around every driver call, the controller's health check and the gateway's
// operations alike. For each call: the driver for the type version's healthProbe.kind; the
// target from the config (a config the driver cannot use is permanent InvalidConfig naming
// the field); the egress allowlist before anything is resolved or connected (policy_denied
// EgressDenied); one deadline combined with the caller's signal, whose abort makes the driver
// close its sockets; network and TLS failures classified once; credential values scrubbed
// from every message and result that leaves.
import { ConnectorError, classify } from "../api/errors.ts";
import type { Logger } from "../api/logger.ts";
import type { ProbeInput, ProbeResult } from "../api/model.ts";
import { quote, type Problem } from "../api/problems.ts";
import type { ConnectorType, JsonObject, ProbeKind, TypeVersion } from "../api/types.ts";
import { discordDriver } from "./discord.ts";
import type { Driver, DriverCall, OperationResult, Target } from "./driver.ts";
import { egressDeniedMessage, hostAllowed } from "./egress.ts";
import { classifyNetwork, errorMessage, errorName, scrub, scrubError, scrubJson } from "./failures.ts";
import { httpDriver } from "./http.ts";
import { imapDriver } from "./imap.ts";
import { mattermostDriver } from "./mattermost.ts";
import { postgresDriver } from "./postgres.ts";
import { smtpDriver } from "./smtp.ts";

export const DRIVERS: Readonly<Partial<Record<ProbeKind, Driver>>> = {
  imap: imapDriver,
  smtp: smtpDriver,
  http: httpDriver,
  postgres: postgresDriver,
  mattermost: mattermostDriver,
  discord: discordDriver,
};

export const DEFAULT_TIMEOUT_MS = 10_000;

/** One connector as a call sees it: its type and version, config, credentials, deadline and the caller's signal. */
export type ConnectorCall = ProbeInput;

export function typeVersionOf(type: ConnectorType, version: number): TypeVersion | undefined {
  return type.spec.versions.find((v) => v.version === version);
}

interface Resolved {
  version: TypeVersion;
  driver: Driver;
}

function resolve(connector: ConnectorCall): Resolved | undefined {
  const version = typeVersionOf(connector.type, connector.typeVersion);
  const kind = version?.healthProbe.kind;
  const driver = kind !== undefined && Object.hasOwn(DRIVERS, kind) ? DRIVERS[kind] : undefined;
  return version && driver ? { version, driver } : undefined;
}

/**
 * What the type's driver would refuse in this config as a permanent configuration error (a
 * base URL without a host, an unusable caBundle), each naming its field: validation refuses
 * it at once rather than letting every probe fail. [] when the driver takes it (or there is none).
 */
export function configProblems(type: ConnectorType, version: TypeVersion, config: JsonObject): Problem[] {
  const kind = version.healthProbe.kind;
  const driver = Object.hasOwn(DRIVERS, kind) ? DRIVERS[kind] : undefined;
  if (!driver) return [];
  try {
    driver.target(config, version);
    return [];
  } catch (err) {
    if (!(err instanceof ConnectorError) || err.reason !== "InvalidConfig") return [];
    return err.problems.length ? err.problems : [{ path: "spec.config", message: err.message }];
  }
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 10) / 10;
}

/** The health check as a finding; never throws. */
export async function runHealth(connector: ConnectorCall, log: Logger): Promise<ProbeResult> {
  const started = performance.now();
  const found = resolve(connector);
  if (!found) {
    const error = new ConnectorError(
      "permanent",
      "NoHealthCheck",
      `type ${connector.type.metadata.name} version ${connector.typeVersion} has no health check`,
    );
    return { ok: false, latencyMs: elapsed(started), error };
  }
  try {
    const reply = await invoke(found, connector, log, "health check", connector.timeoutMs, (call) =>
      found.driver.health(call),
    );
    const latencyMs = elapsed(started);
    return {
      ok: true,
      latencyMs,
      ...(reply.providerStatusCode !== undefined ? { providerStatusCode: reply.providerStatusCode } : {}),
    };
  } catch (err) {
    return { ok: false, latencyMs: elapsed(started), error: classify(err) };
  }
}

/**
 * One operation the type version declares, with input that has passed its inputSchema.
 * Throws a ConnectorError: a forbidden (class C) operation never runs, whatever the driver has.
 */
export async function runOperation(
  name: string,
  input: JsonObject,
  connector: ConnectorCall,
  log: Logger,
): Promise<OperationResult> {
  const typeName = connector.type.metadata.name;
  const found = resolve(connector);
  if (!found)
    throw new ConnectorError(
      "permanent",
      "NoDriver",
      `type ${typeName} version ${connector.typeVersion} has no driver`,
    );
  const operation = found.version.operations.find((o) => o.name === name);
  if (!operation)
    throw new ConnectorError(
      "validation_error",
      "UnknownOperation",
      `type ${typeName} version ${connector.typeVersion} declares no operation ${quote(name)}`,
    );
  if (operation.class === "forbidden")
    throw new ConnectorError(
      "policy_denied",
      "OperationForbidden",
      `operation ${name} of type ${typeName} is forbidden and never runs`,
    );
  const handler = Object.hasOwn(found.driver.operations, name) ? found.driver.operations[name] : undefined;
  if (!handler)
    throw new ConnectorError(
      "permanent",
      "OperationNotImplemented",
      `the ${typeName} driver does not implement operation ${name}`,
    );
  const timeoutMs = Math.min(validTimeout(connector.timeoutMs), operation.maxTimeoutMs);
  const result = await invoke(found, connector, log, name, timeoutMs, (call) => handler(input, call));
  const credentials = connector.credentials;
  return {
    ...result,
    data: scrubJson(result.data, credentials),
    ...(result.warnings ? { warnings: result.warnings.map((w) => scrub(w, credentials)) } : {}),
    ...(result.remoteChangeIds
      ? { remoteChangeIds: result.remoteChangeIds.map((id) => scrub(id, credentials)) }
      : {}),
  };
}

/** createProber({ log }).probe(input): the controller's port; undefined when the type has no driver. */
export function createProber(opts: { log: Logger }): {
  probe(input: ProbeInput): Promise<ProbeResult> | undefined;
} {
  return { probe: (input) => (resolve(input) ? runHealth(input, opts.log) : undefined) };
}

function validTimeout(ms: number): number {
  return Number.isFinite(ms) && ms > 0 ? Math.floor(ms) : DEFAULT_TIMEOUT_MS;
}

/** Runs fn under the target, egress and deadline rules; throws a scrubbed ConnectorError. */
async function invoke<T>(
  { version, driver }: Resolved,
  connector: ConnectorCall,
  log: Logger,
  what: string,
  requestedTimeoutMs: number,
  fn: (call: DriverCall) => Promise<T>,
): Promise<T> {
  const kind = version.healthProbe.kind;
  const typeName = connector.type.metadata.name;
  const credentials = connector.credentials;
  let target: Target;
  try {
    target = driver.target(connector.config ?? {}, version);
  } catch (err) {
    const error =
      err instanceof ConnectorError
        ? err
        : new ConnectorError("permanent", "InvalidConfig", `${kind}: ${errorMessage(err)}`);
    throw scrubError(error, credentials);
  }

  // Egress first: nothing is resolved or connected for a host outside the allowlist.
  if (!hostAllowed(target.host, version.egressAllowlist)) {
    log.warn(
      { driver: kind, type: typeName, host: target.host, call: what },
      "refused: host not in the egress allowlist",
    );
    throw new ConnectorError("policy_denied", "EgressDenied", egressDeniedMessage(target.host, typeName));
  }

  const timeoutMs = validTimeout(requestedTimeoutMs);
  const controller = new AbortController();
  const timer = setTimeout(
    () =>
      controller.abort(
        new ConnectorError(
          "transient",
          "Timeout",
          `${kind} ${target.display}: no answer within ${timeoutMs}ms`,
        ),
      ),
    timeoutMs,
  );
  const onCallerAbort = () =>
    controller.abort(
      new ConnectorError("transient", "Aborted", `${kind} ${target.display}: ${what} aborted`),
    );
  if (connector.signal?.aborted) onCallerAbort();
  else connector.signal?.addEventListener("abort", onCallerAbort, { once: true });

  const call: DriverCall = {
    typeName,
    version,
    config: connector.config ?? {},
    credentials,
    target,
    signal: controller.signal,
    timeoutMs,
    log,
  };
  const aborted = new Promise<never>((_, reject) => {
    if (controller.signal.aborted) reject(controller.signal.reason);
    else controller.signal.addEventListener("abort", () => reject(controller.signal.reason), { once: true });
  });
  aborted.catch(() => undefined);

  const fields = { driver: kind, type: typeName, target: target.display, call: what };
  const started = performance.now();
  try {
    if (controller.signal.aborted) throw controller.signal.reason;
    const running = fn(call);
    running.catch(() => undefined);
    const result = await Promise.race([running, aborted]);
    log.debug({ ...fields, latencyMs: elapsed(started) }, `${what} succeeded`);
    return result;
  } catch (err) {
    // After the deadline or an abort, whatever the library reported is a consequence of it.
    const error = controller.signal.aborted
      ? (controller.signal.reason as ConnectorError)
      : err instanceof ConnectorError
        ? err
        : (classifyNetwork(err, call) ??
          driver.classify?.(err, call) ??
          new ConnectorError(
            "transient",
            "ProtocolError",
            `${kind} ${target.display}: ${what} failed (${errorName(err)})`,
          ));
    log.debug({ ...fields, errorClass: error.errorClass, reason: error.reason }, `${what} failed`);
    throw scrubError(error, credentials);
  } finally {
    clearTimeout(timer);
    connector.signal?.removeEventListener("abort", onCallerAbort);
    // Closes whatever the driver still holds (each driver closes its sockets on abort).
    if (!controller.signal.aborted)
      controller.abort(new ConnectorError("transient", "Aborted", `${what} finished`));
  }
}
