// Kubernetes Events on transitions. Fire-and-forget: an Event that cannot be written is
// logged, never a reason to fail a reconcile. Identical events within a window are
// written once.
import { randomBytes } from "node:crypto";
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { Connector } from "../api/types.ts";
import type { EventRecorder, EventType, Logger } from "../reconcile/ports.ts";
import { FIELD_MANAGER } from "./resources.ts";

const DEDUPE_MS = 10 * 60_000;

export class KubeEventRecorder implements EventRecorder {
  readonly #api: CoreV1Api;
  readonly #log: Logger;
  readonly #recent = new Map<string, number>();
  readonly #instance: string;

  constructor(kc: KubeConfig, log: Logger, instance = process.env.HOSTNAME ?? "connector-controller") {
    this.#api = kc.makeApiClient(CoreV1Api);
    this.#log = log;
    this.#instance = instance;
  }

  record(c: Connector, type: EventType, reason: string, message: string): void {
    const key = `${c.metadata.uid}\u0000${type}\u0000${reason}\u0000${message}`;
    const now = Date.now();
    const last = this.#recent.get(key);
    if (last !== undefined && now - last < DEDUPE_MS) return;
    this.#recent.set(key, now);
    if (this.#recent.size > 10_000)
      for (const [k, t] of this.#recent) if (now - t >= DEDUPE_MS) this.#recent.delete(k);
    const namespace = c.metadata.namespace ?? "default";
    const at = new Date();
    this.#api
      .createNamespacedEvent({
        namespace,
        body: {
          metadata: { name: `${c.metadata.name}.${randomBytes(8).toString("hex")}`, namespace },
          involvedObject: {
            apiVersion: c.apiVersion,
            kind: c.kind,
            name: c.metadata.name,
            namespace,
            uid: c.metadata.uid,
            resourceVersion: c.metadata.resourceVersion,
          },
          type,
          reason,
          message: message.slice(0, 1024),
          source: { component: FIELD_MANAGER },
          reportingComponent: FIELD_MANAGER,
          reportingInstance: this.#instance,
          action: "Reconcile",
          firstTimestamp: at,
          lastTimestamp: at,
          count: 1,
        },
      })
      .catch((err: unknown) =>
        this.#log.warn({ err: (err as Error).message, reason }, "could not record event"),
      );
  }
}
