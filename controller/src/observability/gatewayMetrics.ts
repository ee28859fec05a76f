// The gateway's Prometheus metrics (spec §10.2): invocations by type, operation and outcome
// (the outcome is "success" or the failure class), latency, retries, quota refusals,
// breaker trips, calls in flight, jobs by state, dead letters, and the audit rows waiting.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface GatewayMetricSources {
  inFlight?: () => number;
  auditPending?: () => number;
  /** Jobs by state and dead letters, read at scrape time (a few queries, not per call). */
  jobCounts?: () => Promise<{ byState: Record<string, number>; deadLetters: number }>;
}

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly invocations: Counter<"type" | "operation" | "outcome">;
  readonly duration: Histogram<"type" | "operation">;
  readonly retries: Counter<"type" | "operation">;
  readonly quotaExceeded: Counter<"scope">;
  readonly breakerTrips: Counter<"type">;
  readonly auditRowsWritten: Counter;
  #sources: GatewayMetricSources = {};

  constructor() {
    const registers = [this.registry];
    const sources = () => this.#sources;
    collectDefaultMetrics({ register: this.registry });
    this.invocations = new Counter({
      name: "connector_invocations_total",
      help: "Operation invocations by connector type, operation and outcome (success, or the failure class)",
      labelNames: ["type", "operation", "outcome"],
      registers,
    });
    this.duration = new Histogram({
      name: "connector_invocation_duration_seconds",
      help: "Time from a call's arrival to its answer (sync), or a job's run (async)",
      labelNames: ["type", "operation"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.retries = new Counter({
      name: "connector_invocation_retries_total",
      help: "Retries of failed attempts (transient failures, per the operation's policy and the retry budget)",
      labelNames: ["type", "operation"],
      registers,
    });
    this.quotaExceeded = new Counter({
      name: "connector_quota_exceeded_total",
      help: "Calls refused by a rate limit, by its scope (instance, user, project)",
      labelNames: ["scope"],
      registers,
    });
    this.breakerTrips = new Counter({
      name: "connector_circuit_breaker_trips_total",
      help: "Circuit breakers opened by gateway calls",
      labelNames: ["type"],
      registers,
    });
    this.auditRowsWritten = new Counter({
      name: "connector_audit_rows_written_total",
      help: "Audit rows written (in batches)",
      registers,
    });
    new Gauge({
      name: "connector_invocations_in_flight",
      help: "Calls this replica is running now",
      registers,
      collect() {
        this.set(sources().inFlight?.() ?? 0);
      },
    });
    new Gauge({
      name: "connector_audit_rows_pending",
      help: "Audit rows recorded and not yet written",
      registers,
      collect() {
        this.set(sources().auditPending?.() ?? 0);
      },
    });
    new Gauge({
      name: "connector_jobs",
      help: "Async jobs by state",
      labelNames: ["state"],
      registers,
      async collect() {
        const counts = await sources()
          .jobCounts?.()
          .catch(() => undefined);
        if (!counts) return;
        this.reset();
        for (const [state, n] of Object.entries(counts.byState)) this.set({ state }, n);
      },
    });
    new Gauge({
      name: "connector_dead_letters",
      help: "Jobs whose retries ran out, waiting in the dead-letter queue",
      registers,
      async collect() {
        const counts = await sources()
          .jobCounts?.()
          .catch(() => undefined);
        if (counts) this.set(counts.deadLetters);
      },
    });
  }

  observe(sources: GatewayMetricSources): void {
    this.#sources = sources;
  }

  finished(type: string, operation: string, outcome: string, seconds: number): void {
    this.invocations.inc({ type, operation, outcome });
    this.duration.observe({ type, operation }, seconds);
  }
}
