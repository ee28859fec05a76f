// The retention janitor: soft-deleted instance rows are purged after the instance
// retention, audit rows after the (longer) audit retention. A purge is itself audited.
import type { InstanceStore } from "./ports.ts";
import type { Logger } from "../api/logger.ts";

export interface RetentionPolicy {
  instanceRetentionMs: number;
  auditRetentionMs: number;
}

export async function purgeExpired(
  store: InstanceStore,
  policy: RetentionPolicy,
  now: Date,
  log: Logger,
  runId: string,
) {
  const purged = await store.transaction(async (tx) => {
    const rows = await tx.purgeDeletedInstances(new Date(now.getTime() - policy.instanceRetentionMs));
    for (const r of rows) {
      await tx.appendAudit({
        requestId: runId,
        correlationId: r.uid,
        actor: "connector-controller",
        projectId: r.projectId,
        connectorInstanceId: r.id,
        namespace: r.namespace,
        name: r.name,
        operation: "purged",
        executionMode: "retention",
        outcome: "success",
      });
    }
    return rows.length;
  });
  const auditPurged = await store.purgeAudit(new Date(now.getTime() - policy.auditRetentionMs));
  if (purged || auditPurged)
    log.info({ instancesPurged: purged, auditRowsPurged: auditPurged }, "retention purge");
  return { instancesPurged: purged, auditRowsPurged: auditPurged };
}
