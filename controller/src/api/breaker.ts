// The circuit breaker of an instance (spec §5.3), as every party that consults it agrees on:
// the controller's probes and every gateway replica count failures on the same breaker.

export interface BreakerSettings {
  /** Failures in a row that open the breaker. */
  failureThreshold: number;
  /** How long an open breaker refuses calls and probes, before one trial. */
  cooldownMs: number;
  /**
   * How long the half-open trial is held before another caller may try (its holder may have
   * died without reporting). Default: cooldownMs; give it the operation's timeout.
   */
  trialTimeoutMs?: number;
}

export type BreakerState =
  | { phase: "closed"; failures: number }
  | { phase: "open"; failures: number; retryAfterMs: number }
  /**
   * The cooldown passed: exactly one caller may try (`trial: true` from `enter`); while that
   * trial is held the others get `open`, with the time the trial may take as retryAfter.
   */
  | { phase: "half-open"; failures: number; trial: boolean };

/** The breakers, shared in PostgreSQL by the controller and the gateway (store/pgBreakerStore.ts). */
export interface BreakerStore {
  /** The breaker as a call should see it; in half-open, claims the single trial call for this caller. */
  enter(instanceId: string, settings: BreakerSettings): Promise<BreakerState>;
  /** The breaker as it is, claiming nothing (`trial` is false). */
  peek(instanceId: string): Promise<BreakerState>;
  /** Closes the breaker (resets failures). Writes only when it was not already closed at zero. */
  success(instanceId: string): Promise<void>;
  /** Counts a failure; true when this failure opened (or re-opened) the breaker. */
  failure(instanceId: string, settings: BreakerSettings): Promise<boolean>;
  /** Forgets the breaker of an instance that is gone. */
  forget(instanceId: string): Promise<void>;
}
