// Writes a SecretProvider's status subresource (the reconciler decides when; see
// reconcile/secretProvider.ts).
import { CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import { GROUP, VERSION, type SecretProvider, type SecretProviderStatus } from "../api/types.ts";
import type { SecretProviderStatusWriter } from "../reconcile/ports.ts";
import { kubeError } from "./apiErrors.ts";
import { mergePatchOptions } from "./requestOptions.ts";
import { FIELD_MANAGER, PLURALS } from "./resources.ts";

export class KubeSecretProviderStatusWriter implements SecretProviderStatusWriter {
  readonly #api: CustomObjectsApi;
  writes = 0;

  constructor(kc: KubeConfig) {
    this.#api = kc.makeApiClient(CustomObjectsApi);
  }

  async writeStatus(
    provider: SecretProvider,
    status: SecretProviderStatus,
    signal?: AbortSignal,
  ): Promise<SecretProvider> {
    const updated = (await this.#api
      .patchClusterCustomObjectStatus(
        {
          group: GROUP,
          version: VERSION,
          plural: PLURALS.SecretProvider,
          name: provider.metadata.name,
          body: { status },
          fieldManager: FIELD_MANAGER,
        },
        mergePatchOptions(signal),
      )
      .catch((err: unknown) => {
        throw kubeError(err, `SecretProvider ${provider.metadata.name} status update failed`);
      })) as SecretProvider;
    this.writes++;
    return updated;
  }
}
