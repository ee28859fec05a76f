// `connectorctl audit <namespace/name>`: the life of one Connector from its audit rows.
import type { StoredAuditEvent } from "../api/model.ts";
import { formatTable } from "./table.ts";

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
  return formatTable(["AT", "OPERATION", "OUTCOME", "ACTOR", "REQUEST", "DETAILS"], rows);
}
