// Hears about instance rows changed by anyone but the controller (the trigger of migration
// 002) and hands their namespace/name on at once. A lost LISTEN connection is re-established
// with backoff, followed by `onResubscribed` (the caller resyncs, since notifications sent
// meanwhile are gone).
import { jitter, sleep } from "../api/clock.ts";
import type { Logger } from "../api/logger.ts";
import { aborted, type Runnable } from "../api/runnable.ts";
import type { OpenedDatabase } from "./database.ts";
import { CHANGE_CHANNEL } from "./migrations.ts";

export interface ChangeListenerHandlers {
  onChange(key: string): void;
  onResubscribed(): void;
  log: Logger;
}

export function externalChanges(database: OpenedDatabase, h: ChangeListenerHandlers): Runnable {
  let subscribed: () => void;
  const first = new Promise<void>((resolve) => (subscribed = resolve));
  return {
    name: "external-changes",
    ready: () => first,
    async start(signal) {
      let backoffMs = 250;
      let resubscribing = false;
      while (!signal.aborted) {
        let lost!: () => void;
        const gone = new Promise<void>((resolve) => (lost = resolve));
        let unsubscribe: (() => Promise<void>) | undefined;
        try {
          unsubscribe = await database.subscribe(
            CHANGE_CHANNEL,
            (key) => h.onChange(key),
            (err) => {
              if (!signal.aborted)
                h.log.warn({ err: err.message }, "lost the LISTEN connection; re-establishing");
              lost();
            },
          );
        } catch (err) {
          h.log.warn({ err, retryInMs: backoffMs }, "could not establish LISTEN");
          await sleep(jitter(backoffMs, 0.2), signal);
          backoffMs = Math.min(backoffMs * 2, 30_000);
          continue;
        }
        backoffMs = 250;
        subscribed();
        if (resubscribing) {
          h.log.info({}, "LISTEN connection re-established; resyncing");
          h.onResubscribed();
        }
        resubscribing = true;
        await Promise.race([gone, aborted(signal)]);
        if (signal.aborted) await unsubscribe();
        else await sleep(jitter(backoffMs, 0.2), signal);
      }
    },
  };
}
