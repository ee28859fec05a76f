// The life of a Connector, top to bottom (reconcile() is the list of steps): finalize when
// deleted, make sure of the finalizer, validate the spec, plan the instance row's
// convergence, apply the plan, resolve credentials and probe when a probe is due, record
// what was found. Every failure is a classed ConnectorError taking one route (#fail).
// Retries, backoff and concurrency belong to the queue that calls this; a reconcile never
// sleeps, and it stops calling out STATUS_GRACE_MS before its deadline so that status can
// still be written.
import { jitter, type Clock } from "../api/clock.ts";
import { deepEqual } from "../api/canonical.ts";
import { statusEqual } from "../api/conditions.ts";
import { ConnectorError, classify, isRetryable, terminal } from "../api/errors.ts";
import type { Logger } from "../api/logger.ts";
import type { InstancePatch, InstanceRow } from "../api/model.ts";
import { ANNOTATION_APPLIED_BY, FINALIZER, type Connector, type ConnectorStatus } from "../api/types.ts";
import { audit, type AuditEntry } from "./audit.ts";
import { CircuitBreakers } from "./breaker.ts";
import { resolveCredentials, type CredentialOutcome } from "./credentials.ts";
import { credentialFinding, findHealth, idle, notDue, type Finding, type ProbeSchedule } from "./findings.ts";
import { alignToGrid, intervalMs, probePlan } from "./health.ts";
import { planInstance, type InstancePlan } from "./plan.ts";
import { DEPRECATED_ANNOTATION, managementPolicies } from "./policies.ts";
import type { ConfigSchemaCache } from "../catalog/configSchemas.ts";
import type { OAuthClients } from "./credentials.ts";
import type {
  ConnectorWriter,
  EventRecorder,
  InstanceStore,
  Prober,
  ReconcileMetrics,
  SecretResolver,
} from "./ports.ts";
import { buildStatus, type DriftView } from "./status.ts";
import { validateConnector, type ValidationContext, type ValidSpec } from "./validate.ts";
import type { CatalogReader } from "../catalog/reader.ts";

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

/** Time kept back from the deadline for writing status after a step ran out of time. */
export const STATUS_GRACE_MS = 10_000;

export interface ReconcileRequest {
  connector: Connector;
  reconcileId: string;
  log: Logger;
  /** The whole reconcile's deadline (the controller runtime's), and when it fires. */
  signal?: AbortSignal;
  deadline?: number;
}

export interface ReconcileResult {
  requeueAfterMs?: number;
}

/** One reconcile in progress. */
interface Run extends ReconcileRequest {
  c: Connector;
  /** Steps that call out (database, secrets, probe, finalizers) stop here, before the deadline. */
  work: AbortSignal | undefined;
  started: number;
}

/** The instance after the apply step. */
export interface Instance {
  row: InstanceRow;
  specChanged: boolean;
  drift?: DriftView;
}

/** How far a reconcile got, for the failure route. */
interface Progress {
  valid?: ValidSpec;
  instance?: Instance;
  resolvingCredentials?: boolean;
}

/** Connectors that share a secret probe together (one read); the others spread by uid. */
export function probeGridKey(c: Connector): string {
  const ref = c.spec.credentials?.secretRef;
  return ref
    ? `${c.metadata.namespace}/${ref.provider}/${ref.name}/${ref.version ?? ""}`
    : (c.metadata.uid ?? c.metadata.name);
}

/** Who changed the spec: the applied-by annotation, else the field manager of the last spec update. */
export function actorOf(c: Connector): string | null {
  const annotated = c.metadata.annotations?.[ANNOTATION_APPLIED_BY];
  if (annotated) return annotated;
  const spec = (c.metadata.managedFields ?? []).filter((m) => m.subresource !== "status" && m.manager);
  spec.sort((x, y) => (x.time ?? "").localeCompare(y.time ?? ""));
  return spec.at(-1)?.manager ?? null;
}

export { diffDesired, specHash } from "./plan.ts";

function withWarnings(valid: ValidSpec, warnings: ValidSpec["warnings"]): ValidSpec {
  return warnings.length ? { ...valid, warnings: [...valid.warnings, ...warnings] } : valid;
}

export class Reconciler {
  readonly #d: ReconcilerDeps;
  readonly #breakers: CircuitBreakers;

  constructor(deps: ReconcilerDeps) {
    this.#d = deps;
    this.#breakers = deps.breakers ?? new CircuitBreakers();
  }

  async reconcile(req: ReconcileRequest): Promise<ReconcileResult> {
    const run = this.#begin(req);
    const at: Progress = {};
    try {
      if (run.c.metadata.deletionTimestamp) return await this.#finalize(run);
      await this.#ensureFinalizer(run);
      const policies = managementPolicies(run.c);
      const valid = (at.valid = withWarnings(validateConnector(run.c, this.#d), policies.warnings));
      const current = await this.#d.store.findByUid(this.#uid(run), run.work);
      const plan = planInstance(current, {
        namespace: run.c.metadata.namespace ?? "",
        name: run.c.metadata.name,
        uid: this.#uid(run),
        generation: run.c.metadata.generation ?? 0,
        desired: valid.desired,
        observeOnly: policies.management === "Observe",
      });
      const instance = (at.instance = await this.#apply(run, current, plan));
      if (!instance.row.enabled) return await this.#record(run, valid, instance, idle());
      const schedule = this.#schedule(run, instance);
      if (!schedule.run) return await this.#record(run, valid, instance, notDue(schedule, instance.row));
      at.resolvingCredentials = true;
      const credentials = await this.#credentials(run, valid, instance);
      at.resolvingCredentials = false;
      const finding = await this.#probe(run, valid, instance, credentials);
      return await this.#record(run, valid, instance, finding);
    } catch (err) {
      return this.#fail(run, classify(err), at);
    }
  }

  #begin(req: ReconcileRequest): Run {
    const work =
      req.signal && req.deadline !== undefined
        ? AbortSignal.any([
            req.signal,
            AbortSignal.timeout(Math.max(0, req.deadline - Date.now() - STATUS_GRACE_MS)),
          ])
        : req.signal;
    return { ...req, c: req.connector, work, started: performance.now() };
  }

  #uid(run: Run): string {
    const uid = run.c.metadata.uid;
    if (!uid) throw new ConnectorError("permanent", "MissingUid", "the Connector has no metadata.uid");
    return uid;
  }

  async #ensureFinalizer(run: Run): Promise<void> {
    if (!run.c.metadata.finalizers?.includes(FINALIZER)) await this.#d.writer.addFinalizer(run.c, run.work);
  }

  /** Runs the plan in one transaction (opened at its first write), with its audit rows. */
  async #apply(run: Run, current: InstanceRow | undefined, plan: InstancePlan): Promise<Instance> {
    const c = run.c;
    const generation = c.metadata.generation ?? 0;
    return this.#d.store.transaction(async (tx) => {
      const write = (row: InstanceRow, e: AuditEntry) => this.#audit(run, row, e, tx);
      switch (plan.kind) {
        case "create": {
          const created = await tx.insert(plan.row);
          await write(created, { operation: "created", outcome: "success", details: { generation } });
          run.log.info({ instanceId: created.id }, "instance created");
          return { row: created, specChanged: true };
        }
        case "none":
          return { row: current!, specChanged: false };
        case "record-generation":
          return { row: await tx.update(current!.id, plan.patch), specChanged: false };
        case "report-drift":
          return { row: current!, specChanged: false, drift: { fields: plan.fields, corrected: false } };
        case "update": {
          const updated = await tx.update(current!.id, plan.patch);
          await write(updated, {
            operation: "updated",
            outcome: "success",
            details: { fields: plan.fields, generation },
          });
          if (plan.enabledChanged)
            await write(updated, { operation: updated.enabled ? "enabled" : "disabled", outcome: "success" });
          run.log.info({ instanceId: updated.id, fields: plan.fields }, "instance updated");
          return { row: updated, specChanged: true };
        }
        case "correct-drift": {
          const updated = await tx.update(current!.id, plan.patch);
          await write(updated, {
            operation: "drift_corrected",
            outcome: "success",
            details: { fields: plan.fields },
          });
          this.#d.metrics?.driftCorrected(updated.type);
          this.#d.events.record(
            c,
            "Warning",
            "DriftCorrected",
            `instance differed from the spec in ${plan.fields.join(", ")}; overwritten`,
          );
          run.log.warn({ instanceId: updated.id, fields: plan.fields }, "drift corrected");
          return { row: updated, specChanged: false, drift: { fields: plan.fields, corrected: true } };
        }
      }
    }, run.work);
  }

  /** Whether a probe is due now (the interval, the breaker, a changed spec), and when the next one is. */
  #schedule(run: Run, instance: Instance): ProbeSchedule {
    return probePlan(
      instance.row,
      this.#breakers,
      this.#d.clock.now(),
      run.c.spec.healthCheck,
      instance.specChanged,
    );
  }

  async #credentials(run: Run, valid: ValidSpec, instance: Instance): Promise<CredentialOutcome> {
    const outcome = await resolveCredentials(
      this.#d,
      run.c,
      valid.version,
      instance.row,
      instance.specChanged,
      run.work,
    );
    this.#secretResolution(run, outcome.kind === "pending" ? "Pending" : "ok");
    return outcome;
  }

  #secretResolution(run: Run, result: string): void {
    const creds = run.c.spec.credentials;
    const provider = creds?.secretRef?.provider ?? creds?.oauth?.provider;
    if (provider && this.#d.secrets) this.#d.metrics?.secretResolution(provider, result);
  }

  async #probe(
    run: Run,
    valid: ValidSpec,
    instance: Instance,
    credentials: CredentialOutcome,
  ): Promise<Finding> {
    const finding = await findHealth({
      prober: this.#d.prober,
      breakers: this.#breakers,
      row: instance.row,
      valid,
      healthCheck: run.c.spec.healthCheck,
      credentials,
      now: this.#d.clock.now(),
      signal: run.work,
    });
    const r = finding.result;
    if (r) {
      const kind = valid.version.healthProbe.kind;
      this.#d.metrics?.probe(
        kind,
        r.ok ? "ok" : r.error.reason === "AuthenticationFailed" ? "auth" : r.error.errorClass,
        r.latencyMs / 1000,
      );
      run.log.debug(
        {
          kind,
          ok: r.ok,
          latencyMs: r.latencyMs,
          ...(r.ok ? {} : { reason: r.error.reason, errorClass: r.error.errorClass }),
        },
        "health probe",
      );
    }
    if (finding.tripped) {
      this.#d.metrics?.breakerTrip(valid.type.metadata.name);
      run.log.warn({ failures: this.#breakers.failures(instance.row.id) }, "circuit breaker opened");
    }
    return finding;
  }

  /** Writes what this reconcile found to the row (with its audit rows) and to status; says when to come back. */
  async #record(run: Run, valid: ValidSpec, instance: Instance, finding: Finding): Promise<ReconcileResult> {
    const c = run.c;
    let row = instance.row;
    if (finding.probed) {
      const patch: InstancePatch = {};
      for (const [k, v] of Object.entries(finding.observed) as [keyof InstanceRow, unknown][])
        if (!deepEqual(row[k], v)) Object.assign(patch, { [k]: v });
      const before = row;
      row = await this.#d.store.transaction(async (tx) => {
        const updated = await tx.update(before.id, patch);
        if (finding.rotated)
          await this.#audit(
            run,
            updated,
            { operation: "credential_rotated", outcome: "success", details: finding.rotated },
            tx,
          );
        if (before.state !== updated.state)
          await this.#audit(
            run,
            updated,
            {
              operation: "state_changed",
              outcome: "success",
              details: { from: before.state, to: updated.state },
            },
            tx,
          );
        return updated;
      }, run.work);
    }
    if (finding.rotated) {
      const { from, to } = finding.rotated;
      this.#d.events.record(
        c,
        "Normal",
        "CredentialRotated",
        `credentials rotated (version ${from ?? "-"} -> ${to ?? "-"}); re-probed`,
      );
      run.log.info({ from, to }, "credentials rotated");
    }
    await this.#writeStatus(
      run,
      buildStatus({
        connector: c,
        now: this.#d.clock.now(),
        row,
        warnings: valid.warnings,
        probed: finding.probed,
        ...(finding.health ? { health: finding.health } : {}),
        ...(finding.credentialProblem ? { syncProblem: finding.credentialProblem } : {}),
        ...(finding.auth ? { auth: finding.auth } : {}),
        ...(instance.drift ? { drift: instance.drift } : {}),
      }),
    );
    return this.#requeue(run, row, finding);
  }

  #requeue(run: Run, row: InstanceRow, finding: Finding): ReconcileResult {
    // A probe that ran schedules the next from the row it wrote.
    const next = finding.next ?? (finding.probed ? this.#afterProbe(run, row) : undefined);
    if (!next) return {};
    const now = this.#d.clock.now();
    const every = intervalMs(run.c.spec.healthCheck);
    return {
      requeueAfterMs: next.steady
        ? alignToGrid(now.getTime(), next.inMs, every, probeGridKey(run.c))
        : Math.max(1000, Math.round(jitter(next.inMs, 0.1, this.#d.random))),
    };
  }

  #afterProbe(run: Run, row: InstanceRow): { inMs: number; steady: boolean } {
    const after = probePlan(row, this.#breakers, this.#d.clock.now(), run.c.spec.healthCheck, false);
    return { inMs: after.nextInMs, steady: after.steady && !after.open };
  }

  /**
   * The one failure route. A Conflict means our copy is stale: nothing is written, the queue
   * retries with a fresh one. A permanent failure while resolving credentials is not the
   * spec's fault (a secret not there yet, a key missing): it is recorded like a failed probe
   * and retried on the probe schedule. Anything else sets status (the last good state stands
   * for passing trouble; Stalled for the rest), then passing trouble goes back to the queue
   * for backoff and the rest is terminal for this generation, with a Warning event and an
   * audit row.
   */
  async #fail(run: Run, err: ConnectorError, at: Progress): Promise<ReconcileResult> {
    run.log.warn({ errorClass: err.errorClass, reason: err.reason, err: err.message }, "reconcile failed");
    if (err.reason === "Conflict") throw err;
    if (at.resolvingCredentials && at.valid && at.instance && err.errorClass === "permanent") {
      this.#secretResolution(run, err.reason);
      return this.#record(
        run,
        at.valid,
        at.instance,
        credentialFinding(err, this.#d.clock.now(), this.#breakers.settings.retryMs),
      );
    }
    const row = at.instance?.row ?? (await this.#currentRow(run));
    const written = await this.#writeStatus(
      run,
      buildStatus({ connector: run.c, now: this.#d.clock.now(), row, failure: err }),
    );
    if (isRetryable(err.errorClass)) throw err;
    if (written)
      await this.#audit(run, row, {
        operation: "validation_failed",
        outcome: err.errorClass === "policy_denied" ? "denied" : "failure",
        details: { reason: err.reason, errorClass: err.errorClass, fields: err.problems.map((p) => p.path) },
      }).catch((e: unknown) => run.log.warn({ err: e }, "audit write failed"));
    throw terminal(err);
  }

  /** The row as it is, for a failure's status; the database may be what failed. */
  async #currentRow(run: Run): Promise<InstanceRow | undefined> {
    const uid = run.c.metadata.uid;
    return uid ? this.#d.store.findByUid(uid, run.work).catch(() => undefined) : undefined;
  }

  /** Patches status when it changed (with the whole deadline: the grace was kept for this). */
  async #writeStatus(run: Run, status: ConnectorStatus): Promise<boolean> {
    const c = run.c;
    if (statusEqual(c.status, status)) return false;
    const prevReady = c.status?.conditions?.find((x) => x.type === "Ready");
    await this.#d.writer.writeStatus(c, status, run.signal);
    const deprecated = status.conditions?.find((x) => x.type === DEPRECATED_ANNOTATION);
    if (deprecated && !c.status?.conditions?.some((x) => x.type === DEPRECATED_ANNOTATION))
      this.#d.events.record(c, "Warning", DEPRECATED_ANNOTATION, deprecated.message);
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

  /** Deletion: disable and soft-delete the row (or orphan it), audit, then let the object go. */
  async #finalize(run: Run): Promise<ReconcileResult> {
    const c = run.c;
    if (!c.metadata.finalizers?.includes(FINALIZER)) return {};
    const orphan = managementPolicies(c).deletion === "Orphan";
    const row = c.metadata.uid ? await this.#d.store.findByUid(c.metadata.uid, run.work) : undefined;
    if (row) {
      this.#breakers.forget(row.id);
      await this.#d.store.transaction(async (tx) => {
        if (orphan) return this.#audit(run, row, { operation: "orphaned", outcome: "success" }, tx);
        await tx.update(row.id, { enabled: false, state: "disabled" });
        await tx.softDelete(row.id, this.#d.clock.now());
        await this.#audit(run, row, { operation: "deleted", outcome: "success" }, tx);
      }, run.work);
      run.log.info({ instanceId: row.id, orphan }, orphan ? "instance orphaned" : "instance soft-deleted");
    }
    await this.#d.writer.removeFinalizer(c, run.work);
    return {};
  }

  #audit(run: Run, row: InstanceRow | undefined, e: AuditEntry, store = this.#d.store): Promise<void> {
    return store.appendAudit(audit(run.c, run.reconcileId, row, actorOf(run.c), e));
  }
}
