import { beforeEach, describe, expect, it } from "vitest";
import { ConnectorError, TerminalError } from "../../controller/src/api/errors.ts";
import type { Connector, ConnectorType } from "../../controller/src/api/types.ts";
import { ConfigSchemaCache } from "../../controller/src/catalog/configSchemas.ts";
import { StaticCatalog } from "../../controller/src/catalog/fileCatalog.ts";
import type { Prober } from "../../controller/src/reconcile/ports.ts";
import { CircuitBreakers } from "../../controller/src/reconcile/breaker.ts";
import { alignToGrid } from "../../controller/src/reconcile/health.ts";
import { Reconciler, type ReconcileResult } from "../../controller/src/reconcile/reconciler.ts";
import { validateConnector } from "../../controller/src/reconcile/validate.ts";
import { ManualClock, MemoryEvents, MemoryStore, MemoryWriter, silentLogger } from "../support/memory.ts";

function mailType(): ConnectorType {
  const version = (v: number, lifecycle: "approved" | "deprecated" | "retired") => ({
    version: v,
    schemaVersion: `${v}.0.0`,
    lifecycle,
    configSchema: {
      type: "object",
      additionalProperties: false,
      required: ["host"],
      properties: {
        host: { type: "string", format: "hostname" },
        port: { type: "integer", minimum: 1, maximum: 65535, default: 993 },
        mailbox: { type: "string", default: "INBOX" },
      },
    },
    operations: [
      {
        name: "readInbox",
        mode: "sync" as const,
        class: "auto" as const,
        action: "connector.operation.read" as const,
        maxTimeoutMs: 1000,
      },
      {
        name: "sendMail",
        mode: "sync" as const,
        class: "approval_required" as const,
        action: "connector.operation.invoke" as const,
        maxTimeoutMs: 1000,
      },
      {
        name: "deleteMailbox",
        mode: "sync" as const,
        class: "forbidden" as const,
        action: "connector.operation.invoke" as const,
        maxTimeoutMs: 1000,
      },
    ],
    healthProbe: { kind: "imap" as const },
    limitsCap: { maxParallelInvocations: 8, rateLimit: { rps: 10, burst: 20 } },
  });
  return {
    apiVersion: "cynodeai.io/v1alpha1",
    kind: "ConnectorType",
    metadata: { name: "imap", resourceVersion: "1" },
    spec: {
      displayName: "IMAP",
      displayNameAr: "آي ماب",
      dataClassification: "confidential",
      approvalPolicy: "auto",
      versions: [version(1, "deprecated"), version(2, "approved"), version(3, "retired")],
    },
  };
}

function connector(): Connector {
  return {
    apiVersion: "cynodeai.io/v1alpha1",
    kind: "Connector",
    metadata: { name: "ops-mail", namespace: "team-ops", uid: "uid-1", generation: 1 },
    spec: {
      type: "imap",
      typeVersion: 2,
      enabled: true,
      owner: { type: "group", id: "g-7b2c" },
      config: { host: "imap.example.com", port: 993 },
      policy: { allowOperations: ["readInbox"], actionScope: ["connector.operation.read"] },
      limits: { maxParallelInvocations: 4, rateLimit: { rps: 2, burst: 5 } },
    },
  };
}

const okProber: Prober = { probe: async () => ({ ok: true, latencyMs: 3 }) };

describe("Reconciler", () => {
  let store: MemoryStore;
  let writer: MemoryWriter;
  let events: MemoryEvents;
  let clock: ManualClock;
  let catalog: StaticCatalog;
  let reconciler: Reconciler;
  let conn: Connector;
  /** A terminal failure (a generation that cannot be applied) ends the reconcile as a value here. */
  const run = (): Promise<ReconcileResult & { terminal?: ConnectorError }> =>
    reconciler.reconcile({ connector: conn, reconcileId: "r-1", log: silentLogger }).catch((err: unknown) => {
      if (err instanceof TerminalError) return { terminal: err.error };
      throw err;
    });
  const cond = (type: string) => conn.status?.conditions?.find((c) => c.type === type);
  const bump = (mutate: (c: Connector) => void) => {
    mutate(conn);
    conn.metadata.generation = (conn.metadata.generation ?? 0) + 1;
  };

  beforeEach(() => {
    store = new MemoryStore();
    writer = new MemoryWriter();
    events = new MemoryEvents();
    clock = new ManualClock();
    catalog = new StaticCatalog([mailType()]);
    reconciler = new Reconciler({
      catalog,
      schemas: new ConfigSchemaCache(),
      store,
      writer,
      events,
      clock,
      enabledFeatures: new Set(),
      prober: okProber,
      random: () => 0.5,
    });
    conn = connector();
  });

  it("creates one instance row bound to the uid, active and Ready", async () => {
    const result = await run();
    expect(store.rows).toHaveLength(1);
    const row = store.rows[0]!;
    expect(row.uid).toBe("uid-1");
    expect(row.config).toEqual({ host: "imap.example.com", port: 993, mailbox: "INBOX" }); // schema defaults applied
    expect(row.state).toBe("active");
    expect(row.appliedGeneration).toBe(1);
    expect(row.rateLimitPolicy).toEqual({ rps: 2, burst: 5 });
    expect(row.policy.operations).toEqual([
      { name: "readInbox", class: "auto", action: "connector.operation.read" },
    ]);
    expect(conn.status?.state).toBe("active");
    expect(conn.status?.instanceId).toBe(row.id);
    expect(cond("Ready")).toMatchObject({ status: "True", reason: "Available", observedGeneration: 1 });
    expect(cond("Synced")).toMatchObject({ status: "True", reason: "ReconcileSuccess" });
    expect(cond("Healthy")).toMatchObject({ status: "True", reason: "ConnectivityOK" });
    expect(cond("Stalled")).toBeUndefined();
    expect(conn.metadata.finalizers).toContain("cynodeai.io/instance-cleanup");
    // The next probe lands on this connector's grid point, one interval or a little more away.
    expect(result.requeueAfterMs).toBeGreaterThanOrEqual(298_000);
    expect(result.requeueAfterMs).toBeLessThan(600_000);
    expect(store.audit.map((a) => a.operation)).toEqual(["created", "state_changed"]);
  });

  it("writes nothing on a reconcile where nothing changed", async () => {
    await run();
    const writes = store.writes;
    const statusWrites = writer.statusWrites.length;
    const audits = store.audit.length;
    clock.advance(10_000); // within the health interval: no probe is due
    await run();
    await run();
    expect(store.writes).toBe(writes);
    expect(writer.statusWrites.slice(statusWrites)).toEqual([]);
    expect(store.audit.length).toBe(audits);
    expect(writer.finalizerAdds).toBe(1);
  });

  it("updates only the column that changed", async () => {
    await run();
    store.updates = [];
    bump((c) => (c.spec.config = { host: "imap.example.com", port: 143 }));
    await run();
    expect(store.updates[0]).toEqual({
      appliedGeneration: 2,
      specHash: expect.any(String),
      config: { host: "imap.example.com", port: 143, mailbox: "INBOX" },
      state: "active",
    });
    expect(Object.keys(store.updates[0]!).sort()).toEqual([
      "appliedGeneration",
      "config",
      "specHash",
      "state",
    ]);
    const updated = store.audit.find((a) => a.operation === "updated");
    expect(updated?.details).toMatchObject({ fields: ["config.port"], generation: 2 });
    expect(conn.status?.appliedGeneration).toBe(2);
  });

  it("keeps the last valid generation when an update fails validation, and sets Stalled", async () => {
    await run();
    const before = structuredClone(store.rows[0]!);
    bump((c) => (c.spec.config = { host: "imap.example.com", port: 70000 }));
    const result = await run();
    expect(result.requeueAfterMs).toBeUndefined();
    expect(store.rows[0]).toEqual(before);
    expect(cond("Stalled")).toMatchObject({ status: "True", reason: "InvalidConfig", observedGeneration: 2 });
    expect(cond("Stalled")?.message).toContain("spec.config.port: must be <= 65535");
    expect(cond("Ready")).toMatchObject({ status: "False", reason: "InvalidConfig" });
    expect(conn.status?.appliedGeneration).toBe(1);
    expect(conn.status?.observedGeneration).toBe(2);
    expect(conn.status?.state).toBe("active"); // the working instance keeps running
    expect(conn.status?.lastError).toMatchObject({ class: "validation_error" });
    expect(events.events.at(-1)).toMatchObject({ type: "Warning", reason: "InvalidConfig" });
    expect(store.audit.at(-1)).toMatchObject({ operation: "validation_failed", outcome: "failure" });

    bump((c) => (c.spec.config = { host: "imap.example.com", port: 993 }));
    await run();
    expect(cond("Stalled")).toBeUndefined();
    expect(cond("Ready")).toMatchObject({ status: "True" });
    expect(conn.status?.appliedGeneration).toBe(3);
  });

  it("refuses a retired version", async () => {
    conn.spec.typeVersion = 3;
    await run();
    expect(store.rows).toHaveLength(0);
    expect(cond("Stalled")).toMatchObject({ status: "True", reason: "RetiredTypeVersion" });
    expect(cond("Stalled")?.message).toContain("spec.typeVersion");
    expect(conn.status?.state).toBe("error");
  });

  it("warns about a deprecated version but applies it", async () => {
    conn.spec.typeVersion = 1;
    await run();
    expect(store.rows).toHaveLength(1);
    expect(cond("Ready")?.status).toBe("True");
    expect(cond("Deprecated")).toMatchObject({ status: "True", reason: "TypeVersionDeprecated" });
    expect(cond("Deprecated")?.message).toContain("move to version 2");
  });

  it("refuses a forbidden operation as policy_denied", async () => {
    conn.spec.policy = { allowOperations: ["readInbox", "deleteMailbox"] };
    await run();
    expect(store.rows).toHaveLength(0);
    expect(cond("Stalled")).toMatchObject({ status: "True", reason: "PolicyDenied" });
    expect(cond("Stalled")?.message).toContain(
      'spec.policy.allowOperations[1]: operation "deleteMailbox" is forbidden',
    );
    expect(conn.status?.lastError?.class).toBe("policy_denied");
  });

  it("refuses an operation outside the type and one the action scope does not grant", async () => {
    conn.spec.policy = { allowOperations: ["readInbox", "purgeAll"] };
    await run();
    expect(cond("Stalled")?.message).toContain(
      'operation "purgeAll" is not an operation of connector type "imap"',
    );
    bump(
      (c) => (c.spec.policy = { allowOperations: ["sendMail"], actionScope: ["connector.operation.read"] }),
    );
    await run();
    expect(cond("Stalled")?.message).toContain(
      'operation "sendMail" needs action "connector.operation.invoke"',
    );
  });

  it("marks approval-required operations as such in the stored policy", async () => {
    conn.spec.policy = { allowOperations: ["readInbox", "sendMail"] };
    await run();
    expect(store.rows[0]!.policy).toEqual({
      actionScope: ["connector.operation.invoke", "connector.operation.read"],
      operations: [
        { name: "readInbox", class: "auto", action: "connector.operation.read" },
        { name: "sendMail", class: "approval_required", action: "connector.operation.invoke" },
      ],
    });
  });

  it("refuses limits over the type's cap", async () => {
    conn.spec.limits = { maxParallelInvocations: 9, rateLimit: { rps: 11, burst: 20 } };
    await run();
    expect(store.rows).toHaveLength(0);
    expect(cond("Stalled")).toMatchObject({ reason: "LimitsExceeded" });
    expect(cond("Stalled")?.message).toContain(
      "spec.limits.maxParallelInvocations: 9 is over the connector type's cap of 8",
    );
    expect(cond("Stalled")?.message).toContain("spec.limits.rateLimit.rps: 11 is over");
  });

  it("refuses an unknown type and a feature-gated version until the flag is enabled", async () => {
    conn.spec.type = "nntp";
    await run();
    expect(cond("Stalled")).toMatchObject({ reason: "UnknownType" });

    const gated = mailType();
    gated.spec.featureFlag = "mail-connectors";
    catalog.types.set("imap", gated);
    bump((c) => (c.spec.type = "imap"));
    await run();
    expect(cond("Stalled")).toMatchObject({ reason: "FeatureDisabled" });
  });

  it("is disabled and Ready=True/Disabled when enabled is false, and probes nothing", async () => {
    let probes = 0;
    reconciler = new Reconciler({
      catalog,
      schemas: new ConfigSchemaCache(),
      store,
      writer,
      events,
      clock,
      enabledFeatures: new Set(),
      prober: { probe: async () => (probes++, { ok: true, latencyMs: 1 }) },
    });
    conn.spec.enabled = false;
    const result = await run();
    expect(store.rows[0]!.state).toBe("disabled");
    expect(store.rows[0]!.enabled).toBe(false);
    expect(conn.status?.state).toBe("disabled");
    expect(cond("Ready")).toMatchObject({ status: "True", reason: "Disabled" });
    expect(probes).toBe(0);
    expect(result.requeueAfterMs).toBeUndefined();

    bump((c) => (c.spec.enabled = true));
    await run();
    expect(conn.status?.state).toBe("active");
    expect(probes).toBe(1);
    expect(store.audit.map((a) => a.operation)).toContain("enabled");
  });

  it("keeps lastTransitionTime when a condition's status does not flip", async () => {
    await run();
    const first = cond("Ready")!.lastTransitionTime;
    clock.advance(400_000); // a probe is due and succeeds again
    await run();
    expect(cond("Ready")!.lastTransitionTime).toBe(first);
    bump((c) => (c.spec.config = { host: "imap.example.com", port: 0 }));
    clock.advance(1000);
    await run();
    expect(cond("Ready")!.lastTransitionTime).not.toBe(first);
  });

  it("corrects drift: a changed row with an unchanged spec is overwritten and reported", async () => {
    await run();
    store.rows[0]!.config = { host: "evil.example.com", port: 993, mailbox: "INBOX" };
    await run();
    expect(store.rows[0]!.config).toEqual({ host: "imap.example.com", port: 993, mailbox: "INBOX" });
    expect(conn.status?.drift).toMatchObject({ detected: false, corrections: 1 });
    expect(conn.status?.drift?.fields).toBeUndefined();
    expect(conn.status?.drift?.lastCorrectedAt).toBeDefined();
    expect(JSON.stringify(conn.status)).not.toContain("evil.example.com");
    expect(cond("UpToDate")).toMatchObject({ status: "True", reason: "NoDrift" });
    expect(store.audit.at(-1)).toMatchObject({
      operation: "drift_corrected",
      details: { fields: ["config.host"] },
    });
    expect(events.events.some((e) => e.reason === "DriftCorrected" && e.type === "Warning")).toBe(true);
  });

  it("reports drift without correcting it under the Observe management policy", async () => {
    conn.metadata.annotations = { "cynodeai.io/management-policy": "Observe" };
    await run();
    store.rows[0]!.enabled = false;
    await run();
    expect(store.rows[0]!.enabled).toBe(false);
    expect(cond("UpToDate")).toMatchObject({ status: "False", reason: "DriftDetected" });
  });

  it("soft-deletes the row and removes the finalizer on deletion; Orphan keeps the row", async () => {
    await run();
    conn.metadata.deletionTimestamp = "2026-01-01T00:10:00Z";
    await run();
    expect(store.rows[0]!.deletedAt).not.toBeNull();
    expect(store.rows[0]!.state).toBe("disabled");
    expect(conn.metadata.finalizers).toEqual([]);
    expect(store.audit.at(-1)?.operation).toBe("deleted");

    conn = connector();
    conn.metadata.uid = "uid-2"; // recreated under the same name: a new instance
    conn.metadata.annotations = { "cynodeai.io/deletion-policy": "Orphan" };
    await run();
    expect(store.rows.filter((r) => !r.deletedAt)).toHaveLength(1);
    conn.metadata.deletionTimestamp = "2026-01-01T00:20:00Z";
    await run();
    expect(store.rows.find((r) => r.uid === "uid-2")!.deletedAt).toBeNull();
    expect(conn.metadata.finalizers).toEqual([]);
  });

  it("retries a transient failure through the queue and says so in status", async () => {
    await run();
    store.findByUid = async () => {
      throw new Error("connect ECONNREFUSED 127.0.0.1:5432");
    };
    bump((c) => (c.spec.config = { host: "imap.example.com", port: 143 }));
    await expect(run()).rejects.toMatchObject({ errorClass: "transient" });
    expect(cond("Synced")).toMatchObject({ status: "False", reason: "InternalError" });
    expect(cond("Stalled")).toBeUndefined();
    // The working connector's last good state stands while the database is away.
    expect(cond("Ready")).toMatchObject({ status: "True", reason: "Available" });
    expect(conn.status?.state).toBe("active");
    expect(conn.status?.instanceId).toBe(store.rows[0]!.id);
  });
});

describe("probe scheduling on a per-key grid", () => {
  it("brings connectors that share a secret due at the same instant, and spreads the others", () => {
    const interval = 300_000;
    const t0 = Date.parse("2026-01-01T00:00:00Z");
    // Two connectors sharing a secret, probed 7 s apart: their next probes coincide.
    const a = t0 + alignToGrid(t0, interval, interval, "team-a/vault/shared/");
    const b = t0 + 7000 + alignToGrid(t0 + 7000, interval, interval, "team-a/vault/shared/");
    expect(a).toBe(b);
    // Different keys land on different offsets.
    const offsets = new Set(
      Array.from({ length: 50 }, (_, i) => (t0 + alignToGrid(t0, interval, interval, `uid-${i}`)) % interval),
    );
    expect(offsets.size).toBe(50);
    // Never sooner than the interval less its slack, never later than twice the interval.
    for (let i = 0; i < 50; i++) {
      const d = alignToGrid(t0, interval, interval, `uid-${i}`);
      expect(d).toBeGreaterThanOrEqual(interval - 2000);
      expect(d).toBeLessThan(2 * interval);
    }
  });
});

describe("Reconciler health and the circuit breaker", () => {
  const results: (
    | { ok: true }
    | {
        ok: false;
        reason?: string;
        errorClass?: "transient" | "policy_denied" | "permanent";
        message: string;
      }
  )[] = [];
  let probes = 0;
  const prober: Prober = {
    probe: async () => {
      probes++;
      const next = results.shift() ?? { ok: true };
      if (next.ok) return { ok: true, latencyMs: 2 };
      const reason = next.reason === "auth" ? "AuthenticationFailed" : "ConnectionFailed";
      return {
        ok: false,
        latencyMs: 2,
        error: new ConnectorError(next.errorClass ?? "transient", reason, next.message),
      };
    },
  };
  let conn: Connector;
  let clock: ManualClock;
  let store: MemoryStore;
  let reconciler: Reconciler;
  let breakers: CircuitBreakers;
  const run = () => reconciler.reconcile({ connector: conn, reconcileId: "r", log: silentLogger });
  const cond = (type: string) => conn.status?.conditions?.find((c) => c.type === type);

  beforeEach(() => {
    results.length = 0;
    probes = 0;
    clock = new ManualClock();
    store = new MemoryStore();
    breakers = new CircuitBreakers({ failureThreshold: 3, cooldownMs: 60_000, retryMs: 5_000 });
    reconciler = new Reconciler({
      catalog: new StaticCatalog([mailType()]),
      schemas: new ConfigSchemaCache(),
      store,
      writer: new MemoryWriter(),
      events: new MemoryEvents(),
      clock,
      enabledFeatures: new Set(),
      prober,
      breakers,
      random: () => 0.5,
    });
    conn = connector();
  });

  it("degrades an active connector on a transient failure, opens the breaker at the threshold, and a half-open probe recovers it", async () => {
    await run();
    expect(conn.status?.state).toBe("active");

    results.push({ ok: false, errorClass: "transient", message: "connect ECONNREFUSED 127.0.0.1:993" });
    clock.advance(300_000);
    let r = await run();
    expect(conn.status?.state).toBe("degraded");
    expect(cond("Ready")).toMatchObject({ status: "True", reason: "Degraded" });
    expect(cond("Healthy")).toMatchObject({ status: "False", reason: "ConnectivityFailed" });
    expect(r.requeueAfterMs).toBe(5_000); // failing: probed again soon

    results.push({ ok: false, errorClass: "transient", message: "connect ECONNREFUSED 127.0.0.1:993" });
    clock.advance(5_000);
    await run();
    expect(conn.status?.state).toBe("degraded");

    results.push({ ok: false, errorClass: "transient", message: "connect ECONNREFUSED 127.0.0.1:993" });
    clock.advance(5_000);
    r = await run();
    expect(conn.status?.state).toBe("error");
    expect(cond("Healthy")).toMatchObject({ status: "False", reason: "CircuitOpen" });
    expect(cond("Ready")).toMatchObject({ status: "False", reason: "Unavailable" });
    expect(breakers.trips).toBe(1);
    expect(r.requeueAfterMs).toBe(60_000);

    const before = probes;
    clock.advance(30_000); // still cooling down: no probe
    await run();
    expect(probes).toBe(before);
    expect(cond("Healthy")?.reason).toBe("CircuitOpen");

    clock.advance(30_000); // cooldown over: one half-open probe, which succeeds
    await run();
    expect(probes).toBe(before + 1);
    expect(conn.status?.state).toBe("active");
    expect(cond("Healthy")).toMatchObject({ status: "True", reason: "ConnectivityOK" });
    expect(store.rows[0]!.lastSuccessAt?.getTime()).toBe(clock.now().getTime());
    expect(store.audit.filter((a) => a.operation === "state_changed").map((a) => a.details)).toEqual([
      { from: "provisioning", to: "active" },
      { from: "active", to: "degraded" },
      { from: "degraded", to: "error" },
      { from: "error", to: "active" },
    ]);
  });

  it("re-opens the breaker when the half-open probe fails", async () => {
    await run();
    for (let i = 0; i < 3; i++) {
      results.push({ ok: false, errorClass: "transient", message: "timeout" });
      clock.advance(300_000);
      await run();
    }
    expect(breakers.phase(store.rows[0]!.id, clock.now())).toBe("open");
    results.push({ ok: false, errorClass: "transient", message: "timeout" });
    clock.advance(60_000);
    await run();
    expect(breakers.phase(store.rows[0]!.id, clock.now())).toBe("open");
    expect(breakers.trips).toBe(1);
  });

  it("marks refused credentials as credential_expired without counting a breaker failure", async () => {
    results.push({
      ok: false,
      reason: "auth",
      errorClass: "permanent",
      message: "LOGIN failed: authentication failed",
    });
    await run();
    expect(conn.status?.state).toBe("credential_expired");
    expect(cond("Healthy")).toMatchObject({ status: "False", reason: "AuthenticationFailed" });
    expect(cond("Ready")).toMatchObject({ status: "False", reason: "CredentialExpired" });
    expect(breakers.failures(store.rows[0]!.id)).toBe(0);
  });

  it("reports a host outside the egress allowlist as EgressDenied", async () => {
    results.push({
      ok: false,
      errorClass: "policy_denied",
      reason: "egress",
      message: "host evil.example.net is not in the egress allowlist of type imap",
    });
    await run();
    expect(conn.status?.state).toBe("error");
    expect(cond("Healthy")).toMatchObject({ status: "False", reason: "EgressDenied" });
    expect(conn.status?.lastError?.class).toBe("policy_denied");
  });
});

describe("validation of strings the database or a log could not hold safely", () => {
  const ctx = () => ({
    catalog: new StaticCatalog([mailType()]),
    schemas: new ConfigSchemaCache(),
    enabledFeatures: new Set<string>(),
  });
  const refused = (edit: (c: Connector) => void) => {
    const c = connector();
    edit(c);
    try {
      validateConnector(c, ctx());
    } catch (err) {
      return (err as { problems: { path: string; message: string }[] }).problems;
    }
    return [];
  };

  it("refuses U+0000 and unpaired surrogates with their field path", () => {
    expect(refused((c) => (c.spec.config = { host: "a\u0000b" }))).toEqual([
      { path: "spec.config.host", message: "must not contain U+0000 or unpaired UTF-16 surrogates" },
    ]);
    expect(refused((c) => (c.spec.projectId = "p\ud800"))[0]?.path).toBe("spec.projectId");
    expect(refused((c) => (c.spec.config = { host: "imap.example.com", mailbox: "😀" }))).toEqual([]); // a real pair is fine
  });

  it("refuses a URL with a user or password in config", () => {
    expect(
      refused(
        (c) => (c.spec.config = { host: "imap.example.com", mailbox: "https://ops:hunter2@x.example.com/" }),
      ),
    ).toEqual([
      {
        path: "spec.config.mailbox",
        message: "must not carry a user or password in the URL (use credentials.secretRef)",
      },
    ]);
  });
});
