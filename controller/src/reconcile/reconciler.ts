// The life of a Connector, top to bottom (reconcile() is the list of steps): finalize when
// deleted, make sure of the finalizer, validate the spec, plan the instance row's
// convergence, apply the plan, resolve credentials and probe when a probe is due, record
// what was found. Every failure is a classed ConnectorError taking one route (#fail).
// Retries, backoff and concurrency belong to the queue that calls this; a reconcile never
// sleeps, and it stops calling out STATUS_GRACE_MS before its deadline so that status can
// still be written.
import { jitter, type Clock } from "../api/clock.ts";
import { deepEqual } from "../api/canonical.ts";
import { ConnectorError, classify, isRetryable, terminal } from "../api/errors.ts";
import type { Logger } from "../api/logger.ts";
import type { InstancePatch, InstanceRow } from "../api/model.ts";
import { FINALIZER, type Connector, type ConnectorStatus } from "../api/types.ts";
import { actorOf, audit, type AuditEntry } from "./audit.ts";
import { CircuitBreakers } from "./breaker.ts";
import { resolveCredentials, type CredentialOutcome, type OAuthClients } from "./credentials.ts";
import { credentialFinding, findHealth, idle, notDue, type Finding, type ProbeSchedule } from "./findings.ts";
import { alignToGrid, intervalMs, probeGridKey, probePlan } from "./health.ts";
import { applyPlan, type Instance } from "./apply.ts";
import { finalize } from "./finalize.ts";
import { planInstance } from "./plan.ts";
import { managementPolicies } from "./policies.ts";
import type { ConfigSchemaCache } from "../catalog/configSchemas.ts";
import type {
  ConnectorWriter,
  EventRecorder,
  InstanceStore,
  Prober,
  ReconcileMetrics,
  SecretResolver,
} from "./ports.ts";
import { buildStatus, publishStatus } from "./status.ts";
import { validateConnector, withWarnings, type ValidationContext, type ValidSpec } from "./validate.ts";
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
  /** The instances' circuit breakers, shared with the gateway. */
  breakers: CircuitBreakers;
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

/** How far a reconcile got, for the failure route. */
interface Progress {
  valid?: ValidSpec;
  instance?: Instance;
  resolvingCredentials?: boolean;
}

export { actorOf, probeGridKey };
export { diffDesired, specHash } from "./plan.ts";

export class Reconciler {
  readonly #d: ReconcilerDeps;
  readonly #breakers: CircuitBreakers;

  constructor(deps: ReconcilerDeps) {
    this.#d = deps;
    this.#breakers = deps.breakers;
  }

  async reconcile(req: ReconcileRequest): Promise<ReconcileResult> {
    const run = this.#begin(req);
    const at: Progress = {};
    try {
      if (run.c.metadata.deletionTimestamp)
        return await finalize({
          ...this.#d,
          connector: run.c,
          log: run.log,
          signal: run.work,
          audit: (row, entry, tx) => this.#audit(run, row, entry, tx),
        });
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
      const instance = (at.instance = await applyPlan(
        {
          ...this.#d,
          connector: run.c,
          log: run.log,
          signal: run.work,
          audit: (row, entry, tx) => this.#audit(run, row, entry, tx),
        },
        current,
        plan,
      ));
      if (!instance.row.enabled) return await this.#record(run, valid, instance, idle());
      const schedule = await this.#schedule(run, instance);
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

  /** Whether a probe is due now (the interval, the breaker, a changed spec), and when the next one is. */
  async #schedule(run: Run, instance: Instance): Promise<ProbeSchedule> {
    const id = instance.row.id;
    const breaker = await this.#breakers.state(id);
    const plan = probePlan(
      instance.row,
      breaker,
      this.#breakers.settings.retryMs,
      this.#d.clock.now(),
      run.c.spec.healthCheck,
      instance.specChanged,
    );
    // A half-open breaker lets one trial through, shared with the gateway: a probe takes it or waits.
    if (plan.run && breaker.phase === "half-open" && !(await this.#breakers.claimTrial(id)))
      return { run: false, open: true, steady: false, nextInMs: this.#breakers.settings.retryMs };
    return plan;
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
      run.log.warn({ threshold: this.#breakers.settings.failureThreshold }, "circuit breaker opened");
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

  async #requeue(run: Run, row: InstanceRow, finding: Finding): Promise<ReconcileResult> {
    // A probe that ran schedules the next from the row it wrote.
    const next = finding.next ?? (finding.probed ? await this.#afterProbe(run, row) : undefined);
    if (!next) return {};
    const now = this.#d.clock.now();
    const every = intervalMs(run.c.spec.healthCheck);
    return {
      requeueAfterMs: next.steady
        ? alignToGrid(now.getTime(), next.inMs, every, probeGridKey(run.c))
        : Math.max(1000, Math.round(jitter(next.inMs, 0.1, this.#d.random))),
    };
  }

  async #afterProbe(run: Run, row: InstanceRow): Promise<{ inMs: number; steady: boolean }> {
    const breaker = await this.#breakers.state(row.id);
    const after = probePlan(
      row,
      breaker,
      this.#breakers.settings.retryMs,
      this.#d.clock.now(),
      run.c.spec.healthCheck,
      false,
    );
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
  #writeStatus(run: Run, status: ConnectorStatus): Promise<boolean> {
    return publishStatus(this.#d, run.c, status, run.signal);
  }

  #audit(run: Run, row: InstanceRow | undefined, e: AuditEntry, store = this.#d.store): Promise<void> {
    // duration_ms: how long this reconcile had run when it wrote the row.
    const durationMs = Math.round(performance.now() - run.started);
    return store.appendAudit(audit(run.c, run.reconcileId, row, actorOf(run.c), { durationMs, ...e }));
  }
}
