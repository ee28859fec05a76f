// A LISTEN that outlives its connection: when the listening connection is lost it subscribes
// again (after `retryMs`), until closed. Notifications sent while it was down are lost; the
// callers here have a second path for those (pg-boss heartbeats, a poll).
import type { OpenedDatabase } from "./database.ts";

export interface Listener {
  close(): Promise<void>;
}

export async function listen(
  database: OpenedDatabase,
  channel: string,
  onMessage: (payload: string) => void,
  retryMs = 1000,
): Promise<Listener> {
  let closed = false;
  let unsubscribe: (() => Promise<void>) | undefined;
  let timer: NodeJS.Timeout | undefined;

  const subscribe = async (): Promise<void> => {
    unsubscribe = await database.subscribe(channel, onMessage, () => {
      unsubscribe = undefined;
      if (!closed) timer = setTimeout(resubscribe, retryMs);
    });
    if (closed) await unsubscribe();
  };
  const resubscribe = (): void => {
    if (closed) return;
    subscribe().catch(() => {
      if (!closed) timer = setTimeout(resubscribe, retryMs);
    });
  };

  await subscribe();
  return {
    async close() {
      closed = true;
      clearTimeout(timer);
      await unsubscribe?.();
    },
  };
}
