// `connectorctl audit <namespace/name>`: the life of one Connector from its audit rows.
import type { StoredAuditEvent } from "../api/model.ts";

function detailText(e: StoredAuditEvent): string {
  const d = e.details ?? {};
  return Object.entries(d)
    .map(
      ([k, v]) =>
        `${k}=${Array.isArray(v) ? v.join(",") : typeof v === "object" && v !== null ? JSON.stringify(v) : String(v)}`,
    )
    .join(" ");
}

export function formatAuditTable(events: StoredAuditEvent[]): string {
  const rows = events.map((e) => [
    e.at.toISOString().replace(/\.\d{3}Z$/, "Z"),
    e.operation,
    e.outcome,
    e.actor ?? "",
    e.requestId.slice(0, 8),
    detailText(e),
  ]);
  const header = ["AT", "OPERATION", "OUTCOME", "ACTOR", "REQUEST", "DETAILS"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("   ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n") + "\n";
}
