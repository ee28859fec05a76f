// Hears about instance rows changed by anyone but the controller (the trigger of migration
// 002) and about breakers opened or closed (migration 003), and hands them on at once. A lost LISTEN connection is re-established
// with backoff, followed by `onResubscribed` (the caller resyncs, since notifications sent
// meanwhile are gone).
import { jitter, sleep } from "../api/clock.ts";
import type { Logger } from "../api/logger.ts";
import { aborted, type Runnable } from "../api/runnable.ts";
import type { OpenedDatabase } from "./database.ts";
import { CHANGE_CHANNEL } from "./migrations.ts";
import { BREAKER_CHANNEL } from "./migrations/003_gateway_limits.ts";

export interface ChangeListenerHandlers {
  onChange(key: string): void;
  onResubscribed(): void;
  log: Logger;
}

/** Instance rows changed by anyone but the controller: their namespace/name. */
export function externalChanges(database: OpenedDatabase, h: ChangeListenerHandlers): Runnable {
  return notifications("external-changes", database, CHANGE_CHANNEL, h);
}

/** A breaker opened or closed (by a probe or a gateway call): its instance id. */
export function breakerChanges(database: OpenedDatabase, h: ChangeListenerHandlers): Runnable {
  return notifications("breaker-changes", database, BREAKER_CHANNEL, h);
}

/** LISTENs on `channel` while it runs, handing each payload on. */
function notifications(
  name: string,
  database: OpenedDatabase,
  channel: string,
  h: ChangeListenerHandlers,
): Runnable {
  let subscribed: () => void;
  const first = new Promise<void>((resolve) => (subscribed = resolve));
  return {
    name,
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
            channel,
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
