// Hears about instance rows changed by anyone but the controller (the trigger of migration
// 002) and hands their namespace/name to the controller at once. A lost LISTEN connection
// is re-established with backoff, followed by `onResubscribed` (the caller resyncs, since
// notifications sent meanwhile are gone).
import type { Logger } from "../api/logger.ts";
import type { OpenedDatabase } from "./database.ts";
import { CHANGE_CHANNEL } from "./migrations.ts";

export interface ChangeListenerHandlers {
  onChange(key: string): void;
  onResubscribed(): void;
  log: Logger;
}

export interface ChangeListener {
  close(): Promise<void>;
}

export async function listenForExternalChanges(
  database: OpenedDatabase,
  h: ChangeListenerHandlers,
): Promise<ChangeListener> {
  let closed = false;
  let unsubscribe: (() => Promise<void>) | undefined;
  let retry: NodeJS.Timeout | undefined;
  let backoffMs = 250;

  const subscribe = async (): Promise<void> => {
    unsubscribe = await database.subscribe(
      CHANGE_CHANNEL,
      (key) => h.onChange(key),
      (err) => {
        if (closed) return;
        h.log.warn({ err: err.message }, "lost the LISTEN connection; re-establishing");
        unsubscribe = undefined;
        schedule();
      },
    );
  };

  const schedule = () => {
    retry = setTimeout(async () => {
      if (closed) return;
      try {
        await subscribe();
        backoffMs = 250;
        h.log.info({}, "LISTEN connection re-established; resyncing");
        h.onResubscribed();
      } catch (err) {
        h.log.warn({ err: (err as Error).message, retryInMs: backoffMs }, "could not re-establish LISTEN");
        backoffMs = Math.min(backoffMs * 2, 30_000);
        schedule();
      }
    }, backoffMs);
    retry.unref();
  };

  await subscribe();
  return {
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      await unsubscribe?.();
    },
  };
}
