// `connectorctl status [-n NS] [NAME]`: what the controller says about each Connector (state,
// conditions, last error, drift), read from the cluster, as a table, a detailed view of
// one, or JSON.
import type { Condition, Connector, ConnectorStatus } from "../api/types.ts";
import { formatTable, humanDuration, truncate } from "./table.ts";

export interface ConnectorSummary {
  namespace: string;
  name: string;
  type: string;
  typeVersion: number;
  enabled: boolean;
  generation: number | undefined;
  observedGeneration: number | undefined;
  appliedGeneration: number | undefined;
  /** status.state; "" before the controller has written status. */
  state: string;
  instanceId: string | undefined;
  conditions: Condition[];
  lastError: ConnectorStatus["lastError"];
  drift: ConnectorStatus["drift"];
  createdAt: string | undefined;
  /** One line: why it is not Ready, else the last error, else "". */
  message: string;
}

const condition = (c: { conditions: Condition[] }, type: string) => c.conditions.find((x) => x.type === type);

function messageOf(c: Connector, conditions: Condition[]): string {
  const status = c.status;
  if (!status) return "waiting for the controller";
  const stale =
    c.metadata.generation !== undefined &&
    (status.observedGeneration ?? 0) < c.metadata.generation &&
    `generation ${c.metadata.generation} not yet observed (status is of ${status.observedGeneration ?? "none"})`;
  const notReady = conditions.find((x) => x.type === "Ready" && x.status !== "True");
  const stalled = conditions.find((x) => x.type === "Stalled" && x.status === "True");
  const lastError = status.lastError && `${status.lastError.class}: ${status.lastError.message}`;
  return stale || stalled?.message || notReady?.message || lastError || "";
}

export function summarize(c: Connector): ConnectorSummary {
  const conditions = c.status?.conditions ?? [];
  return {
    namespace: c.metadata.namespace ?? "",
    name: c.metadata.name,
    type: c.spec.type,
    typeVersion: c.spec.typeVersion,
    enabled: c.spec.enabled ?? true,
    generation: c.metadata.generation,
    observedGeneration: c.status?.observedGeneration,
    appliedGeneration: c.status?.appliedGeneration,
    state: c.status?.state ?? "",
    instanceId: c.status?.instanceId,
    conditions,
    lastError: c.status?.lastError,
    drift: c.status?.drift,
    createdAt: c.metadata.creationTimestamp,
    message: messageOf(c, conditions),
  };
}

/** "True", or "False (InvalidConfig)": the status, and the reason when it is not True. */
function conditionCell(s: ConnectorSummary, type: string): string {
  const c = condition(s, type);
  if (!c) return "-";
  return c.status === "True" ? "True" : `${c.status} (${c.reason})`;
}

function driftCell(s: ConnectorSummary): string {
  const d = s.drift;
  if (!d?.detected) return d?.corrections ? `- (${d.corrections} corrected)` : "-";
  return d.fields?.length ? d.fields.join(",") : "detected";
}

const age = (at: string | undefined, now: Date) => (at ? humanDuration(now.getTime() - Date.parse(at)) : "");

/** The table: one Connector a line, NAMESPACE first unless all are in one namespace asked for. */
export function formatStatusTable(
  list: ConnectorSummary[],
  opts: { namespaced: boolean; now?: Date },
): string {
  const now = opts.now ?? new Date();
  const header = ["NAME", "TYPE", "STATE", "READY", "SYNCED", "HEALTHY", "DRIFT", "AGE", "MESSAGE"];
  const rows = list.map((s) => [
    s.name,
    `${s.type}/v${s.typeVersion}`,
    s.state || (s.enabled ? "pending" : "disabled"),
    conditionCell(s, "Ready"),
    conditionCell(s, "Synced"),
    conditionCell(s, "Healthy"),
    driftCell(s),
    age(s.createdAt, now),
    truncate(s.message, 100),
  ]);
  if (opts.namespaced) return formatTable(header, rows);
  return formatTable(
    ["NAMESPACE", ...header],
    rows.map((r, i) => [list[i]!.namespace, ...r]),
  );
}

/** One Connector in full, as `kubectl describe` would put it. */
export function formatStatusDetail(s: ConnectorSummary, now = new Date()): string {
  const lines: [string, string][] = [
    ["Connector", `${s.namespace}/${s.name}`],
    ["Type", `${s.type} version ${s.typeVersion}${s.enabled ? "" : " (disabled)"}`],
    ["State", s.state || "(no status yet)"],
    [
      "Generation",
      `${s.generation ?? "-"} (observed ${s.observedGeneration ?? "-"}, applied to the instance ${s.appliedGeneration ?? "-"})`,
    ],
    ["Instance", s.instanceId ?? "-"],
    [
      "Last error",
      s.lastError
        ? `${s.lastError.class}${s.lastError.reason ? ` (${s.lastError.reason})` : ""}: ${s.lastError.message}`
        : "-",
    ],
    [
      "Drift",
      !s.drift
        ? "-"
        : `${s.drift.detected ? `detected in ${(s.drift.fields ?? []).join(", ") || "the instance"}` : "none now"}` +
          `${s.drift.corrections ? `; ${s.drift.corrections} correction(s)` : ""}` +
          `${s.drift.lastCorrectedAt ? `, the last ${age(s.drift.lastCorrectedAt, now)} ago` : ""}`,
    ],
    ["Age", age(s.createdAt, now) || "-"],
  ];
  const width = Math.max(...lines.map(([k]) => k.length)) + 2;
  const head = lines.map(([k, v]) => `${`${k}:`.padEnd(width)}${v}`).join("\n");
  const conditions = s.conditions.length
    ? formatTable(
        ["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"],
        s.conditions.map((c) => [
          c.type,
          c.status,
          c.reason,
          age(c.lastTransitionTime, now),
          c.message.replace(/\s*\n\s*/g, " "),
        ]),
      )
        .split("\n")
        .map((l) => (l ? `  ${l}` : l))
        .join("\n")
    : "  (none)\n";
  return `${head}\nConditions:\n${conditions}`;
}
