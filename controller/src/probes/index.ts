// The health probes: createProber({ log }) dispatches on the type version's healthProbe.kind.
//
// Every probe: the target host is checked against the type version's egress allowlist
// before anything is resolved or connected (policy_denied / egress); the probe runs under
// one deadline (timeoutMs) combined with the caller's signal, and its sockets are closed
// when either fires; it never throws; its message is stable and carries no credentials.
import type { ProbeKind, TypeVersion } from "../api/types.ts";
import type { Logger } from "../api/logger.ts";
import { ConnectorError } from "../api/errors.ts";
import { AUTHENTICATION_FAILED, type ProbeInput, type ProbeResult } from "../api/model.ts";
import type { Prober } from "../reconcile/ports.ts";
import {
  ProbeFailure,
  classifyNetwork,
  errorMessage,
  scrub,
  type ProbeContext,
  type ProbeKindImpl,
  type ProbeTarget,
} from "./common.ts";
import { egressDeniedMessage, hostAllowed, typeVersionOf } from "./egress.ts";
import { discordProbe, httpProbe, mattermostProbe } from "./http.ts";
import { imapProbe } from "./imap.ts";
import { postgresProbe } from "./postgres.ts";
import { smtpProbe } from "./smtp.ts";

export { hostAllowed } from "./egress.ts";
export { ProbeFailure } from "./common.ts";

export const PROBES: Partial<Record<ProbeKind, ProbeKindImpl>> = {
  imap: imapProbe,
  smtp: smtpProbe,
  http: httpProbe,
  postgres: postgresProbe,
  mattermost: mattermostProbe,
  discord: discordProbe,
};

export const DEFAULT_PROBE_TIMEOUT_MS = 10_000;

export interface ProberOptions {
  log: Logger;
}

export function createProber(opts: ProberOptions): Prober {
  return {
    probe(input: ProbeInput): Promise<ProbeResult> | undefined {
      const version = typeVersionOf(input.type, input.typeVersion);
      const kind = version?.healthProbe.kind;
      const impl = kind !== undefined && Object.hasOwn(PROBES, kind) ? PROBES[kind] : undefined;
      if (!version || !impl) return undefined;
      return runProbe(impl, input, version, opts.log);
    },
  };
}

const REASONS: Record<string, string> = {
  auth: AUTHENTICATION_FAILED,
  egress: "EgressDenied",
  timeout: "Timeout",
  aborted: "Aborted",
  connection: "ConnectionFailed",
  dns: "DnsFailed",
  tls: "TlsFailed",
  config: "InvalidConfig",
  protocol: "ProtocolError",
  status: "UnexpectedStatus",
  quota: "QuotaExceeded",
  mailbox: "MailboxNotFound",
  shape: "UnexpectedResponse",
};

function failure(started: number, f: ProbeFailure, input: ProbeInput): ProbeResult {
  const error = new ConnectorError(
    f.errorClass,
    REASONS[f.reason] ?? "ProtocolError",
    scrub(f.message, input.credentials),
    {
      ...(f.providerStatusCode !== undefined ? { providerStatusCode: f.providerStatusCode } : {}),
      ...(f.retryAfterMs !== undefined ? { retryAfterMs: f.retryAfterMs } : {}),
    },
  );
  return { ok: false, latencyMs: elapsed(started), error };
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 10) / 10;
}

async function runProbe(
  impl: ProbeKindImpl,
  input: ProbeInput,
  version: TypeVersion,
  log: Logger,
): Promise<ProbeResult> {
  const started = performance.now();
  const kind = version.healthProbe.kind;
  const typeName = input.type.metadata.name;

  let target: ProbeTarget;
  try {
    target = impl.target(input.config ?? {}, version);
  } catch (err) {
    const f =
      err instanceof ProbeFailure
        ? err
        : new ProbeFailure("permanent", "config", `${kind}: ${errorMessage(err)}`);
    return failure(started, f, input);
  }

  // Egress first: nothing is resolved or connected for a host outside the allowlist.
  if (!hostAllowed(target.host, version.egressAllowlist)) {
    log.warn(
      { probe: kind, type: typeName, host: target.host },
      "probe refused: host not in the egress allowlist",
    );
    return failure(
      started,
      new ProbeFailure("policy_denied", "egress", egressDeniedMessage(target.host, typeName)),
      input,
    );
  }

  const timeoutMs =
    Number.isFinite(input.timeoutMs) && input.timeoutMs > 0
      ? Math.floor(input.timeoutMs)
      : DEFAULT_PROBE_TIMEOUT_MS;
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(
      new ProbeFailure("transient", "timeout", `${kind} ${target.display}: no answer within ${timeoutMs}ms`),
    );
  }, timeoutMs);
  const onCallerAbort = () =>
    controller.abort(new ProbeFailure("transient", "aborted", `${kind} ${target.display}: probe aborted`));
  if (input.signal?.aborted) onCallerAbort();
  else input.signal?.addEventListener("abort", onCallerAbort, { once: true });

  const ctx: ProbeContext = { input, version, typeName, target, log, signal: controller.signal, timeoutMs };
  const aborted = new Promise<never>((_, reject) => {
    if (controller.signal.aborted) reject(controller.signal.reason);
    else controller.signal.addEventListener("abort", () => reject(controller.signal.reason), { once: true });
  });
  aborted.catch(() => undefined);

  try {
    if (controller.signal.aborted) throw controller.signal.reason;
    const running = impl.run(ctx);
    running.catch(() => undefined);
    const success = await Promise.race([running, aborted]);
    const result: ProbeResult = {
      ok: true,
      latencyMs: elapsed(started),
      ...(success.providerStatusCode !== undefined ? { providerStatusCode: success.providerStatusCode } : {}),
    };
    log.debug(
      { probe: kind, type: typeName, target: target.display, latencyMs: result.latencyMs },
      "probe succeeded",
    );
    return result;
  } catch (err) {
    // After the deadline or an abort, whatever the library reported is a consequence of it.
    const f = controller.signal.aborted
      ? (controller.signal.reason as ProbeFailure)
      : err instanceof ProbeFailure
        ? err
        : (classifyNetwork(err, ctx) ??
          impl.classify?.(err, ctx) ??
          new ProbeFailure(
            "transient",
            "protocol",
            `${kind} ${target.display}: probe failed (${errorName(err)})`,
          ));
    const result = failure(started, f, input);
    log.debug(
      {
        probe: kind,
        type: typeName,
        target: target.display,
        errorClass: f.errorClass,
        reason: f.reason,
        timedOut,
      },
      "probe failed",
    );
    return result;
  } finally {
    clearTimeout(timer);
    input.signal?.removeEventListener("abort", onCallerAbort);
    // Closes whatever the probe still holds (each probe closes its sockets on abort).
    if (!controller.signal.aborted)
      controller.abort(new ProbeFailure("transient", "aborted", "probe finished"));
  }
}

/** A stable name for an unexpected error: its code, else its class name. */
function errorName(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && /^[A-Za-z0-9_.-]{1,40}$/.test(code)) return code;
  return err instanceof Error ? err.name : typeof err;
}
