// Step "finalize" (deletion): disable and soft-delete the instance row, or keep it under
// the Orphan deletion policy, forget its breaker, audit, then let the object go. A row
// already gone (a deletion made while the controller was down) only releases the finalizer.
import type { InstanceRow } from "../api/model.ts";
import { FINALIZER } from "../api/types.ts";
import type { ApplyContext } from "./apply.ts";
import type { CircuitBreakers } from "./breaker.ts";
import type { ConnectorWriter } from "./ports.ts";
import { managementPolicies } from "./policies.ts";
import type { Clock } from "../api/clock.ts";

export interface FinalizeContext extends Omit<ApplyContext, "events" | "metrics"> {
  writer: ConnectorWriter;
  breakers: CircuitBreakers;
  clock: Clock;
}

export async function finalize(x: FinalizeContext): Promise<{ requeueAfterMs?: number }> {
  const c = x.connector;
  if (!c.metadata.finalizers?.includes(FINALIZER)) return {};
  const orphan = managementPolicies(c).deletion === "Orphan";
  const row: InstanceRow | undefined = c.metadata.uid
    ? await x.store.findByUid(c.metadata.uid, x.signal)
    : undefined;
  if (row) {
    await x.breakers.forget(row.id);
    await x.store.transaction(async (tx) => {
      if (orphan) return x.audit(row, { operation: "orphaned", outcome: "success" }, tx);
      await tx.update(row.id, { enabled: false, state: "disabled" });
      await tx.softDelete(row.id, x.clock.now());
      await x.audit(row, { operation: "deleted", outcome: "success" }, tx);
    }, x.signal);
    x.log.info({ instanceId: row.id, orphan }, orphan ? "instance orphaned" : "instance soft-deleted");
  }
  await x.writer.removeFinalizer(c, x.signal);
  return {};
}
