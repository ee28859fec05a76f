// The life of a Connector, top to bottom: delete, validate, converge the instance row,
// check health, write status. Retries, backoff and concurrency belong to the queue that
// calls this; a reconcile never sleeps.
import { canonicalJson, sha256, deepEqual } from "../api/canonical.ts";
import { statusEqual } from "../api/conditions.ts";
import {
  ANNOTATION_APPLIED_BY,
  ANNOTATION_DELETION_POLICY,
  ANNOTATION_MANAGEMENT_POLICY,
  FINALIZER,
  type Connector,
  type JsonObject,
} from "../api/types.ts";
import type { ConfigSchemaCache } from "../catalog/configSchemas.ts";
import { ConnectorError, classify, isRetryable } from "../api/errors.ts";
import {
  alignToGrid,
  checkHealth,
  CircuitBreakers,
  intervalMs,
  DEFAULT_TIMEOUT_SECONDS,
  openBreakerOutcome,
  probePlan,
  type HealthOutcome,
} from "./health.ts";
import {
  AUTHENTICATION_FAILED,
  DESIRED_FIELDS,
  type AuditEvent,
  type DesiredInstance,
  type InstancePatch,
  type InstanceRow,
} from "../api/model.ts";
import type {
  CatalogReader,
  ConnectorWriter,
  EventRecorder,
  InstanceStore,
  Prober,
  SecretResolver,
} from "./ports.ts";
import type { Clock } from "../api/clock.ts";
import type { Logger } from "../api/logger.ts";
import { resolveCredentials, type OAuthClients } from "./credentials.ts";
import { buildStatus, type DriftView } from "./status.ts";
import { validateConnector, type ValidationContext, type ValidSpec } from "./validate.ts";

/** Counters the reconciler reports; observability/ implements them with prom-client. */
export interface ReconcileMetrics {
  probe(kind: string, outcome: string, seconds: number): void;
  breakerTrip(type: string): void;
  driftCorrected(type: string): void;
  secretResolution(provider: string, result: string): void;
}

export interface ReconcilerDeps {
  catalog: CatalogReader;
  schemas: ConfigSchemaCache;
  store: InstanceStore;
  writer: ConnectorWriter;
  events: EventRecorder;
  clock: Clock;
  enabledFeatures: ReadonlySet<string>;
  secrets?: SecretResolver;
  secretRefs?: ValidationContext["secretRefs"];
  prober?: Prober;
  breakers?: CircuitBreakers;
  oauthClients?: OAuthClients;
  /** Keys the OAuth state nonce (the fingerprint key). */
  oauthStateKey?: Buffer;
  metrics?: ReconcileMetrics;
  /** In [0, 1): spreads requeues so many connectors do not probe at once. */
  random?: () => number;
}

export interface ReconcileRequest {
  connector: Connector;
  reconcileId: string;
  log: Logger;
}

export interface ReconcileResult {
  requeueAfterMs?: number;
}

interface HealthStep {
  row: InstanceRow;
  /** On a healthy schedule (aligned to the grid), rather than retrying a failure. */
  steady: boolean;
  outcome?: HealthOutcome;
  probed: boolean;
  nextProbeInMs: number;
  problem?: ConnectorError;
  auth?: { state: "Pending" | "Authorized"; url?: string };
}

interface Converged {
  row: InstanceRow;
  specChanged: boolean;
  drift?: DriftView;
}

/** Connectors that share a secret probe together (one read); the others spread by uid. */
export function probeGridKey(c: Connector): string {
  const ref = c.spec.credentials?.secretRef;
  return ref
    ? `${c.metadata.namespace}/${ref.provider}/${ref.name}/${ref.version ?? ""}`
    : (c.metadata.uid ?? c.metadata.name);
}

export function specHash(desired: DesiredInstance): string {
  return sha256(canonicalJson(desired));
}

/** Field paths (`config.mailbox`, `enabled`) where the row differs from the desired state. */
export function diffDesired(row: InstanceRow, desired: DesiredInstance): string[] {
  const fields: string[] = [];
  for (const f of DESIRED_FIELDS) {
    if (deepEqual(row[f], desired[f])) continue;
    if (f === "config") fields.push(...diffObjects(row.config, desired.config, "config"));
    else fields.push(f);
  }
  return fields;
}

function diffObjects(a: JsonObject | null, b: JsonObject | null, prefix: string): string[] {
  const keys = new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})]);
  const out: string[] = [];
  for (const k of [...keys].sort()) if (!deepEqual(a?.[k], b?.[k])) out.push(`${prefix}.${k}`);
  return out.length ? out : [prefix];
}

/** Who changed the spec: the applied-by annotation, else the field manager of the last spec update. */
export function actorOf(c: Connector): string | null {
  const annotated = c.metadata.annotations?.[ANNOTATION_APPLIED_BY];
  if (annotated) return annotated;
  const spec = (c.metadata.managedFields ?? []).filter((m) => m.subresource !== "status" && m.manager);
  spec.sort((x, y) => (x.time ?? "").localeCompare(y.time ?? ""));
  return spec.at(-1)?.manager ?? null;
}

export class Reconciler {
  readonly #d: ReconcilerDeps;
  readonly #breakers: CircuitBreakers;

  constructor(deps: ReconcilerDeps) {
    this.#d = deps;
    this.#breakers = deps.breakers ?? new CircuitBreakers();
  }

  async reconcile(req: ReconcileRequest): Promise<ReconcileResult> {
    const c = req.connector;
    if (c.metadata.deletionTimestamp) return this.#finalize(req);
    if (!c.metadata.finalizers?.includes(FINALIZER)) await this.#d.writer.addFinalizer(c);

    let valid: ValidSpec;
    try {
      valid = validateConnector(c, this.#d);
    } catch (err) {
      return this.#fail(req, classify(err));
    }

    try {
      const converged = await this.#converge(req, valid);
      const health = converged.row.enabled ? await this.#health(req, valid, converged) : undefined;
      const row = health?.row ?? converged.row;
      await this.#writeStatus(
        req,
        buildStatus({
          connector: c,
          now: this.#d.clock.now(),
          row,
          warnings: valid.warnings,
          ...(health?.outcome ? { health: health.outcome.health } : {}),
          ...(health?.problem ? { syncProblem: health.problem } : {}),
          ...(health?.auth ? { auth: health.auth } : {}),
          probed: health?.probed ?? false,
          ...(converged.drift ? { drift: converged.drift } : {}),
        }),
      );
      if (!health) return {};
      const every = intervalMs(c.spec.healthCheck);
      return {
        requeueAfterMs: health.steady
          ? alignToGrid(this.#d.clock.now().getTime(), health.nextProbeInMs, every, probeGridKey(c))
          : this.#jittered(health.nextProbeInMs),
      };
    } catch (err) {
      return this.#fail(req, classify(err));
    }
  }

  /** One uniform way to fail: condition, Warning event, audit; retry only what can succeed later. */
  async #fail(req: ReconcileRequest, err: ConnectorError): Promise<ReconcileResult> {
    const c = req.connector;
    req.log.warn({ errorClass: err.errorClass, reason: err.reason, err: err.message }, "reconcile failed");
    let row: InstanceRow | undefined;
    try {
      row = c.metadata.uid ? await this.#d.store.findByUid(c.metadata.uid) : undefined;
    } catch {
      row = undefined; // the database may be what failed; status still says why
    }
    const written = await this.#writeStatus(
      req,
      buildStatus({ connector: c, now: this.#d.clock.now(), row, failure: err }),
    );
    if (written && !isRetryable(err.errorClass)) {
      await this.#audit(req, row, {
        operation: "validation_failed",
        outcome: err.errorClass === "policy_denied" ? "denied" : "failure",
        details: { reason: err.reason, errorClass: err.errorClass, fields: err.problems.map((p) => p.path) },
      }).catch((e: unknown) => req.log.warn({ err: (e as Error).message }, "audit write failed"));
    }
    if (isRetryable(err.errorClass)) throw err;
    return {};
  }

  async #writeStatus(req: ReconcileRequest, status: ReturnType<typeof buildStatus>): Promise<boolean> {
    const c = req.connector;
    if (statusEqual(c.status, status)) return false;
    const prevReady = c.status?.conditions?.find((x) => x.type === "Ready");
    await this.#d.writer.writeStatus(c, status);
    const ready = status.conditions?.find((x) => x.type === "Ready");
    if (
      ready &&
      (ready.status !== prevReady?.status ||
        ready.reason !== prevReady?.reason ||
        ready.message !== prevReady?.message)
    ) {
      const warn = ready.status !== "True" || status.state === "degraded";
      this.#d.events.record(c, warn ? "Warning" : "Normal", ready.reason, ready.message);
    }
    return true;
  }

  async #converge(req: ReconcileRequest, valid: ValidSpec): Promise<Converged> {
    const c = req.connector;
    const uid = c.metadata.uid;
    if (!uid) throw new ConnectorError("permanent", "MissingUid", "the Connector has no metadata.uid");
    const desired = valid.desired;
    const hash = specHash(desired);
    const generation = c.metadata.generation ?? 0;
    const observeOnly = c.metadata.annotations?.[ANNOTATION_MANAGEMENT_POLICY] === "Observe";

    return this.#d.store.transaction(async (tx) => {
      const row = await tx.findByUid(uid);
      if (!row) {
        const created = await tx.insert({
          namespace: c.metadata.namespace ?? "",
          name: c.metadata.name,
          uid,
          ...desired,
          state: desired.enabled ? "provisioning" : "disabled",
          secretVersion: null,
          secretFingerprint: null,
          lastSuccessAt: null,
          lastError: null,
          lastErrorClass: null,
          healthCheckedAt: null,
          appliedGeneration: generation,
          specHash: hash,
        });
        await this.#audit(
          req,
          created,
          { operation: "created", outcome: "success", details: { generation } },
          tx,
        );
        req.log.info({ instanceId: created.id }, "instance created");
        return { row: created, specChanged: true };
      }

      const fields = diffDesired(row, desired);
      const specChanged = row.specHash !== hash;
      if (!specChanged && !fields.length) {
        if (row.appliedGeneration === generation) return { row, specChanged: false };
        // A new generation that changes nothing the instance holds (e.g. the health interval).
        return { row: await tx.update(row.id, { appliedGeneration: generation }), specChanged: false };
      }
      if (!specChanged && observeOnly)
        return { row, specChanged: false, drift: { fields, corrected: false } };

      const patch: InstancePatch = { appliedGeneration: generation, specHash: hash };
      for (const f of DESIRED_FIELDS)
        if (!deepEqual(row[f], desired[f])) Object.assign(patch, { [f]: desired[f] });
      if (row.enabled !== desired.enabled) {
        patch.state = desired.enabled ? "provisioning" : "disabled";
      } else if (specChanged && desired.enabled) {
        patch.state = row.state === "disabled" ? "provisioning" : row.state;
      }
      const updated = await tx.update(row.id, patch);
      if (specChanged) {
        await this.#audit(
          req,
          updated,
          { operation: "updated", outcome: "success", details: { fields, generation } },
          tx,
        );
        if (row.enabled !== desired.enabled)
          await this.#audit(
            req,
            updated,
            { operation: desired.enabled ? "enabled" : "disabled", outcome: "success" },
            tx,
          );
        req.log.info({ instanceId: row.id, fields }, "instance updated");
        return { row: updated, specChanged: true };
      }
      await this.#audit(
        req,
        updated,
        { operation: "drift_corrected", outcome: "success", details: { fields } },
        tx,
      );
      this.#d.metrics?.driftCorrected(desired.type);
      this.#d.events.record(
        c,
        "Warning",
        "DriftCorrected",
        `instance differed from the spec in ${fields.join(", ")}; overwritten`,
      );
      req.log.warn({ instanceId: row.id, fields }, "drift corrected");
      return { row: updated, specChanged: false, drift: { fields, corrected: true } };
    });
  }

  async #health(req: ReconcileRequest, valid: ValidSpec, conv: Converged): Promise<HealthStep> {
    const c = req.connector;
    const row = conv.row;
    const now = this.#d.clock.now();
    const plan = probePlan(row, this.#breakers, now, c.spec.healthCheck, conv.specChanged);
    if (!plan.run)
      return {
        row,
        probed: false,
        steady: plan.steady,
        nextProbeInMs: plan.nextInMs,
        ...(plan.open ? { outcome: openBreakerOutcome(row) } : {}),
      };
    const timeoutMs = (c.spec.healthCheck?.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS) * 1000;
    const signal = AbortSignal.timeout(timeoutMs);
    const kind = valid.version.healthProbe.kind;

    const creds = await resolveCredentials(this.#d, c, valid.version, row, conv.specChanged, signal);
    const provider = c.spec.credentials?.secretRef?.provider ?? c.spec.credentials?.oauth?.provider;
    if (provider && this.#d.secrets)
      this.#d.metrics?.secretResolution(
        provider,
        creds.problem?.reason ?? (creds.pending ? "Pending" : "ok"),
      );
    let outcome: HealthOutcome;
    if (creds.problem || creds.pending) {
      const p = creds.problem;
      outcome = {
        health: p
          ? { status: "False", reason: p.reason, message: p.message }
          : {
              status: "Unknown",
              reason: "AuthorizationPending",
              message: "waiting for the OAuth flow to complete",
            },
        observed: { ...creds.observed, healthCheckedAt: now },
      };
    } else {
      outcome = await checkHealth(
        this.#d.prober,
        this.#breakers,
        row,
        {
          type: valid.type,
          typeVersion: valid.version.version,
          config: row.config,
          credentials: creds.values,
          timeoutMs,
          signal,
        },
        now,
      );
      outcome.observed = { ...creds.observed, ...outcome.observed };
    }
    if (outcome.result) {
      const r = outcome.result;
      this.#d.metrics?.probe(
        kind,
        r.ok ? "ok" : r.error.reason === AUTHENTICATION_FAILED ? "auth" : r.error.errorClass,
        r.latencyMs / 1000,
      );
      req.log.debug(
        {
          kind,
          ok: r.ok,
          latencyMs: r.latencyMs,
          ...(r.ok ? {} : { reason: r.error.reason, errorClass: r.error.errorClass }),
        },
        "health probe",
      );
    }
    if (outcome.tripped) {
      this.#d.metrics?.breakerTrip(valid.type.metadata.name);
      req.log.warn({ failures: this.#breakers.failures(row.id) }, "circuit breaker opened");
    }
    const patch: InstancePatch = {};
    for (const [k, v] of Object.entries(outcome.observed) as [keyof InstanceRow, unknown][]) {
      if (!deepEqual(row[k], v)) Object.assign(patch, { [k]: v });
    }
    const next = await this.#d.store.transaction(async (tx) => {
      const updated = await tx.update(row.id, patch);
      if (creds.rotated)
        await this.#audit(
          req,
          updated,
          { operation: "credential_rotated", outcome: "success", details: creds.rotated },
          tx,
        );
      if (row.state !== updated.state)
        await this.#audit(
          req,
          updated,
          { operation: "state_changed", outcome: "success", details: { from: row.state, to: updated.state } },
          tx,
        );
      return updated;
    });
    if (creds.rotated) {
      const { from, to } = creds.rotated;
      this.#d.events.record(
        c,
        "Normal",
        "CredentialRotated",
        `credentials rotated (version ${from ?? "-"} -> ${to ?? "-"}); re-probed`,
      );
      req.log.info({ from, to }, "credentials rotated");
    }
    const waiting = creds.pending || creds.problem;
    const after = probePlan(next, this.#breakers, this.#d.clock.now(), c.spec.healthCheck, false);
    return {
      row: next,
      outcome,
      probed: true,
      steady: !waiting && after.steady && !after.open,
      nextProbeInMs: waiting ? this.#breakers.settings.retryMs : after.nextInMs,
      ...(creds.problem ? { problem: creds.problem } : {}),
      ...(creds.auth ? { auth: creds.auth } : {}),
    };
  }

  #jittered(ms: number): number {
    const jitter = 1 + ((this.#d.random ?? Math.random)() - 0.5) * 0.2; // ±10%
    return Math.max(1000, Math.round(ms * jitter));
  }

  async #finalize(req: ReconcileRequest): Promise<ReconcileResult> {
    const c = req.connector;
    if (!c.metadata.finalizers?.includes(FINALIZER)) return {};
    const orphan = c.metadata.annotations?.[ANNOTATION_DELETION_POLICY] === "Orphan";
    const uid = c.metadata.uid;
    const row = uid ? await this.#d.store.findByUid(uid) : undefined;
    if (row) {
      this.#breakers.forget(row.id);
      await this.#d.store.transaction(async (tx) => {
        if (orphan) {
          await this.#audit(req, row, { operation: "orphaned", outcome: "success" }, tx);
          return;
        }
        await tx.update(row.id, { enabled: false, state: "disabled" });
        await tx.softDelete(row.id, this.#d.clock.now());
        await this.#audit(req, row, { operation: "deleted", outcome: "success" }, tx);
      });
      req.log.info({ instanceId: row.id, orphan }, orphan ? "instance orphaned" : "instance soft-deleted");
    }
    await this.#d.writer.removeFinalizer(c);
    return {};
  }

  async #audit(
    req: ReconcileRequest,
    row: InstanceRow | undefined,
    e: Pick<AuditEvent, "operation" | "outcome"> & Partial<AuditEvent>,
    store: InstanceStore = this.#d.store,
  ): Promise<void> {
    const c = req.connector;
    await store.appendAudit({
      requestId: req.reconcileId,
      correlationId: c.metadata.uid ?? null,
      actor: actorOf(c),
      projectId: row?.projectId ?? c.spec.projectId ?? null,
      connectorInstanceId: row?.id ?? null,
      namespace: c.metadata.namespace ?? "",
      name: c.metadata.name,
      executionMode: "reconcile",
      ...e,
    });
  }
}
