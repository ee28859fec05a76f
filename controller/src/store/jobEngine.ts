// pg-boss on the controller's database: its own pool on a real PostgreSQL server, or the
// in-process PGlite shared with Kysely. pg-boss installs and migrates its own schema.
import { PgBoss, fromPglite } from "pg-boss";
import type { ConstructorOptions, Db } from "pg-boss";
import type { Kysely } from "kysely";
import type { PGlite } from "@electric-sql/pglite";
import type { OpenedDatabase } from "./database.ts";
import type { Database } from "./schema.ts";

export interface JobEngineOptions {
  /** pg-boss's schema. */
  schema?: string;
  /** pg only: the size of pg-boss's own pool. */
  maxConnections?: number;
  /**
   * How often this replica's supervisor looks for expired jobs (a replica that died while
   * running one): recovery takes up to the job's expiry plus this.
   */
  superviseIntervalSeconds?: number;
}

export const DEFAULT_BOSS_SCHEMA = "pgboss";

export function createBoss(database: OpenedDatabase, opts: JobEngineOptions = {}): PgBoss {
  const supervise = opts.superviseIntervalSeconds ?? 10;
  const common: ConstructorOptions = {
    schema: opts.schema ?? DEFAULT_BOSS_SCHEMA,
    // Nothing is scheduled by cron; keep its timers off.
    schedule: false,
    superviseIntervalSeconds: supervise,
    // Expiry runs in the monitor pass, which runs at the slower of the two intervals.
    monitorIntervalSeconds: supervise,
    // Wakes workers on a new job instead of waiting out the poll.
    useListenNotify: true,
    instanceName: "connector-gateway",
  };
  const source = database.source;
  if (source.dialect === "pg") {
    return new PgBoss({
      ...common,
      connectionString: source.url,
      max: opts.maxConnections ?? 10,
      application_name: "connector-gateway-jobs",
    });
  }
  return new PgBoss({ ...common, backend: "pglite", db: serializedPglite(database.db, source.pglite) });
}

/**
 * PGlite is one session. Kysely opens a transaction with a plain BEGIN on it and serialises
 * its own callers only, so a pg-boss statement issued meanwhile would run inside that
 * transaction (and pg-boss's adapter ROLLBACKs after an error, ending it). Each pg-boss
 * statement therefore waits for Kysely's single connection, like any Kysely query.
 */
function serializedPglite(db: Kysely<Database>, pglite: PGlite): Db {
  const inner = fromPglite(pglite);
  const listen = inner.listen;
  return {
    executeSql: (text, values) => db.connection().execute(() => inner.executeSql(text, values)),
    ...(inner.setSessionStatements && {
      setSessionStatements: (statements: string[]) =>
        db.connection().execute(() => inner.setSessionStatements!(statements)),
    }),
    ...(listen && {
      listen: (channel: string, onNotification: (payload: string) => void, onReconnect: () => void) =>
        db.connection().execute(() => listen(channel, onNotification, onReconnect)),
    }),
  };
}
