// Leader election on a coordination.k8s.io/v1 Lease, with client-go's timings and rules:
// a lease is taken over only when its record has not changed for leaseDuration as seen on
// *our* clock (no trust in other replicas' clocks); every write carries the resourceVersion
// we read, so it is a compare-and-swap; a leader that cannot renew within renewDeadline
// stops leading; release on shutdown empties the holder so a standby takes over at once.
import { CoordinationV1Api, type KubeConfig, type V1Lease } from "@kubernetes/client-node";
import type { Logger } from "../../api/logger.ts";
import type { LeaderElection } from "./manager.ts";
import { jitter, sleep } from "../../api/clock.ts";
import { apiStatus } from "../apiErrors.ts";

export interface LeaderElectionOptions {
  kc: KubeConfig;
  namespace: string;
  name: string;
  identity: string;
  log: Logger;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}

/** metav1.MicroTime wants six fractional digits. */
function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

export class LeaderElector implements LeaderElection {
  readonly #api: CoordinationV1Api;
  readonly #o: Required<LeaderElectionOptions>;
  #observed: { record: string; at: number } | undefined;
  #lease: V1Lease | undefined;
  #leading = false;

  constructor(opts: LeaderElectionOptions) {
    this.#o = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, ...opts };
    this.#api = opts.kc.makeApiClient(CoordinationV1Api);
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  /** Resolves once this replica holds the lease (or the signal aborts: then false). */
  async acquire(signal: AbortSignal): Promise<boolean> {
    while (!signal.aborted) {
      if (await this.#tryAcquireOrRenew()) {
        this.#leading = true;
        this.#o.log.info(
          { lease: `${this.#o.namespace}/${this.#o.name}`, identity: this.#o.identity },
          "became leader",
        );
        return true;
      }
      await sleep(this.#o.retryPeriodMs + jitter(this.#o.retryPeriodMs * 0.6, 1), signal); // client-go's JitterFactor 1.2
    }
    return false;
  }

  /** Renews every retryPeriod; resolves when leadership is lost (renewDeadline passed) or the signal aborts. */
  async holdUntilLost(signal: AbortSignal): Promise<"lost" | "stopped"> {
    let lastRenew = Date.now();
    while (!signal.aborted) {
      await sleep(this.#o.retryPeriodMs, signal);
      if (signal.aborted) break;
      if (await this.#tryAcquireOrRenew()) lastRenew = Date.now();
      else if (this.#observed && this.#lease?.spec?.holderIdentity !== this.#o.identity) {
        this.#leading = false;
        return "lost"; // someone else holds it now
      }
      if (Date.now() - lastRenew > this.#o.renewDeadlineMs) {
        this.#leading = false;
        return "lost";
      }
    }
    return "stopped";
  }

  /** Gives the lease up so a standby can take over without waiting for it to expire. */
  async release(): Promise<void> {
    if (!this.#leading || !this.#lease) return;
    this.#leading = false;
    const now = microTime(new Date());
    const body: V1Lease = {
      ...this.#lease,
      spec: {
        ...this.#lease.spec,
        holderIdentity: "",
        leaseDurationSeconds: 1,
        renewTime: now as unknown as Date,
        acquireTime: now as unknown as Date,
      },
    };
    try {
      await this.#api.replaceNamespacedLease({ name: this.#o.name, namespace: this.#o.namespace, body });
      this.#o.log.info({ lease: `${this.#o.namespace}/${this.#o.name}` }, "released the lease");
    } catch (err) {
      this.#o.log.warn({ err }, "could not release the lease");
    }
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.#o;
    const nowMs = Date.now();
    const now = microTime(new Date(nowMs));
    const durationSeconds = Math.round(this.#o.leaseDurationMs / 1000);
    let current: V1Lease;
    try {
      current = await this.#api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (apiStatus(err) !== 404) return this.#failed(err);
      try {
        this.#lease = await this.#api.createNamespacedLease({
          namespace,
          body: {
            apiVersion: "coordination.k8s.io/v1",
            kind: "Lease",
            metadata: { name, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds: durationSeconds,
              acquireTime: now as unknown as Date,
              renewTime: now as unknown as Date,
              leaseTransitions: 0,
            },
          },
        });
        this.#observed = { record: JSON.stringify(this.#lease.spec), at: nowMs };
        return true;
      } catch (e) {
        return this.#failed(e);
      }
    }
    this.#lease = current;
    const spec = current.spec ?? {};
    const record = JSON.stringify(spec);
    if (this.#observed?.record !== record) this.#observed = { record, at: nowMs };
    const holder = spec.holderIdentity ?? "";
    const expired = this.#observed.at + (spec.leaseDurationSeconds ?? durationSeconds) * 1000 <= nowMs;
    if (holder && holder !== identity && !expired) return false;

    const takingOver = holder !== identity;
    const body: V1Lease = {
      ...current,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: durationSeconds,
        renewTime: now as unknown as Date,
        acquireTime: (takingOver ? now : spec.acquireTime) as unknown as Date,
        leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver && holder ? 1 : 0),
      },
    };
    try {
      // metadata.resourceVersion from the read: a concurrent writer makes this a 409.
      this.#lease = await this.#api.replaceNamespacedLease({ name, namespace, body });
      this.#observed = { record: JSON.stringify(this.#lease.spec), at: nowMs };
      return true;
    } catch (err) {
      return this.#failed(err);
    }
  }

  #failed(err: unknown): false {
    const code = apiStatus(err);
    if (code !== 409) this.#o.log.warn({ err, code }, "lease update failed");
    return false;
  }
}
