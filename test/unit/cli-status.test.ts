// connectorctl status: readable at a glance (a table as kubectl prints one), and in full for one.
import { describe, expect, it } from "vitest";
import type { Connector } from "../../controller/src/api/types.ts";
import { formatStatusDetail, formatStatusTable, summarize } from "../../controller/src/cli/status.ts";
import { humanDuration } from "../../controller/src/cli/table.ts";

const now = new Date("2025-06-01T12:00:00Z");
const ago = (s: number) => new Date(now.getTime() - s * 1000).toISOString();
const cond = (type: string, status: "True" | "False", reason: string, message = "", since = 300) => ({
  type,
  status,
  reason,
  message,
  lastTransitionTime: ago(since),
});

function connector(name: string, ns: string, status?: Connector["status"], generation = 1): Connector {
  return {
    apiVersion: "cynodeai.io/v1alpha1",
    kind: "Connector",
    metadata: { name, namespace: ns, generation, creationTimestamp: ago(7200) },
    spec: { type: "imap", typeVersion: 1, owner: { type: "group", id: "g" } },
    ...(status ? { status } : {}),
  } as Connector;
}

const healthy = connector("ops-mail", "team-ops", {
  observedGeneration: 1,
  state: "active",
  instanceId: "3f2c0000-0000-4000-8000-000000000001",
  conditions: [
    cond("Ready", "True", "Available"),
    cond("Synced", "True", "ReconcileSuccess"),
    cond("Healthy", "True", "ConnectivityOK"),
    cond("UpToDate", "True", "NoDrift"),
  ],
  drift: { detected: false, corrections: 2, lastCorrectedAt: ago(60) },
});
const broken = connector(
  "support-inbox",
  "team-support",
  {
    observedGeneration: 3,
    appliedGeneration: 2,
    state: "error",
    lastError: {
      class: "validation_error",
      reason: "InvalidConfig",
      message: "spec.config.port: must be <= 65535",
    },
    conditions: [
      cond("Ready", "False", "InvalidConfig", "spec.config.port: must be <= 65535"),
      cond("Synced", "False", "InvalidConfig", "spec.config.port: must be <= 65535"),
      cond("Healthy", "True", "ConnectivityOK"),
      cond("UpToDate", "False", "DriftDetected", "config.mailbox differs"),
      cond("Stalled", "True", "InvalidConfig", "spec.config.port: must be <= 65535"),
    ],
    drift: { detected: true, fields: ["config.mailbox", "enabled"], corrections: 0 },
  },
  3,
);
const fresh = connector("new-one", "team-ops", undefined);

describe("connectorctl status", () => {
  it("prints one line a Connector: state, Ready/Synced/Healthy with the reason when not True, drift, age, why", () => {
    const table = formatStatusTable([healthy, broken, fresh].map(summarize), { namespaced: false, now });
    expect(table.split("\n")).toEqual([
      "NAMESPACE      NAME            TYPE      STATE     READY                   SYNCED                  HEALTHY   DRIFT                    AGE    MESSAGE",
      "team-ops       ops-mail        imap/v1   active    True                    True                    True      - (2 corrected)          120m",
      "team-support   support-inbox   imap/v1   error     False (InvalidConfig)   False (InvalidConfig)   True      config.mailbox,enabled   120m   spec.config.port: must be <= 65535",
      "team-ops       new-one         imap/v1   pending   -                       -                       -         -                        120m   waiting for the controller",
      "",
    ]);
  });

  it("leaves out NAMESPACE for one namespace, and says when status is behind the spec", () => {
    const behind = connector("ops-mail", "team-ops", { ...healthy.status!, observedGeneration: 1 }, 2);
    const table = formatStatusTable([summarize(behind)], { namespaced: true, now });
    expect(table).toMatch(/^NAME {3}/);
    expect(table).toContain("generation 2 not yet observed (status is of 1)");
  });

  it("shows one Connector in full: generations, instance, last error, drift and every condition", () => {
    const text = formatStatusDetail(summarize(broken), now);
    expect(text).toContain("Connector:  team-support/support-inbox");
    expect(text).toContain("Generation: 3 (observed 3, applied to the instance 2)");
    expect(text).toContain(
      "Last error: validation_error (InvalidConfig): spec.config.port: must be <= 65535",
    );
    expect(text).toContain("Drift:      detected in config.mailbox, enabled");
    expect(text).toMatch(/^ {2}Stalled +True +InvalidConfig +5m +spec\.config\.port: must be <= 65535$/m);
    expect(formatStatusDetail(summarize(healthy), now)).toContain(
      "Drift:      none now; 2 correction(s), the last 60s ago",
    );
  });

  it("summarize keeps everything -o json needs", () => {
    expect(summarize(broken)).toMatchObject({
      namespace: "team-support",
      name: "support-inbox",
      state: "error",
      generation: 3,
      observedGeneration: 3,
      appliedGeneration: 2,
      lastError: { class: "validation_error", reason: "InvalidConfig" },
      drift: { detected: true, fields: ["config.mailbox", "enabled"] },
    });
  });

  it("prints ages as kubectl does", () => {
    const cases: [number, string][] = [
      [0, "0s"],
      [119, "119s"],
      [200, "3m20s"],
      [600, "10m"],
      [3 * 3600, "3h"],
      [3 * 3600 + 1200, "3h20m"],
      [30 * 3600, "30h"],
      [50 * 3600, "2d2h"],
      [400 * 86400, "400d"],
      [3 * 365 * 86400 + 86400, "3y1d"],
    ];
    for (const [s, text] of cases) expect(humanDuration(s * 1000), String(s)).toBe(text);
  });
});
