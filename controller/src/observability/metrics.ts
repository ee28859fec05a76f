// Prometheus metrics with controller-runtime's names where they apply, so existing
// dashboards work, plus the connector metrics (instances by state, the spec's
// connector_health ratio, probes, drift, secrets, breakers, watches).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Connector } from "../api/types.ts";
import type { ReconcileMetrics } from "../reconcile/ports.ts";

const CONTROLLER = "connector";

export interface MetricSources {
  connectors?: () => Connector[];
  controller?: { readonly activeWorkers: number };
  queue?: { processingSince(): number[] };
}

export class Metrics {
  readonly registry = new Registry();
  readonly reconcileTotal: Counter<"controller" | "result">;
  readonly reconcileErrors: Counter<"controller">;
  readonly reconcileTime: Histogram<"controller">;
  readonly maxConcurrent: Gauge<"controller">;
  readonly activeWorkers: Gauge<"controller">;
  readonly queueDepth: Gauge<"name">;
  readonly queueAdds: Counter<"name">;
  readonly queueLatency: Histogram<"name">;
  readonly workDuration: Histogram<"name">;
  readonly retries: Counter<"name">;
  readonly unfinishedWork: Gauge<"name">;
  readonly longestRunning: Gauge<"name">;
  readonly probes: Counter<"kind" | "outcome">;
  readonly probeDuration: Histogram<"kind">;
  readonly driftCorrections: Counter<"type">;
  readonly secretResolutions: Counter<"provider" | "result">;
  readonly breakerTrips: Counter<"type">;
  readonly eventsDropped: Counter;
  readonly watchRestarts: Counter<"informer" | "reason">;
  readonly relists: Counter<"informer">;
  readonly leader: Gauge;

  readonly terminalErrors: Counter<"controller">;
  /** What the gauges read at scrape time; set by observe() once the controller exists. */
  #sources: MetricSources = {};

  constructor() {
    const sources = (): MetricSources => this.#sources;
    const r = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    const buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
    this.reconcileTotal = new Counter({
      name: "controller_runtime_reconcile_total",
      help: "Total number of reconciliations per controller",
      labelNames: ["controller", "result"],
      registers: r,
    });
    this.reconcileErrors = new Counter({
      name: "controller_runtime_reconcile_errors_total",
      help: "Total number of reconciliation errors per controller",
      labelNames: ["controller"],
      registers: r,
    });
    this.reconcileTime = new Histogram({
      name: "controller_runtime_reconcile_time_seconds",
      help: "Length of time per reconciliation per controller",
      labelNames: ["controller"],
      buckets,
      registers: r,
    });
    this.maxConcurrent = new Gauge({
      name: "controller_runtime_max_concurrent_reconciles",
      help: "Maximum number of concurrent reconciles per controller",
      labelNames: ["controller"],
      registers: r,
    });
    this.activeWorkers = new Gauge({
      name: "controller_runtime_active_workers",
      help: "Number of currently used workers per controller",
      labelNames: ["controller"],
      registers: r,
      collect() {
        const controller = sources().controller;
        if (controller) this.set({ controller: CONTROLLER }, controller.activeWorkers);
      },
    });
    this.queueDepth = new Gauge({
      name: "workqueue_depth",
      help: "Current depth of workqueue",
      labelNames: ["name"],
      registers: r,
    });
    this.queueAdds = new Counter({
      name: "workqueue_adds_total",
      help: "Total number of adds handled by workqueue",
      labelNames: ["name"],
      registers: r,
    });
    this.queueLatency = new Histogram({
      name: "workqueue_queue_duration_seconds",
      help: "How long in seconds an item stays in workqueue before being requested",
      labelNames: ["name"],
      buckets,
      registers: r,
    });
    this.workDuration = new Histogram({
      name: "workqueue_work_duration_seconds",
      help: "How long in seconds processing an item from workqueue takes",
      labelNames: ["name"],
      buckets,
      registers: r,
    });
    this.retries = new Counter({
      name: "workqueue_retries_total",
      help: "Total number of retries handled by workqueue",
      labelNames: ["name"],
      registers: r,
    });
    const since = () => (sources().queue?.processingSince() ?? []).map((t) => (Date.now() - t) / 1000);
    this.unfinishedWork = new Gauge({
      name: "workqueue_unfinished_work_seconds",
      help: "How many seconds of work has been done that is in progress and hasn't been observed by work_duration",
      labelNames: ["name"],
      registers: r,
      collect() {
        this.set(
          { name: CONTROLLER },
          since().reduce((a, b) => a + b, 0),
        );
      },
    });
    this.longestRunning = new Gauge({
      name: "workqueue_longest_running_processor_seconds",
      help: "How many seconds has the longest running processor for workqueue been running",
      labelNames: ["name"],
      registers: r,
      collect() {
        this.set({ name: CONTROLLER }, Math.max(0, ...since()));
      },
    });
    new Gauge({
      name: "connector_instances",
      help: "Connectors by state and type (from their status)",
      labelNames: ["state", "type"],
      registers: r,
      collect() {
        this.reset();
        for (const c of sources().connectors?.() ?? [])
          this.inc({ state: c.status?.state ?? "unknown", type: c.spec.type });
      },
    });
    // As External Secrets' externalsecret_status_condition: 1 for each condition's current
    // status, 0 for the others, so an alert can name the Connector (and the reason is in status).
    new Gauge({
      name: "connector_status_condition",
      help: "A Connector's conditions (type is the condition's): 1 for the status it has now, 0 for the others",
      labelNames: ["namespace", "name", "type", "status"],
      registers: r,
      collect() {
        this.reset();
        for (const c of sources().connectors?.() ?? [])
          for (const cond of c.status?.conditions ?? [])
            for (const status of ["True", "False", "Unknown"])
              this.set(
                { namespace: c.metadata.namespace ?? "", name: c.metadata.name, type: cond.type, status },
                cond.status === status ? 1 : 0,
              );
      },
    });
    new Gauge({
      name: "connector_health",
      help: "Connectors with state active / all enabled connectors (the spec's connector_health)",
      registers: r,
      collect() {
        const enabled = (sources().connectors?.() ?? []).filter((c) => c.spec.enabled !== false);
        this.set(
          enabled.length ? enabled.filter((c) => c.status?.state === "active").length / enabled.length : 1,
        );
      },
    });
    this.probes = new Counter({
      name: "connector_probe_total",
      help: "Health probes by kind and outcome",
      labelNames: ["kind", "outcome"],
      registers: r,
    });
    this.probeDuration = new Histogram({
      name: "connector_probe_duration_seconds",
      help: "Health probe duration",
      labelNames: ["kind"],
      buckets,
      registers: r,
    });
    this.driftCorrections = new Counter({
      name: "connector_drift_corrections_total",
      help: "Instance rows overwritten because they drifted from the spec",
      labelNames: ["type"],
      registers: r,
    });
    this.secretResolutions = new Counter({
      name: "connector_secret_resolutions_total",
      help: "Secret resolutions by provider and result",
      labelNames: ["provider", "result"],
      registers: r,
    });
    this.breakerTrips = new Counter({
      name: "connector_circuit_breaker_trips_total",
      help: "Circuit breakers opened",
      labelNames: ["type"],
      registers: r,
    });
    this.eventsDropped = new Counter({
      name: "connector_events_dropped_total",
      help: "Kubernetes Events dropped because the recorder's backlog was full",
      registers: r,
    });
    this.watchRestarts = new Counter({
      name: "connector_controller_watch_restarts_total",
      help: "Watches restarted, by informer and reason",
      labelNames: ["informer", "reason"],
      registers: r,
    });
    this.relists = new Counter({
      name: "connector_controller_relists_total",
      help: "Full lists by informer",
      labelNames: ["informer"],
      registers: r,
    });
    this.terminalErrors = new Counter({
      name: "controller_runtime_terminal_reconcile_errors_total",
      help: "Total number of terminal reconciliation errors per controller",
      labelNames: ["controller"],
      registers: r,
    });
    this.leader = new Gauge({
      name: "leader_election_master_status",
      help: "1 while this replica holds the lease",
      labelNames: ["name"],
      registers: r,
    });
    // Series that exist from the start, so a dashboard shows 0 rather than no data.
    this.queueDepth.set({ name: CONTROLLER }, 0);
    this.queueAdds.inc({ name: CONTROLLER }, 0);
    this.retries.inc({ name: CONTROLLER }, 0);
    this.reconcileErrors.inc({ controller: CONTROLLER }, 0);
  }

  queue() {
    const name = { name: CONTROLLER };
    return {
      add: () => this.queueAdds.inc(name),
      depth: (n: number) => this.queueDepth.set(name, n),
      queueLatency: (s: number) => this.queueLatency.observe(name, s),
      workDuration: (s: number) => this.workDuration.observe(name, s),
      retry: () => this.retries.inc(name),
    };
  }

  informer(informer: string) {
    return {
      relist: () => this.relists.inc({ informer }),
      watchRestart: (reason: string) => this.watchRestarts.inc({ informer, reason }),
    };
  }

  reconciler(): ReconcileMetrics {
    return {
      probe: (kind, outcome, seconds) => {
        this.probes.inc({ kind, outcome });
        this.probeDuration.observe({ kind }, seconds);
      },
      breakerTrip: (type) => this.breakerTrips.inc({ type }),
      driftCorrected: (type) => this.driftCorrections.inc({ type }),
      secretResolution: (provider, result) => this.secretResolutions.inc({ provider, result }),
    };
  }

  /** Hands the gauges what they read at scrape time. */
  observe(sources: MetricSources): void {
    this.#sources = sources;
  }

  /** A terminal error counts as an error, and as terminal, as controller-runtime counts them. */
  reconcileFinished(outcome: "success" | "error" | "terminal" | "requeue_after", seconds: number): void {
    const result = outcome === "terminal" ? "error" : outcome;
    this.reconcileTotal.inc({ controller: CONTROLLER, result });
    if (result === "error") this.reconcileErrors.inc({ controller: CONTROLLER });
    if (outcome === "terminal") this.terminalErrors.inc({ controller: CONTROLLER });
    this.reconcileTime.observe({ controller: CONTROLLER }, seconds);
  }
}
