// The Argo CD health check for Connectors (examples/argocd/connector-health.lua), run in a
// real Lua VM the way Argo CD runs it: the resource in the global `obj`, the chunk's
// returned table read as {status, message}, and only the libraries Argo CD opens for
// resource.customizations scripts (base, table, package: no string, no math), so a script
// that would fail in Argo CD fails here too.
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { runHealth, SCRIPT } from "../support/argoLua.ts";
import { load } from "js-yaml";
import { describe, expect, it } from "vitest";
import type { Connector, ConnectorStatus } from "../../controller/src/api/types.ts";
import { ConnectorError } from "../../controller/src/api/errors.ts";
import type { InstanceRow } from "../../controller/src/api/model.ts";
import { buildStatus } from "../../controller/src/reconcile/status.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const ARGOCD_CM = load(fs.readFileSync(path.join(ROOT, "examples/argocd/argocd-cm.yaml"), "utf8")) as {
  data: Record<string, string>;
};
const HEALTH_KEY = "resource.customizations.health.cynodeai.io_Connector";

type Cond = { type: string; status: "True" | "False" | "Unknown"; reason?: string; message?: string };

function connector(
  generation: number | undefined,
  status?: Record<string, unknown>,
): Record<string, unknown> {
  return {
    apiVersion: "cynodeai.io/v1alpha1",
    kind: "Connector",
    metadata: {
      name: "ops-mail",
      namespace: "team-ops",
      uid: "1b8f4c1e-2f0c-4a53-9d0e-3c2f1f6e0a11",
      ...(generation === undefined ? {} : { generation }),
    },
    spec: { type: "imap", typeVersion: 1, enabled: true },
    ...(status === undefined ? {} : { status }),
  };
}

const at = "2026-05-01T10:00:00Z";
const cond = (c: Cond) => ({ observedGeneration: 3, lastTransitionTime: at, ...c });
const observed = (conditions: Cond[], observedGeneration = 3) => ({
  observedGeneration,
  conditions: conditions.map(cond),
});

const READY: Cond = {
  type: "Ready",
  status: "True",
  reason: "Available",
  message: "connector is active and reachable",
};
const SYNCED: Cond = {
  type: "Synced",
  status: "True",
  reason: "ReconcileSuccess",
  message: "generation 3 is applied",
};
const HEALTHY: Cond = {
  type: "Healthy",
  status: "True",
  reason: "ConnectivityOK",
  message: "IMAP login and SELECT ok",
};
const UP_TO_DATE: Cond = {
  type: "UpToDate",
  status: "True",
  reason: "NoDrift",
  message: "instance matches the spec",
};

describe("Argo CD health check for Connectors (Lua, as Argo CD runs it)", () => {
  it("is the script argocd-cm.yaml carries, verbatim", () => {
    expect(ARGOCD_CM.data[HEALTH_KEY]).toBe(SCRIPT);
  });

  describe("stale or missing status => Progressing", () => {
    it("has no status yet", () => {
      expect(runHealth(connector(1))).toEqual({
        status: "Progressing",
        message: "Waiting for the controller to report status",
      });
    });

    it("has a status without observedGeneration", () => {
      expect(runHealth(connector(1, { conditions: [cond(READY)] }))).toEqual({
        status: "Progressing",
        message: "Waiting for the controller to observe the Connector",
      });
    });

    it("has a status for an older generation, however good it looks", () => {
      const h = runHealth(connector(4, observed([READY, SYNCED, HEALTHY], 3)));
      expect(h).toEqual({
        status: "Progressing",
        message: "Waiting for the controller to observe generation 4 (status is for generation 3)",
      });
    });

    it("prefers the stale generation over a Stalled condition of the old generation", () => {
      const stalled: Cond = { type: "Stalled", status: "True", reason: "InvalidConfig", message: "bad" };
      expect(runHealth(connector(4, observed([stalled], 3))).status).toBe("Progressing");
    });

    it("is current when observedGeneration is ahead of or equal to generation", () => {
      expect(runHealth(connector(3, observed([READY, SYNCED, HEALTHY], 3))).status).toBe("Healthy");
      expect(runHealth(connector(3, observed([READY, SYNCED, HEALTHY], 4))).status).toBe("Healthy");
    });

    it("reads the conditions when metadata.generation is absent", () => {
      expect(runHealth(connector(undefined, observed([READY, SYNCED, HEALTHY]))).status).toBe("Healthy");
    });
  });

  describe("Stalled=True => Degraded; passing trouble is not", () => {
    it("is Stalled with the reason and message of the Stalled condition", () => {
      const stalled: Cond = {
        type: "Stalled",
        status: "True",
        reason: "InvalidConfig",
        message: "spec.config.port: must be <= 65535",
      };
      const failedReady: Cond = { ...stalled, type: "Ready", status: "False" };
      const failedSync: Cond = { ...stalled, type: "Synced", status: "False" };
      expect(runHealth(connector(3, observed([failedReady, failedSync, stalled])))).toEqual({
        status: "Degraded",
        message: "InvalidConfig: spec.config.port: must be <= 65535",
      });
    });

    it("stays Healthy on Synced=False while the last good generation keeps it Ready (Vault briefly away)", () => {
      const notSynced: Cond = {
        type: "Synced",
        status: "False",
        reason: "VaultUnavailable",
        message: "Vault is sealed",
      };
      expect(runHealth(connector(3, observed([READY, notSynced, HEALTHY])))).toEqual({
        status: "Healthy",
        message: "Available: connector is active and reachable (VaultUnavailable: Vault is sealed)",
      });
    });

    it("puts Stalled before Disabled", () => {
      const disabled: Cond = {
        type: "Ready",
        status: "True",
        reason: "Disabled",
        message: "connector is disabled",
      };
      const stalled: Cond = { type: "Stalled", status: "True", reason: "PolicyDenied", message: "denied" };
      expect(runHealth(connector(3, observed([disabled, stalled])))).toEqual({
        status: "Degraded",
        message: "PolicyDenied: denied",
      });
    });

    it("does not treat Stalled=False, Synced=True or Synced=Unknown as degraded", () => {
      const notStalled: Cond = { type: "Stalled", status: "False", reason: "Fine" };
      const syncUnknown: Cond = { type: "Synced", status: "Unknown", reason: "Pending" };
      expect(runHealth(connector(3, observed([READY, notStalled, SYNCED, HEALTHY]))).status).toBe("Healthy");
      expect(runHealth(connector(3, observed([READY, syncUnknown, HEALTHY]))).status).toBe("Healthy");
    });
  });

  it("is Suspended when Ready=True with reason Disabled", () => {
    const disabled: Cond = {
      type: "Ready",
      status: "True",
      reason: "Disabled",
      message: "connector is disabled",
    };
    expect(runHealth(connector(3, observed([disabled, SYNCED, UP_TO_DATE])))).toEqual({
      status: "Suspended",
      message: "Disabled: connector is disabled",
    });
  });

  it("stays Healthy when Ready=True but one probe failed (Healthy=False, breaker closed), with its words", () => {
    const ready: Cond = {
      type: "Ready",
      status: "True",
      reason: "Degraded",
      message: "connector is degraded",
    };
    const sick: Cond = {
      type: "Healthy",
      status: "False",
      reason: "ConnectionRefused",
      message: "connect ECONNREFUSED 10.0.0.5:993",
    };
    expect(runHealth(connector(3, observed([ready, SYNCED, sick])))).toEqual({
      status: "Healthy",
      message: "Degraded: connector is degraded (ConnectionRefused: connect ECONNREFUSED 10.0.0.5:993)",
    });
  });

  it("is Healthy when Ready=True, and when Healthy is Unknown (not probed yet) or absent", () => {
    const expected = { status: "Healthy", message: "Available: connector is active and reachable" };
    expect(runHealth(connector(3, observed([READY, SYNCED, HEALTHY, UP_TO_DATE])))).toEqual(expected);
    const notProbed: Cond = { type: "Healthy", status: "Unknown", reason: "NotProbed" };
    expect(runHealth(connector(3, observed([READY, SYNCED, notProbed])))).toEqual(expected);
    expect(runHealth(connector(3, observed([READY])))).toEqual(expected);
  });

  describe("otherwise => Progressing", () => {
    it("has no conditions, or an empty list", () => {
      const expected = { status: "Progressing", message: "Waiting for the Ready condition" };
      expect(runHealth(connector(3, { observedGeneration: 3 }))).toEqual(expected);
      expect(runHealth(connector(3, { observedGeneration: 3, conditions: [] }))).toEqual(expected);
      expect(runHealth(connector(3, observed([SYNCED, HEALTHY])))).toEqual(expected);
    });

    it("is Reconciling, with its message", () => {
      const ready: Cond = {
        type: "Ready",
        status: "False",
        reason: "Provisioning",
        message: "first probe pending",
      };
      const reconciling: Cond = { ...ready, type: "Reconciling", status: "True" };
      expect(runHealth(connector(3, observed([ready, SYNCED, reconciling])))).toEqual({
        status: "Progressing",
        message: "Provisioning: first probe pending",
      });
    });

    it("is Ready=Unknown or Ready=False without a stall, with the Ready condition's words", () => {
      const unknown: Cond = { type: "Ready", status: "Unknown", reason: "Pending", message: "starting" };
      expect(runHealth(connector(3, observed([unknown])))).toEqual({
        status: "Progressing",
        message: "Pending: starting",
      });
      const expired: Cond = {
        type: "Ready",
        status: "False",
        reason: "CredentialExpired",
        message: "credentials were refused",
      };
      expect(runHealth(connector(3, observed([expired, SYNCED])))).toEqual({
        status: "Progressing",
        message: "CredentialExpired: credentials were refused",
      });
    });

    it("words a condition with only a reason, or neither reason nor message", () => {
      expect(
        runHealth(connector(3, observed([{ type: "Ready", status: "False", reason: "Pending" }]))),
      ).toEqual({
        status: "Progressing",
        message: "Ready is False: Pending",
      });
      expect(runHealth(connector(3, observed([{ type: "Stalled", status: "True" }])))).toEqual({
        status: "Degraded",
        message: "The controller cannot apply this generation",
      });
    });
  });

  it("ignores conditions of unknown types", () => {
    const warning: Cond = {
      type: "Deprecated",
      status: "True",
      reason: "TypeVersionDeprecated",
      message: "v1",
    };
    expect(runHealth(connector(3, observed([warning, READY, SYNCED, HEALTHY]))).status).toBe("Healthy");
  });

  describe("the status the reconciler writes (buildStatus) reads as", () => {
    const now = new Date(at);
    const base: Connector = connector(3) as unknown as Connector;
    const row = (state: string): InstanceRow =>
      ({
        id: "3f2c0000-0000-4000-8000-000000000001",
        state,
        appliedGeneration: 3,
        typeVersion: 1,
        configSchemaVersion: "1.2.0",
        lastSuccessAt: null,
        lastError: state === "active" || state === "disabled" ? null : "connect ECONNREFUSED 10.0.0.5:993",
        lastErrorClass: state === "active" || state === "disabled" ? null : "transient",
      }) as unknown as InstanceRow;
    const ok = { status: "True" as const, reason: "ConnectivityOK", message: "login ok" };
    const failing = {
      status: "False" as const,
      reason: "ConnectionRefused",
      message: "connect ECONNREFUSED",
    };
    const health = (status: ConnectorStatus) => runHealth({ ...connector(3), status });

    it("active and reachable => Healthy", () => {
      expect(health(buildStatus({ connector: base, now, row: row("active"), health: ok })).status).toBe(
        "Healthy",
      );
    });

    it("disabled => Suspended", () => {
      expect(health(buildStatus({ connector: base, now, row: row("disabled") })).status).toBe("Suspended");
    });

    it("degraded (a probe failed after it was active, breaker closed) => Healthy, saying so", () => {
      const h = health(buildStatus({ connector: base, now, row: row("degraded"), health: failing }));
      expect(h.status).toBe("Healthy");
      expect(h.message).toContain("ConnectionRefused: connect ECONNREFUSED");
    });

    it("a spec that fails validation => Degraded, naming the problem", () => {
      const failure = new ConnectorError(
        "validation_error",
        "InvalidConfig",
        "spec.config.port: must be <= 65535",
      );
      const h = health(buildStatus({ connector: base, now, row: undefined, failure }));
      expect(h).toEqual({ status: "Degraded", message: "InvalidConfig: spec.config.port: must be <= 65535" });
    });

    it("a transient failure (Synced=False) with no last good state => Progressing, not Degraded", () => {
      const failure = new ConnectorError("transient", "DatabaseUnavailable", "connection refused");
      expect(health(buildStatus({ connector: base, now, row: row("active"), failure })).status).toBe(
        "Progressing",
      );
    });

    it("provisioning => Progressing", () => {
      expect(health(buildStatus({ connector: base, now, row: row("provisioning") })).status).toBe(
        "Progressing",
      );
    });
  });

  it("runs without the string and math libraries, as in Argo CD (a script using them fails here)", () => {
    expect(() => runHealth(connector(1), 'return { status = string.lower("Healthy") }')).toThrow(/string/);
    expect(
      runHealth(connector(1), 'return { status = "Healthy", message = tostring(obj.metadata.generation) }'),
    ).toEqual({ status: "Healthy", message: "1" });
  });
});

describe("examples/argocd/application.yaml", () => {
  const app = load(fs.readFileSync(path.join(ROOT, "examples/argocd/application.yaml"), "utf8")) as {
    apiVersion: string;
    kind: string;
    spec: {
      source: { path: string; kustomize?: { commonAnnotations?: Record<string, string> } };
      syncPolicy: { syncOptions: string[] };
    };
  };

  it("syncs a directory of Connectors with server-side apply and the applied-by annotation", () => {
    expect(app.apiVersion).toBe("argoproj.io/v1alpha1");
    expect(app.kind).toBe("Application");
    expect(app.spec.syncPolicy.syncOptions).toContain("ServerSideApply=true");
    expect(app.spec.source.kustomize?.commonAnnotations?.["cynodeai.io/applied-by"]).toMatch(/^argocd\//);
  });
});
