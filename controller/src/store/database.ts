// Opens the controller's database: a real PostgreSQL server through node-postgres when a
// URL is given, otherwise PGlite (PostgreSQL compiled to WASM) in-process, persisted to a
// directory or held in memory.
//
// Both backends return the same JS shapes: jsonb as parsed values, timestamptz as Date,
// and int8/bigint as number (applied_generation and bigserial ids stay far below 2^53).
import { PGlite } from "@electric-sql/pglite";
import { Kysely, PostgresDialect, sql } from "kysely";
import { PGliteDialect } from "kysely-pglite-dialect";
import pg from "pg";
import { ConnectorError } from "../api/errors.ts";
import type { Database } from "./schema.ts";

/** SQLSTATEs and socket errors that say the server is away, not that the statement was wrong. */
const UNAVAILABLE_CODES = new Set([
  "57P01",
  "57P02",
  "57P03",
  "53300",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
]);
const UNAVAILABLE_MESSAGES =
  /Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect|Client was closed/i;

/**
 * A lost or refused connection to PostgreSQL as a classed error (transient, DatabaseUnavailable:
 * the gateway answers 503 with Retry-After); anything else as it is.
 */
export function databaseUnavailable(err: unknown): unknown {
  if (err instanceof ConnectorError || !(err instanceof Error)) return err;
  const code = (err as { code?: unknown }).code;
  const lost =
    (typeof code === "string" && (code.startsWith("08") || UNAVAILABLE_CODES.has(code))) ||
    UNAVAILABLE_MESSAGES.test(err.message);
  if (!lost) return err;
  return new ConnectorError(
    "transient",
    "DatabaseUnavailable",
    `PostgreSQL is unavailable${typeof code === "string" ? ` (${code})` : ""}; retry shortly`,
    { retryAfterMs: 1000, cause: err },
  );
}

/** The pool as Kysely sees it, with connection failures classed (databaseUnavailable). */
function classedPool(pool: pg.Pool) {
  const classed = (e: unknown) => {
    throw databaseUnavailable(e);
  };
  return {
    async connect() {
      const client = await pool.connect().catch(classed);
      return new Proxy(client, {
        get(target, prop, receiver) {
          if (prop !== "query") return Reflect.get(target, prop, receiver) as unknown;
          return (...args: Parameters<pg.PoolClient["query"]>) => {
            const r = (target.query as (...a: unknown[]) => unknown)(...args);
            return r instanceof Promise ? r.catch(classed) : r;
          };
        },
      });
    },
    end: () => pool.end(),
    // Kysely's query cancellation opens a control connection with these.
    options: pool.options,
    Client: pg.Client,
  };
}

export interface OpenDatabaseOptions {
  /** A postgres:// (or postgresql://) URL. When set, a pg.Pool is used. */
  url?: string;
  /** PGlite data directory; undefined or "memory://" keeps the database in memory. */
  dataDir?: string;
  /** pg only: the pool's size. */
  maxConnections?: number;
  /** pg only: errors on idle pooled connections (the pool drops the connection either way). */
  onError?: (err: Error) => void;
}

/**
 * How the database was reached, for a library that opens its own connections to the same
 * database (pg-boss, see jobEngine.ts). The URL may carry a password: never log it.
 */
export type DatabaseSource = { dialect: "pg"; url: string } | { dialect: "pglite"; pglite: PGlite };

export interface OpenedDatabase {
  db: Kysely<Database>;
  dialect: "pg" | "pglite";
  source: DatabaseSource;
  /**
   * LISTENs on a channel. `onLost` fires once if the listening connection dies (e.g. its
   * backend was terminated); the caller subscribes again. Resolves with an unsubscribe.
   */
  subscribe(
    channel: string,
    onMessage: (payload: string) => void,
    onLost: (err: Error) => void,
  ): Promise<() => Promise<void>>;
  /**
   * Takes a session-level advisory lock on its own connection, waiting (polling every
   * `pollMs`) until it is free or the signal aborts; `onLost` fires if that connection
   * dies. The leader holds it so that a deposed leader cannot write alongside a new one.
   */
  advisoryLock(
    key: string,
    signal: AbortSignal,
    onLost: (err: Error) => void,
    pollMs?: number,
  ): Promise<(() => Promise<void>) | undefined>;
  /** A trivial query, for readiness. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

const INT8_OID = 20;

function parseInt8(value: string): number {
  return Number(value);
}

/** Type parsers for this pool only: int8 as number, everything else as pg's defaults. */
const pgTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") => {
    if (oid === INT8_OID && (format === undefined || format === "text")) return parseInt8;
    return pg.types.getTypeParser(oid, format);
  }) as pg.CustomTypesConfig["getTypeParser"],
};

export async function openDatabase(opts: OpenDatabaseOptions): Promise<OpenedDatabase> {
  if (opts.url !== undefined && opts.url !== "") {
    const pool = new pg.Pool({
      connectionString: opts.url,
      types: pgTypes,
      max: opts.maxConnections ?? 10,
      application_name: "connector-controller",
    });
    pool.on("error", (err) => opts.onError?.(err));
    // A pooled client whose server goes away while it is being ended (a database dropped or
    // restarted at shutdown) emits "error" with no pool listener left: report, never crash.
    pool.on("connect", (client) => client.on("error", (err) => opts.onError?.(err)));
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: classedPool(pool) }) });
    try {
      // Fail here, with the reason, rather than on the first query.
      const client = await pool.connect();
      client.release();
    } catch (err) {
      await db.destroy();
      throw new Error(`cannot connect to PostgreSQL at ${redactUrl(opts.url)}: ${String(err)}`, {
        cause: err,
      });
    }
    const url = opts.url;
    return {
      db,
      dialect: "pg",
      source: { dialect: "pg", url },
      async subscribe(channel, onMessage, onLost) {
        // A dedicated connection: a pooled one could be handed to a query mid-LISTEN.
        const client = new pg.Client({
          connectionString: url,
          application_name: "connector-controller-listen",
        });
        let lost = false;
        const lose = (err: Error) => {
          if (lost) return;
          lost = true;
          onLost(err);
        };
        client.on("error", lose);
        client.on("end", () => lose(new Error("LISTEN connection ended")));
        client.on("notification", (m) => {
          if (m.channel === channel) onMessage(m.payload ?? "");
        });
        await client.connect();
        await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
        return async () => {
          lost = true;
          await client.end().catch(() => {});
        };
      },
      async ping() {
        await sql`select 1`.execute(db);
      },
      async advisoryLock(key, signal, onLost, pollMs = 1000) {
        const client = new pg.Client({
          connectionString: url,
          application_name: "connector-controller-leader",
        });
        let released = false;
        const lose = (err: Error) => {
          if (!released) onLost(err);
          released = true;
        };
        client.on("error", lose);
        client.on("end", () => lose(new Error("leader lock connection ended")));
        await client.connect();
        while (!signal.aborted) {
          const r = await client.query("select pg_try_advisory_lock(hashtext($1)) as ok", [key]);
          if (r.rows[0]?.ok) {
            return async () => {
              released = true;
              await client.end().catch(() => {});
            };
          }
          await new Promise((res) => setTimeout(res, pollMs));
        }
        released = true;
        await client.end().catch(() => {});
        return undefined;
      },
      async close() {
        // Kysely only tears down a driver it has used; end the pool ourselves too.
        await db.destroy();
        if (!pool.ended) await pool.end();
      },
    };
  }

  const dataDir = opts.dataDir === undefined || opts.dataDir === "memory://" ? undefined : opts.dataDir;
  const pglite = await PGlite.create(dataDir, {
    parsers: { [INT8_OID]: (value: string) => parseInt8(value) },
  });
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
  return {
    db,
    dialect: "pglite",
    source: { dialect: "pglite", pglite },
    async ping() {
      await pglite.query("select 1");
    },
    async advisoryLock() {
      // One process owns a PGlite database: there is nobody to fence.
      return async () => {};
    },
    async subscribe(channel, onMessage) {
      // PGlite lives in this process: its connection cannot be lost from outside.
      return pglite.listen(channel, onMessage);
    },
    async close() {
      // Kysely closes PGlite only if a query ran; close it ourselves otherwise.
      await db.destroy();
      if (!pglite.closed) await pglite.close();
    },
  };
}

/** The URL without its password, for error messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable database URL)";
  }
}
