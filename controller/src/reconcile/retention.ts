// The retention janitor: soft-deleted instance rows are purged after the instance
// retention, audit rows after the (longer) audit retention. A purge is itself audited.
import { randomUUID } from "node:crypto";
import { sleep, systemClock, type Clock } from "../api/clock.ts";
import type { Runnable } from "../api/runnable.ts";
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
  const started = performance.now();
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
        durationMs: Math.round(performance.now() - started),
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

/** The janitor as a Runnable: a purge at start and every `intervalMs` while this replica leads. */
export function retentionJanitor(
  store: InstanceStore,
  policy: RetentionPolicy,
  log: Logger,
  intervalMs: number,
  clock: Clock = systemClock,
): Runnable {
  return {
    name: "retention-janitor",
    async start(signal) {
      while (!signal.aborted) {
        await purgeExpired(store, policy, clock.now(), log, randomUUID()).catch((err: unknown) =>
          log.warn({ err }, "retention purge failed; will retry"),
        );
        await sleep(intervalMs, signal);
      }
    },
  };
}
