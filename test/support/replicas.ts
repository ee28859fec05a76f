// Two gateway replicas against one migrated database: on PostgreSQL, two pools (and two
// LISTEN connections) on a fresh database; on PGlite, which one process owns, the same
// in-memory database seen through two limiters.
import { openDatabase, type OpenedDatabase } from "../../controller/src/store/database.ts";
import { migrateToLatest } from "../../controller/src/store/migrations.ts";
import { startPostgres } from "./postgres.ts";

export interface Replicas {
  a: OpenedDatabase;
  b: OpenedDatabase;
  close(): Promise<void>;
}

export const replicaBackends: { name: string; open(): Promise<Replicas> }[] = [
  {
    name: "PostgreSQL",
    async open() {
      const server = await startPostgres();
      const opened: OpenedDatabase[] = [];
      const close = async () => {
        for (const d of opened) await d.close().catch(() => undefined);
        await server.stop();
      };
      try {
        for (let i = 0; i < 2; i++) opened.push(await openDatabase({ url: server.url, maxConnections: 10 }));
        await migrateToLatest(opened[0]!.db);
        return { a: opened[0]!, b: opened[1]!, close };
      } catch (err) {
        await close();
        throw err;
      }
    },
  },
  {
    name: "PGlite (in memory)",
    async open() {
      const db = await openDatabase({});
      await migrateToLatest(db.db);
      return { a: db, b: db, close: () => db.close() };
    },
  },
];

/** A promise whose outcome can be looked at without awaiting it. */
export function track<T>(p: Promise<T>): {
  readonly done: boolean;
  readonly value: T | undefined;
  promise: Promise<T>;
} {
  const state = { done: false, value: undefined as T | undefined, promise: p };
  p.then(
    (v) => {
      state.done = true;
      state.value = v;
    },
    () => {
      state.done = true;
    },
  );
  return state;
}
