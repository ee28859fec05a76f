// The postgres operations (query, describeSchema, execute) through the runner
// (drivers/run.ts), against the real PostgreSQL (startPostgres: a fresh database on
// TEST_DATABASE_URL). Roles with chosen grants (a reader, a writer, one that may not log in)
// are created for the file and dropped after it. Every input passes the catalog's
// inputSchema and every result its outputSchema (ajv); the database is checked afterwards
// with an admin connection, so "refused" means nothing happened.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProbeInput } from "../../controller/src/api/model.ts";
import type { JsonObject } from "../../controller/src/api/types.ts";
import { runOperation } from "../../controller/src/drivers/run.ts";
import { recordingLogger } from "../support/memory.ts";
import { failure, loadType, operationRunner } from "../support/operationHarness.ts";
import { startPostgres, type TestPostgres } from "../support/postgres.ts";
import { startSilentServer } from "../support/probeServers.ts";

const PG = loadType("postgres");
const { log, lines: logLines } = recordingLogger();
const { op, inputValid, seen } = operationRunner(log);

const READER = `ops_reader_${process.pid}`;
const WRITER = `ops_writer_${process.pid}`;
const NOLOGIN = `ops_nologin_${process.pid}`;
const READER_PW = "pg-reader-pw-Hk29xq";
const WRITER_PW = "pg-writer-pw-Lm84zt";

let server: TestPostgres;
let target: { host: string; port: number; database: string };

async function admin<T extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values: unknown[] = []) {
  const c = new pg.Client({ connectionString: server.url });
  await c.connect();
  try {
    return await c.query<T>(text, values);
  } finally {
    await c.end();
  }
}

const itemCount = async () =>
  Number((await admin<{ n: string }>("SELECT count(*) AS n FROM app.items")).rows[0]!.n);

beforeAll(async () => {
  server = await startPostgres();
  const u = new URL(server.url);
  target = { host: u.hostname, port: Number(u.port || 5432), database: u.pathname.slice(1) };
  await admin(`
    CREATE ROLE ${READER} LOGIN PASSWORD '${READER_PW}';
    CREATE ROLE ${WRITER} LOGIN PASSWORD '${WRITER_PW}';
    CREATE ROLE ${NOLOGIN} NOLOGIN;
    CREATE SCHEMA app;
    CREATE SCHEMA other;
    CREATE TABLE app.items (
      id serial PRIMARY KEY, name text NOT NULL, qty int, price numeric(10, 2), tags text[],
      meta jsonb, created timestamptz DEFAULT '2025-03-01 10:00:00+00', big bigint);
    INSERT INTO app.items (name, qty, price, tags, meta, big) VALUES
      ('disk', 2, 19.99, '{ssd,fast}', '{"vendor": "acme", "ok": true}', 9007199254740993),
      ('cpu', 1, 250, '{}', NULL, NULL),
      ('ram', 8, 30.5, '{ddr5}', '{"gb": 16}', 1);
    CREATE VIEW app.item_names AS SELECT id, name FROM app.items;
    CREATE TABLE app.secret_things (id int, token text);
    CREATE TABLE other.notes (id int, body text);
    GRANT USAGE ON SCHEMA app, other TO ${READER}, ${WRITER};
    GRANT SELECT ON app.items, app.item_names, other.notes TO ${READER};
    GRANT SELECT, INSERT, UPDATE, DELETE ON app.items TO ${WRITER};
    GRANT USAGE ON SEQUENCE app.items_id_seq TO ${WRITER};
  `);
});

afterAll(async () => {
  if (!server) return;
  // Roles belong to the server, not the database: dropped once the database (and its grants) is
  // gone, on a server that outlives this file (an embedded one goes with its roles).
  if (!server.sharedServer) return server.stop();
  const adminUrl = new URL(server.url);
  adminUrl.pathname = "/postgres";
  await server.stop();
  const c = new pg.Client({ connectionString: adminUrl.toString() });
  await c.connect();
  try {
    for (const role of [READER, WRITER, NOLOGIN]) await c.query(`DROP ROLE IF EXISTS ${role}`);
  } finally {
    await c.end();
  }
});

function postgres(
  config: JsonObject = {},
  credentials: Record<string, string> = { username: READER, password: READER_PW },
): ProbeInput {
  return {
    type: PG,
    typeVersion: 1,
    // The machine's server has no TLS: sslmode disable (the driver warns); TLS modes are the health tests'.
    config: { ...target, sslmode: "disable", searchPath: ["app", "public"], ...config },
    credentials,
    timeoutMs: 10_000,
  };
}
const writer = (config: JsonObject = {}) =>
  postgres({ readOnly: false, ...config }, { username: WRITER, password: WRITER_PW });

type Rows = {
  command: string;
  columns: { name: string; type: string }[];
  rows: unknown[][];
  rowCount: number;
  truncated: boolean;
};
const rowsOf = async (input: JsonObject, connector = postgres()) =>
  (await op("query", input, connector)).data as Rows;

describe("query", () => {
  it("returns columns with their type names and rows as JSON values; parameters are bound", async () => {
    const r = await rowsOf({
      sql: "SELECT id, name, qty, price, tags, meta, created, big FROM items WHERE qty >= $1 ORDER BY id",
      params: [2],
    });
    expect(r.columns.map((c) => [c.name, c.type])).toEqual([
      ["id", "integer"],
      ["name", "text"],
      ["qty", "integer"],
      ["price", "numeric"],
      ["tags", "text[]"],
      ["meta", "jsonb"],
      ["created", "timestamp with time zone"],
      ["big", "bigint"],
    ]);
    expect(r.rows).toEqual([
      [
        1,
        "disk",
        2,
        "19.99",
        ["ssd", "fast"],
        { vendor: "acme", ok: true },
        "2025-03-01 10:00:00+00",
        "9007199254740993",
      ],
      [3, "ram", 8, "30.50", ["ddr5"], { gb: 16 }, "2025-03-01 10:00:00+00", "1"],
    ]);
    expect(r).toMatchObject({ command: "SELECT", rowCount: 2, truncated: false });
  });

  it("never writes a parameter into the statement", async () => {
    const evil = "x'); DROP TABLE app.items; --";
    const r = await rowsOf({ sql: "SELECT $1::text AS v, count(*)::int AS n FROM items", params: [evil] });
    expect(r.rows).toEqual([[evil, 3]]);
    expect(await itemCount()).toBe(3);
  });

  it("stops at the row cap (input, never above the config's maxRows) and says truncated", async () => {
    const sql = "SELECT g FROM generate_series(1, 50) g";
    const ten = await op("query", { sql, maxRows: 10 }, postgres());
    expect(ten.data).toMatchObject({
      rowCount: 10,
      truncated: true,
      rows: Array.from({ length: 10 }, (_, i) => [i + 1]),
    });
    expect(ten.warnings).toEqual(["only the first 10 rows are returned"]);
    expect(await rowsOf({ sql, maxRows: 10 }, postgres({ maxRows: 5 }))).toMatchObject({
      rowCount: 5,
      truncated: true,
    });
    expect(await rowsOf({ sql, maxRows: 50 })).toMatchObject({ rowCount: 50, truncated: false });
    expect(await rowsOf({ sql })).toMatchObject({ rowCount: 50, truncated: false });
  });

  it("runs SHOW and EXPLAIN; the session has the config's search_path and UTC", async () => {
    expect((await rowsOf({ sql: "SHOW search_path" })).rows).toEqual([['"app", "public"']]);
    expect((await rowsOf({ sql: "  -- a comment\n/* and /* nested */ one */ SHOW TimeZone" })).rows).toEqual([
      ["UTC"],
    ]);
    const plan = await rowsOf({ sql: "EXPLAIN SELECT * FROM items WHERE id = $1", params: [1] });
    expect(plan).toMatchObject({ command: "EXPLAIN", columns: [{ name: "QUERY PLAN", type: "text" }] });
    expect(String(plan.rows[0]![0])).toMatch(/Scan/);
    expect(await rowsOf({ sql: "(VALUES (1), (2))" })).toMatchObject({ command: "VALUES", rows: [[1], [2]] });
  });

  it("refuses a second statement: nothing after the first ever runs", async () => {
    for (const sql of ["SELECT 1; DROP TABLE app.items", "SELECT 1; SELECT 2", "SELECT 1;;SELECT 2"]) {
      const e = await failure(op("query", { sql }, writer()));
      expect(e, sql).toMatchObject({ errorClass: "validation_error", reason: "MultipleStatements" });
    }
    expect(await itemCount()).toBe(3);
  });

  it("is read-only, whatever the statement tries, even for a role that may write", async () => {
    const cases: [string, object][] = [
      ["DELETE FROM items", { errorClass: "validation_error", reason: "InvalidInput" }],
      [
        "WITH d AS (DELETE FROM items RETURNING *) SELECT * FROM d",
        { errorClass: "validation_error", reason: "InvalidStatement" },
      ],
      ["SELECT nextval('app.items_id_seq')", { errorClass: "policy_denied", reason: "ReadOnlyTransaction" }],
      ["EXPLAIN ANALYZE DELETE FROM items", { errorClass: "policy_denied", reason: "ReadOnlyTransaction" }],
      ["SELECT * FROM items FOR UPDATE", { errorClass: "policy_denied", reason: "ReadOnlyTransaction" }],
    ];
    for (const [sql, expected] of cases)
      expect(await failure(op("query", { sql }, writer())), sql).toMatchObject(expected);
    expect(await itemCount()).toBe(3);
    expect(
      (await admin<{ v: string }>("SELECT last_value::text AS v FROM app.items_id_seq")).rows[0]!.v,
    ).toBe("3");
  });

  it("the caller's mistakes are validation errors naming the server's message; a missing grant is policy_denied", async () => {
    const nope = await failure(op("query", { sql: "SELECT * FROM nope" }, postgres()));
    expect(nope).toMatchObject({ errorClass: "validation_error", reason: "InvalidStatement" });
    expect(nope.message).toContain('SQLSTATE 42P01: relation "nope" does not exist');
    expect(await failure(op("query", { sql: "SELECT $1::int", params: ["abc"] }, postgres()))).toMatchObject({
      errorClass: "validation_error",
      reason: "InvalidStatement",
    });
    expect(await failure(op("query", { sql: "SELECT * FROM secret_things" }, postgres()))).toMatchObject({
      errorClass: "policy_denied",
      reason: "InsufficientPrivilege",
    });
    expect(inputValid("query", { sql: "" }, postgres())).toBe(false);
    expect(await failure(runOperation("query", { sql: "" }, postgres(), log))).toMatchObject({
      errorClass: "validation_error",
    });
  });

  it("statement_timeout comes from the call's deadline: the server cancels the statement and stops the work", async () => {
    const started = performance.now();
    const e = await failure(op("query", { sql: "SELECT pg_sleep(30)" }, { ...postgres(), timeoutMs: 1500 }));
    expect(performance.now() - started).toBeLessThan(2500);
    expect(e).toMatchObject({ errorClass: "transient", reason: "Timeout" });
    expect(e.message).toContain("SQLSTATE 57014");
    // The session is closed, not left sleeping on the server.
    const sessions = async () =>
      (await admin("SELECT pid FROM pg_stat_activity WHERE usename = $1", [READER])).rows.length;
    for (let i = 0; i < 20 && (await sessions()) > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await sessions()).toBe(0);
  });
});

describe("describeSchema", () => {
  type Described = {
    tables: { schema: string; name: string; kind: string; columns?: JsonObject[] }[];
    truncated: boolean;
  };
  const describe_ = async (input: JsonObject, connector = postgres()) =>
    (await op("describeSchema", input, connector)).data as Described;

  it("lists the tables and views of the config's searchPath that the role may use, with their columns", async () => {
    const d = await describe_({});
    expect(d.tables.map((t) => [t.schema, t.name, t.kind])).toEqual([
      ["app", "item_names", "view"],
      ["app", "items", "table"],
    ]);
    expect(d.tables[1]!.columns!.slice(0, 3)).toEqual([
      { name: "id", type: "integer", nullable: false },
      { name: "name", type: "text", nullable: false },
      { name: "qty", type: "integer", nullable: true },
    ]);
    expect(d.tables[1]!.columns!.map((c) => c["type"])).toContain("numeric(10,2)");
    expect(d.truncated).toBe(false);
    const bare = await describe_({ includeColumns: false });
    expect(bare.tables[0]).toEqual({ schema: "app", name: "item_names", kind: "view" });
  });

  it("without searchPath every non-system schema; asked schemas narrow it, outside searchPath is policy_denied", async () => {
    const all = await describe_({}, postgres({ searchPath: [] }));
    expect(all.tables.map((t) => `${t.schema}.${t.name}`)).toEqual([
      "app.item_names",
      "app.items",
      "other.notes",
    ]);
    expect(
      (await describe_({ schemas: ["other"] }, postgres({ searchPath: [] }))).tables.map((t) => t.name),
    ).toEqual(["notes"]);
    expect(await failure(op("describeSchema", { schemas: ["other"] }, postgres()))).toMatchObject({
      errorClass: "policy_denied",
      reason: "SchemaNotAllowed",
    });
  });
});

describe("execute", () => {
  it("runs INSERT, UPDATE, DELETE with parameters, committed, with their row counts", async () => {
    const ins = await op(
      "execute",
      { sql: "INSERT INTO items (name, qty) VALUES ($1, $2)", params: ["gpu", 4] },
      writer(),
    );
    expect(ins.data).toEqual({ command: "INSERT", rowCount: 1 });
    const upd = await op(
      "execute",
      { sql: "UPDATE items SET qty = qty + 1 WHERE qty < $1", params: [3] },
      writer(),
    );
    expect(upd.data).toEqual({ command: "UPDATE", rowCount: 2 });
    expect((await admin("SELECT qty FROM app.items WHERE name = 'gpu'")).rows).toEqual([{ qty: 4 }]);
    const del = await op(
      "execute",
      { sql: "/* cleanup */ DELETE FROM items WHERE name = $1", params: ["gpu"] },
      writer(),
    );
    expect(del.data).toEqual({ command: "DELETE", rowCount: 1 });
    expect(await itemCount()).toBe(3);
  });

  it("a read-only connector (readOnly unset or true) never executes", async () => {
    for (const connector of [
      postgres({}, { username: WRITER, password: WRITER_PW }),
      writer({ readOnly: true }),
    ]) {
      const e = await failure(op("execute", { sql: "DELETE FROM items" }, connector));
      expect(e).toMatchObject({ errorClass: "policy_denied", reason: "ReadOnlyConnector" });
    }
    expect(await itemCount()).toBe(3);
  });

  it("refuses DDL, DO blocks and other statements, and a second statement; nothing changes", async () => {
    for (const sql of [
      "DROP TABLE items",
      "/* x */ drop table items",
      "TRUNCATE items",
      "DO $$BEGIN DELETE FROM app.items; END$$",
      "CREATE TABLE app.x (id int)",
      "GRANT ALL ON items TO PUBLIC",
      "COMMIT",
    ]) {
      const e = await failure(op("execute", { sql }, writer()));
      expect(e, sql).toMatchObject({ errorClass: "policy_denied", reason: "StatementNotAllowed" });
    }
    const two = await failure(
      op("execute", { sql: "INSERT INTO items (name) VALUES ('a'); DROP TABLE items" }, writer()),
    );
    expect(two).toMatchObject({ errorClass: "validation_error", reason: "MultipleStatements" });
    expect(await itemCount()).toBe(3);
  });

  it("a constraint violation is permanent; a role without the grant is policy_denied", async () => {
    expect(
      await failure(op("execute", { sql: "INSERT INTO items (id, name) VALUES (1, 'dup')" }, writer())),
    ).toMatchObject({
      errorClass: "permanent",
      reason: "ConstraintViolation",
    });
    const reader = postgres({ readOnly: false });
    expect(
      await failure(op("execute", { sql: "INSERT INTO items (name) VALUES ('x')" }, reader)),
    ).toMatchObject({
      errorClass: "policy_denied",
      reason: "InsufficientPrivilege",
    });
    expect(await itemCount()).toBe(3);
  });
});

describe("sessions fail classed, and dropDatabase never runs", () => {
  it("a role that may not log in => AuthenticationFailed; a missing database => InvalidConfig", async () => {
    expect(
      await failure(
        op("query", { sql: "SELECT 1" }, postgres({}, { username: NOLOGIN, password: "nologin-pw-x1" })),
      ),
    ).toMatchObject({
      errorClass: "permanent",
      reason: "AuthenticationFailed",
    });
    const db = await failure(op("describeSchema", {}, postgres({ database: "no_such_db_here" })));
    expect(db).toMatchObject({ errorClass: "permanent", reason: "InvalidConfig" });
  });

  it("nothing listening => transient ConnectionFailed; a silent server => Timeout; a host outside the allowlist => EgressDenied", async () => {
    expect(
      await failure(op("query", { sql: "SELECT 1" }, postgres({ host: "127.0.0.1", port: 1 }))),
    ).toMatchObject({
      errorClass: "transient",
      reason: "ConnectionFailed",
    });
    const silent = await startSilentServer();
    try {
      const e = await failure(
        op("execute", { sql: "DELETE FROM items" }, { ...writer({ port: silent.port }), timeoutMs: 600 }),
      );
      expect(e).toMatchObject({ errorClass: "transient", reason: "Timeout" });
      await silent.waitForNoOpenSockets(2000);
    } finally {
      await silent.stop();
    }
    expect(await failure(op("query", { sql: "SELECT 1" }, postgres({ host: "db.evil.test" })))).toMatchObject(
      {
        errorClass: "policy_denied",
        reason: "EgressDenied",
      },
    );
  });

  it("dropDatabase is forbidden and never runs: the database is still there", async () => {
    const e = await failure(runOperation("dropDatabase", { database: target.database }, writer(), log));
    expect(e).toMatchObject({ errorClass: "policy_denied", reason: "OperationForbidden" });
    expect(
      (await admin("SELECT 1 FROM pg_database WHERE datname = $1", [target.database])).rows,
    ).toHaveLength(1);
  });
});

describe("no credential ever appears in a result, an error or a log line", () => {
  it("a password that comes back in a row is scrubbed", async () => {
    const r = await rowsOf({ sql: "SELECT $1::text AS echoed", params: [`pw=${READER_PW}`] });
    expect(r.rows).toEqual([["pw=[REDACTED]"]]);
  });

  it("scans everything this file produced", () => {
    expect(seen.length).toBeGreaterThan(40);
    for (const secret of [READER_PW, WRITER_PW, "nologin-pw-x1"])
      for (const text of [...seen, ...logLines]) expect(text.includes(secret), text).toBe(false);
  });
});
