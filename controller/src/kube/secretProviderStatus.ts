// A SecretProvider's status: Ready True/Ready, or False with InvalidConfig, Unreachable,
// Sealed or Unauthenticated. Written only when it changed; lastTransitionTime moves only when
// Ready flips (api/conditions.ts).
import { CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from "@kubernetes/client-node";
import { nextConditions, statusEqual } from "../api/conditions.ts";
import { GROUP, VERSION, type SecretProvider, type SecretProviderStatus } from "../api/types.ts";
import type { Clock } from "../api/clock.ts";
import type { ProviderCheck } from "../secrets/ports.ts";
import { kubeError } from "./apiErrors.ts";
import { FIELD_MANAGER } from "./resources.ts";

export const SECRET_PROVIDER_PLURAL = "secretproviders";

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
    type: provider.spec.vault ? "vault" : "file",
    conditions,
  };
}

export class SecretProviderStatusWriter {
  readonly #api: CustomObjectsApi;
  readonly #clock: Clock;
  readonly #merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
  writes = 0;

  constructor(kc: KubeConfig, clock: Clock = { now: () => new Date() }) {
    this.#api = kc.makeApiClient(CustomObjectsApi);
    this.#clock = clock;
  }

  /** Writes the status the check asks for, unless it equals the current one. Returns the new object or undefined. */
  async write(provider: SecretProvider, check: ProviderCheck): Promise<SecretProvider | undefined> {
    const next = secretProviderStatus(provider, check, this.#clock.now());
    if (statusEqual(provider.status, next)) return undefined;
    const updated = (await this.#api
      .patchClusterCustomObjectStatus(
        {
          group: GROUP,
          version: VERSION,
          plural: SECRET_PROVIDER_PLURAL,
          name: provider.metadata.name,
          body: { status: next },
          fieldManager: FIELD_MANAGER,
        },
        this.#merge,
      )
      .catch((err: unknown) => {
        throw kubeError(err, `SecretProvider ${provider.metadata.name} status update failed`);
      })) as SecretProvider;
    this.writes++;
    return updated;
  }
}

/** Checks a provider and writes its status when it changed. */
export async function syncSecretProviderStatus(
  checker: { checkProvider(p: SecretProvider, signal?: AbortSignal): Promise<ProviderCheck> },
  writer: SecretProviderStatusWriter,
  provider: SecretProvider,
  signal?: AbortSignal,
): Promise<{ check: ProviderCheck; updated: SecretProvider | undefined }> {
  const check = await checker.checkProvider(provider, signal);
  const updated = await writer.write(provider, check);
  return { check, updated };
}
