// A circuit breaker per instance: `failureThreshold` failed probes in a row open it (no
// probe until `cooldownMs` has passed), then one half-open probe closes it on success or
// opens it again. State lives in memory: a restart starts closed, which costs one probe.

export interface BreakerSettings {
  /** Consecutive failures that open the breaker. */
  failureThreshold: number;
  /** How long an open breaker refuses probes before one half-open probe. */
  cooldownMs: number;
  /** How soon a failing (not yet open) instance is probed again. */
  retryMs: number;
}

export const DEFAULT_BREAKER: BreakerSettings = { failureThreshold: 3, cooldownMs: 60_000, retryMs: 10_000 };

export type BreakerPhase = "closed" | "open" | "half-open";

interface BreakerState {
  failures: number;
  openUntil?: number;
}

export class CircuitBreakers {
  readonly settings: BreakerSettings;
  readonly #states = new Map<string, BreakerState>();
  trips = 0;

  constructor(settings: Partial<BreakerSettings> = {}) {
    this.settings = { ...DEFAULT_BREAKER, ...settings };
  }

  phase(id: string, now: Date): BreakerPhase {
    const s = this.#states.get(id);
    if (s?.openUntil === undefined) return "closed";
    return now.getTime() < s.openUntil ? "open" : "half-open";
  }

  failures(id: string): number {
    return this.#states.get(id)?.failures ?? 0;
  }

  /** When an open breaker lets the next (half-open) probe through. */
  openUntil(id: string): number | undefined {
    return this.#states.get(id)?.openUntil;
  }

  success(id: string): void {
    this.#states.delete(id);
  }

  /** Counts a failure; true when this failure opened (or re-opened) the breaker. */
  failure(id: string, now: Date): boolean {
    const s = this.#states.get(id) ?? { failures: 0 };
    s.failures++;
    const wasHalfOpen = s.openUntil !== undefined;
    const opens = wasHalfOpen || s.failures >= this.settings.failureThreshold;
    if (opens) s.openUntil = now.getTime() + this.settings.cooldownMs;
    this.#states.set(id, s);
    if (opens && !wasHalfOpen) this.trips++;
    return opens && !wasHalfOpen;
  }

  forget(id: string): void {
    this.#states.delete(id);
  }
}
