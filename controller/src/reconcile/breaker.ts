// The controller's view of the instances' circuit breakers (spec §5.3). The breakers
// themselves live in a BreakerStore shared with every gateway replica (PostgreSQL), so a
// gateway's failing calls open the same breaker the probes do, and the Connector's status
// shows it. The view caches each breaker's state between its own reports and drops an
// entry when the store announces a change (store/pgBreakerStore.ts NOTIFYs on open and
// close), so a quiet reconcile does not read the breaker again.
import type { BreakerSettings, BreakerState, BreakerStore } from "../api/breaker.ts";

export interface ProbeBreakerSettings extends BreakerSettings {
  /** How soon a failing (not yet open) instance is probed again. */
  retryMs: number;
}

export const DEFAULT_BREAKER: ProbeBreakerSettings = {
  failureThreshold: 3,
  cooldownMs: 60_000,
  retryMs: 10_000,
};

export class CircuitBreakers {
  readonly settings: ProbeBreakerSettings;
  readonly #store: BreakerStore;
  readonly #cache = new Map<string, BreakerState>();
  /** Instances whose half-open trial this controller holds: their failure re-opens, it does not trip. */
  readonly #trials = new Set<string>();
  /** Breakers this controller's probes opened (re-opening after a failed trial is not a new trip). */
  trips = 0;

  constructor(store: BreakerStore, settings: Partial<ProbeBreakerSettings> = {}) {
    this.#store = store;
    this.settings = { ...DEFAULT_BREAKER, ...settings };
  }

  /** The breaker as it is (an open one's retryAfterMs counts from when it was read). */
  async state(id: string): Promise<BreakerState> {
    const cached = this.#cache.get(id);
    if (cached && cached.phase === "closed") return cached;
    const state = await this.#store.peek(id);
    if (state.phase === "closed") this.#cache.set(id, state);
    return state;
  }

  /** In half-open, claims the one trial for this probe: false when another party holds it. */
  async claimTrial(id: string): Promise<boolean> {
    this.#cache.delete(id);
    const state = await this.#store.enter(id, { ...this.settings, trialTimeoutMs: this.settings.retryMs });
    const mine = state.phase === "half-open" && state.trial;
    if (mine) this.#trials.add(id);
    return state.phase === "closed" || mine;
  }

  async success(id: string): Promise<void> {
    const cached = this.#cache.get(id);
    this.#trials.delete(id);
    if (cached?.phase === "closed" && cached.failures === 0) return;
    await this.#store.success(id);
    this.#cache.set(id, { phase: "closed", failures: 0 });
  }

  /** Counts a failure: whether the breaker is open now, and whether this failure tripped it (a failed trial re-opens it). */
  async failure(id: string): Promise<{ open: boolean; tripped: boolean }> {
    this.#cache.delete(id);
    const wasTrial = this.#trials.delete(id);
    const open = await this.#store.failure(id, this.settings);
    if (open && !wasTrial) this.trips++;
    return { open, tripped: open && !wasTrial };
  }

  async forget(id: string): Promise<void> {
    this.#cache.delete(id);
    this.#trials.delete(id);
    await this.#store.forget(id);
  }

  /** The store announced a change to this breaker (or, with no id, that announcements were lost). */
  invalidate(id?: string): void {
    if (id === undefined) this.#cache.clear();
    else this.#cache.delete(id);
  }
}
