// The Manager of controller-runtime's runnable_group.go, small: runnables are started in
// groups, in order, and stopped in the reverse order.
//
//   servers  (metrics, health probes)          every replica, first up, last down
//   caches   (informers; waited on until synced) every replica, so a standby is warm
//   webhooks (need the caches to judge)         every replica
//   leader   (controllers, fences, janitors)    only while this replica leads, started one
//                                               after the other, each waiting for the one
//                                               before it to be ready
//
// Losing leadership stops nothing gracefully: the caller's `onLostLeadership` decides (the
// process exits, as client-go's users do, so nothing is reconciled by two leaders).
import type { Logger } from "../../api/logger.ts";
import type { Runnable } from "../../api/runnable.ts";

export type RunnableGroup = "servers" | "caches" | "webhooks" | "leader";

/** Leadership, as the Manager needs it (kube/runtime/leaderElection.ts implements it with a Lease). */
export interface LeaderElection {
  /** Resolves true once leading, false if `signal` aborted first. */
  acquire(signal: AbortSignal): Promise<boolean>;
  /** Resolves when leadership ends: "lost" (renewal failed) or "stopped" (the signal aborted). */
  holdUntilLost(signal: AbortSignal): Promise<"lost" | "stopped">;
  release(): Promise<void>;
}

export interface ManagerOptions {
  log: Logger;
  /** Without one, this replica leads at once. */
  election?: LeaderElection;
  onLostLeadership: () => void;
  onLeading?: (leading: boolean) => void;
}

interface Running {
  runnable: Runnable;
  abort: AbortController;
  done: Promise<void>;
}

const ORDER: RunnableGroup[] = ["servers", "caches", "webhooks", "leader"];

export class Manager {
  readonly #o: ManagerOptions;
  readonly #groups = new Map<RunnableGroup, Runnable[]>(ORDER.map((g) => [g, []]));
  readonly #running: Running[] = [];
  readonly #stopping = new AbortController();
  #leading: Promise<void> | undefined;

  constructor(opts: ManagerOptions) {
    this.#o = opts;
  }

  add(group: RunnableGroup, runnable: Runnable): void {
    this.#groups.get(group)!.push(runnable);
  }

  /**
   * Starts every group but the leader's and resolves once the caches are synced; the leader
   * group starts when leadership is won (`leading` resolves then).
   */
  async start(): Promise<void> {
    for (const group of ORDER.slice(0, -1))
      for (const r of this.#groups.get(group)!) await this.#start(r, group === "caches");
    this.#leading = this.#lead();
  }

  /** Resolves once this replica leads and its leader runnables are all ready. */
  get leading(): Promise<void> {
    return this.#leading ?? Promise.reject(new Error("the manager has not been started"));
  }

  /** Stops everything in the reverse order of starting, releasing leadership after the leader group. */
  async stop(): Promise<void> {
    this.#stopping.abort();
    await this.#leading?.catch(() => {});
    const leaders = new Set(this.#groups.get("leader"));
    let released = false;
    for (const r of [...this.#running].reverse()) {
      if (!released && !leaders.has(r.runnable)) {
        await this.#o.election?.release();
        released = true;
      }
      this.#o.log.debug({ runnable: r.runnable.name }, "stopping");
      r.abort.abort();
      await r.done;
    }
    if (!released) await this.#o.election?.release();
  }

  async #lead(): Promise<void> {
    const election = this.#o.election;
    if (election) {
      this.#o.log.info({}, "waiting to lead");
      if (!(await election.acquire(this.#stopping.signal))) return;
      this.#o.onLeading?.(true);
      void election.holdUntilLost(this.#stopping.signal).then((why) => {
        this.#o.onLeading?.(false);
        if (why === "lost" && !this.#stopping.signal.aborted) this.#o.onLostLeadership();
      });
    }
    for (const r of this.#groups.get("leader")!) {
      if (this.#stopping.signal.aborted) return;
      await this.#start(r, true);
    }
  }

  async #start(runnable: Runnable, waitReady: boolean): Promise<void> {
    const abort = new AbortController();
    const done = runnable.start(abort.signal).catch((err: unknown) => {
      this.#o.log.error({ runnable: runnable.name, err }, "runnable failed");
    });
    this.#running.push({ runnable, abort, done });
    if (waitReady && runnable.ready) {
      // Ready, or stopping: a runnable that cannot get ready must not hold up shutdown.
      await Promise.race([
        runnable.ready(),
        new Promise<void>((resolve) => this.#stopping.signal.addEventListener("abort", () => resolve())),
      ]);
    }
  }
}
