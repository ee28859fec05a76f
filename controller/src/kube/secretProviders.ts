// Keeps SecretProviders' clients and status in step with their objects: a changed spec
// drops (and revokes) the provider's Vault sessions, a deleted provider is forgotten, and
// each provider's Ready condition is checked on change and every `intervalMs`.
import type { SecretProvider } from "../api/types.ts";
import type { Logger } from "../api/logger.ts";
import type { VaultSecretResolver } from "../secrets/resolver.ts";
import type { Informer } from "./informer.ts";
import { SecretProviderStatusWriter, syncSecretProviderStatus } from "./secretProviderStatus.ts";

export function watchSecretProviders(
  informer: Informer<SecretProvider>,
  resolver: VaultSecretResolver,
  writer: SecretProviderStatusWriter,
  log: Logger,
  intervalMs = 30_000,
): () => void {
  let stopped = false;
  const sync = (p: SecretProvider) => {
    if (stopped) return;
    syncSecretProviderStatus(resolver, writer, p).then(
      ({ updated }) => updated && informer.observe(updated),
      (err: unknown) =>
        log.warn(
          { provider: p.metadata.name, err: (err as Error).message },
          "SecretProvider status check failed",
        ),
    );
  };
  informer.on((type, p, old) => {
    if (type === "delete") {
      void resolver.providerDeleted(p.metadata.name);
      return;
    }
    if (type === "update" && old?.metadata.generation === p.metadata.generation) return; // our own status write
    if (type === "update") void resolver.providerChanged(p.metadata.name);
    sync(p);
  });
  for (const p of informer.list()) sync(p);
  const timer = setInterval(() => informer.list().forEach(sync), intervalMs);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
