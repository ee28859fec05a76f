// The database half of leadership: the leader holds a PostgreSQL advisory lock on a
// connection of its own, so a deposed leader still connected cannot write beside a new one
// (it holds the lock until it exits). Ready once the lock is held.
import type { Logger } from "../api/logger.ts";
import { aborted, type Runnable } from "../api/runnable.ts";
import type { OpenedDatabase } from "./database.ts";

export function databaseFence(
  database: OpenedDatabase,
  key: string,
  log: Logger,
  onLost: () => void,
): Runnable {
  let held: () => void;
  const locked = new Promise<void>((resolve) => (held = resolve));
  return {
    name: "database-fence",
    ready: () => locked,
    async start(signal) {
      const unlock = await database.advisoryLock(key, signal, (err) => {
        log.error({ err: err.message }, "lost the database leader lock");
        onLost();
      });
      if (!unlock) return;
      held();
      await aborted(signal);
      await unlock();
    },
  };
}
