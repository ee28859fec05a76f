// Step "apply": runs the convergence plan (plan.ts) in one transaction, opened at its
// first write, with its audit rows, drift's Warning event and metric.
import type { InstanceRow } from "../api/model.ts";
import type { Connector } from "../api/types.ts";
import type { AuditEntry } from "./audit.ts";
import type { InstancePlan } from "./plan.ts";
import type { EventRecorder, InstanceStore, ReconcileMetrics } from "./ports.ts";
import type { DriftView } from "./status.ts";
import type { Logger } from "../api/logger.ts";

/** The instance after the apply step. */
export interface Instance {
  row: InstanceRow;
  specChanged: boolean;
  drift?: DriftView;
}

export interface ApplyContext {
  store: InstanceStore;
  events: EventRecorder;
  metrics?: ReconcileMetrics | undefined;
  connector: Connector;
  log: Logger;
  signal: AbortSignal | undefined;
  audit(row: InstanceRow, entry: AuditEntry, tx: InstanceStore): Promise<void>;
}

export function applyPlan(
  x: ApplyContext,
  current: InstanceRow | undefined,
  plan: InstancePlan,
): Promise<Instance> {
  const generation = x.connector.metadata.generation ?? 0;
  return x.store.transaction(async (tx) => {
    const write = (row: InstanceRow, e: AuditEntry) => x.audit(row, e, tx);
    switch (plan.kind) {
      case "create": {
        const created = await tx.insert(plan.row);
        await write(created, { operation: "created", outcome: "success", details: { generation } });
        x.log.info({ instanceId: created.id }, "instance created");
        return { row: created, specChanged: true };
      }
      case "none":
        return { row: current!, specChanged: false };
      case "record-generation":
        return { row: await tx.update(current!.id, plan.patch), specChanged: false };
      case "report-drift":
        return { row: current!, specChanged: false, drift: { fields: plan.fields, corrected: false } };
      case "update": {
        const updated = await tx.update(current!.id, plan.patch);
        await write(updated, {
          operation: "updated",
          outcome: "success",
          details: { fields: plan.fields, generation },
        });
        if (plan.enabledChanged)
          await write(updated, { operation: updated.enabled ? "enabled" : "disabled", outcome: "success" });
        x.log.info({ instanceId: updated.id, fields: plan.fields }, "instance updated");
        return { row: updated, specChanged: true };
      }
      case "correct-drift": {
        const updated = await tx.update(current!.id, plan.patch);
        await write(updated, {
          operation: "drift_corrected",
          outcome: "success",
          details: { fields: plan.fields },
        });
        x.metrics?.driftCorrected(updated.type);
        x.events.record(
          x.connector,
          "Warning",
          "DriftCorrected",
          `instance differed from the spec in ${plan.fields.join(", ")}; overwritten`,
        );
        x.log.warn({ instanceId: updated.id, fields: plan.fields }, "drift corrected");
        return { row: updated, specChanged: false, drift: { fields: plan.fields, corrected: true } };
      }
    }
  }, x.signal);
}
