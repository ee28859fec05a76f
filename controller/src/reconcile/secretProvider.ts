// The second reconciler: a SecretProvider's Ready condition (True/Ready, or False with
// InvalidConfig, Unreachable, Sealed or Unauthenticated), checked when the provider changes
// and every `intervalMs`; a changed or deleted provider drops (and revokes) its Vault
// sessions. Written only when the status changed; lastTransitionTime moves only when
// Ready flips.
import type { Clock } from "../api/clock.ts";
import { nextConditions, statusEqual } from "../api/conditions.ts";
import type { SecretProvider, SecretProviderStatus } from "../api/types.ts";
import type { ProviderCheck, SecretProviderChecker, SecretProviderStatusWriter } from "./ports.ts";

export const PROVIDER_CHECK_INTERVAL_MS = 30_000;

/** The status a check result asks for, given the previous one. */
export function secretProviderStatus(
  provider: SecretProvider,
  check: ProviderCheck,
  now: Date,
): SecretProviderStatus {
  const conditions = nextConditions(
    provider.status?.conditions,
    [
      {
        type: "Ready",
        status: check.ready ? "True" : "False",
        reason: check.reason,
        // Stable messages: no request ids or times (they come from our own wrapping).
        message: check.message.slice(0, 1024),
      },
    ],
    provider.metadata.generation,
    now,
  );
  return {
    ...(provider.metadata.generation === undefined
      ? {}
      : { observedGeneration: provider.metadata.generation }),
    type: provider.spec.vault ? "vault" : provider.spec.kubernetes ? "kubernetes" : "file",
    conditions,
  };
}

export interface SecretProviderReconcilerDeps {
  checker: SecretProviderChecker;
  writer: SecretProviderStatusWriter;
  clock: Clock;
  intervalMs?: number;
}

/** Reconciles the provider named `name` (`provider` undefined: it was deleted). */
export function secretProviderReconciler(d: SecretProviderReconcilerDeps) {
  return async (
    name: string,
    provider: SecretProvider | undefined,
    signal: AbortSignal,
  ): Promise<{ requeueAfterMs?: number }> => {
    if (!provider) {
      await d.checker.providerDeleted(name);
      return {};
    }
    await d.checker.providerChanged(name);
    const check = await d.checker.checkProvider(provider, signal);
    const status = secretProviderStatus(provider, check, d.clock.now());
    if (!statusEqual(provider.status, status)) await d.writer.writeStatus(provider, status, signal);
    return { requeueAfterMs: d.intervalMs ?? PROVIDER_CHECK_INTERVAL_MS };
  };
}
