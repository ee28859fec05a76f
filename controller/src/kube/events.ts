// Kubernetes Events on transitions. Fire-and-forget: an Event that cannot be written is
// logged, never a reason to fail a reconcile. Identical events within a window are
// written once. As client-go's broadcaster does, Events wait in a bounded backlog and are
// written a few at a time, so a burst (every Connector turning Ready at a cold start)
// does not compete with status writes for the API server; beyond the backlog they are
// dropped and counted.
import { randomBytes } from "node:crypto";
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { Connector } from "../api/types.ts";
import type { EventRecorder, EventType } from "../reconcile/ports.ts";
import type { Logger } from "../api/logger.ts";
import { FIELD_MANAGER } from "./resources.ts";

const DEDUPE_MS = 10 * 60_000;

export interface EventRecorderOptions {
  /** reportingInstance: the pod name. */
  instance?: string;
  /** Event writes in flight at once (default 4). */
  maxInFlight?: number;
  /** Events waiting beyond those (default 1000, client-go's queue length). */
  maxBacklog?: number;
  /** Called for each Event dropped because the backlog was full. */
  dropped?: () => void;
}

type EventBody = Parameters<CoreV1Api["createNamespacedEvent"]>[0];

export class KubeEventRecorder implements EventRecorder {
  readonly #api: CoreV1Api;
  readonly #log: Logger;
  readonly #recent = new Map<string, number>();
  readonly #instance: string;
  readonly #maxInFlight: number;
  readonly #maxBacklog: number;
  readonly #dropped: () => void;
  readonly #backlog: EventBody[] = [];
  #inFlight = 0;
  #idleWaiters: (() => void)[] = [];

  constructor(kc: KubeConfig, log: Logger, opts: EventRecorderOptions = {}) {
    this.#api = kc.makeApiClient(CoreV1Api);
    this.#log = log;
    this.#instance = opts.instance ?? process.env.HOSTNAME ?? "connector-controller";
    this.#maxInFlight = opts.maxInFlight ?? 4;
    this.#maxBacklog = opts.maxBacklog ?? 1000;
    this.#dropped = opts.dropped ?? (() => {});
  }

  /** Resolves when every Event recorded so far has been written (or failed). */
  idle(): Promise<void> {
    if (this.#inFlight === 0 && this.#backlog.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
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
    this.#enqueue({
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
    });
  }

  #enqueue(event: EventBody): void {
    if (this.#inFlight < this.#maxInFlight) {
      this.#write(event);
      return;
    }
    if (this.#backlog.length >= this.#maxBacklog) {
      this.#dropped();
      return;
    }
    this.#backlog.push(event);
  }

  #write(event: EventBody): void {
    this.#inFlight++;
    this.#api
      .createNamespacedEvent(event)
      .catch((err: unknown) => this.#log.warn({ err, reason: event.body.reason }, "could not record event"))
      .finally(() => {
        this.#inFlight--;
        const next = this.#backlog.shift();
        if (next) this.#write(next);
        else if (this.#inFlight === 0) for (const resolve of this.#idleWaiters.splice(0)) resolve();
      });
  }
}
