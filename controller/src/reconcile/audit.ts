import type { AuditEvent, InstanceRow } from "../api/model.ts";
import { ANNOTATION_APPLIED_BY, type Connector } from "../api/types.ts";

/** What a step says about an audit row; the rest comes from the Connector and the reconcile. */
export type AuditEntry = Pick<AuditEvent, "operation" | "outcome"> & Partial<AuditEvent>;

/** A reconcile's audit row: the reconcile id as request id, the Connector's uid as correlation id. */
export function audit(
  c: Connector,
  reconcileId: string,
  row: InstanceRow | undefined,
  actor: string | null,
  e: AuditEntry,
): AuditEvent {
  return {
    requestId: reconcileId,
    correlationId: c.metadata.uid ?? null,
    actor,
    projectId: row?.projectId ?? c.spec.projectId ?? null,
    connectorInstanceId: row?.id ?? null,
    namespace: c.metadata.namespace ?? "",
    name: c.metadata.name,
    executionMode: "reconcile",
    ...e,
  };
}

/** Who changed the spec: the applied-by annotation, else the field manager of the last spec update. */
export function actorOf(c: Connector): string | null {
  const annotated = c.metadata.annotations?.[ANNOTATION_APPLIED_BY];
  if (annotated) return annotated;
  const spec = (c.metadata.managedFields ?? []).filter((m) => m.subresource !== "status" && m.manager);
  spec.sort((x, y) => (x.time ?? "").localeCompare(y.time ?? ""));
  return spec.at(-1)?.manager ?? null;
}
