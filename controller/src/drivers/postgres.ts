// The postgres type. The health check connects (postgresSession.ts: sslmode, credentials),
// runs SELECT 1 and closes. Operations each open one session and one transaction:
// - query: one SELECT, WITH, VALUES or TABLE statement through a cursor (FETCH stops at the
//   row cap + 1, so truncated is known without reading the rest), or one SHOW or EXPLAIN, in
//   a READ ONLY transaction; columns with their type names, rows as arrays.
// - describeSchema: tables and views, with their columns, of the allowed schemas
//   (config.searchPath when set, else every non-system schema) that the role may use.
// - execute: one INSERT, UPDATE, DELETE or MERGE (or WITH ... of them) in a transaction of
//   the role's default mode, committed; only when config.readOnly is false. DDL, DO blocks and
//   the rest are policy_denied: dropping is never allowed. The role's privileges remain the
//   boundary; this check only keeps the operation to what it says.
// Every statement goes through the extended protocol, so the server refuses a second
// statement, and parameters ($1...) travel apart from the text. statement_timeout is set
// from what is left of the call's deadline (and config.statementTimeoutMs), so the server
// stops the work before the runner hangs up; TimeZone is UTC and search_path the config's.
import pg from "pg";
import { ConnectorError } from "../api/errors.ts";
import type { JsonObject, JsonValue } from "../api/types.ts";
import { bool, inputError, int, str, strings } from "./config.ts";
import type { Driver, DriverCall, OperationResult, ProviderReply } from "./driver.ts";
import { where } from "./failures.ts";
import { classifyPostgres, postgresTarget, withPgSession } from "./postgresSession.ts";

const DEFAULT_MAX_ROWS = 1000;
const DEFAULT_STATEMENT_TIMEOUT_MS = 30_000;
/** Time kept back from the deadline so the server's own cancel arrives before the runner's abort. */
const DEADLINE_MARGIN_MS = 250;
const CURSOR = "cynode_rows";
const THROUGH_CURSOR = ["SELECT", "WITH", "VALUES", "TABLE"];
const DIRECT = ["SHOW", "EXPLAIN"];
const WRITES = ["INSERT", "UPDATE", "DELETE", "MERGE", "WITH"];

function health(call: DriverCall): Promise<ProviderReply> {
  return withPgSession(call, async (client) => {
    await client.query("SELECT 1");
    return {};
  });
}

/** The statement's first keyword, past comments and opening parentheses (upper case). */
function leadingKeyword(sql: string): string | undefined {
  let i = 0;
  for (;;) {
    while (i < sql.length && /\s|\(/.test(sql[i]!)) i++;
    if (sql.startsWith("--", i)) {
      const end = sql.indexOf("\n", i);
      i = end < 0 ? sql.length : end + 1;
    } else if (sql.startsWith("/*", i)) {
      // Block comments nest in PostgreSQL.
      let depth = 0;
      do {
        const step = sql.slice(i, i + 2);
        depth += step === "/*" ? 1 : step === "*/" ? -1 : 0;
        i += step === "/*" || step === "*/" ? 2 : 1;
      } while (depth > 0 && i < sql.length);
    } else break;
  }
  return /^[A-Za-z]+/.exec(sql.slice(i))?.[0]?.toUpperCase();
}

function statement(
  input: JsonObject,
  call: DriverCall,
  allowed: readonly string[],
): { sql: string; keyword: string } {
  const sql = str(input, "sql") ?? "";
  const keyword = leadingKeyword(sql);
  if (keyword === undefined || !allowed.includes(keyword))
    throw inputError(where(call), "sql", `must be one ${allowed.join(", ")} statement`);
  return { sql, keyword };
}

function params(input: JsonObject): JsonValue[] {
  const v = input["params"];
  return Array.isArray(v) ? v : [];
}

/** The extended protocol even without parameters (queryMode is node-postgres API, missing from @types/pg). */
function extended(text: string, values: JsonValue[] = [], rows = false): pg.QueryConfig {
  return {
    text,
    values,
    queryMode: "extended",
    ...(rows ? { rowMode: "array", types: JSON_TYPES } : {}),
  } as pg.QueryConfig;
}

// --- values as JSON ----------------------------------------------------------------------------

const finite = (v: string): JsonValue => (Number.isFinite(Number(v)) ? Number(v) : v);
/** Types with a faithful JSON form; everything else keeps PostgreSQL's text (int8 and numeric too: no precision lost). */
const PARSERS: Record<number, (v: string) => JsonValue> = {
  16: (v) => v === "t",
  21: Number,
  23: Number,
  26: Number,
  700: finite,
  701: finite,
  114: (v) => JSON.parse(v) as JsonValue,
  3802: (v) => JSON.parse(v) as JsonValue,
};
const ARRAYS = new Set([1000, 1005, 1007, 1009, 1015]); // bool[], int2[], int4[], text[], varchar[]

const JSON_TYPES = {
  getTypeParser: (oid: number) => {
    const parser = PARSERS[oid];
    if (parser) return parser;
    if (ARRAYS.has(oid)) return pg.types.getTypeParser(oid, "text");
    return (v: string) => v;
  },
} as unknown as pg.CustomTypesConfig;

// --- the transaction ---------------------------------------------------------------------------

/** statement_timeout: the config's, but never past what is left of the call's deadline. */
function statementTimeoutMs(call: DriverCall, started: number): number {
  const left = call.timeoutMs - (performance.now() - started) - DEADLINE_MARGIN_MS;
  if (left < 50)
    throw new ConnectorError("transient", "Timeout", `${where(call)}: no time left for the statement`);
  return Math.floor(Math.min(int(call.config, "statementTimeoutMs") ?? DEFAULT_STATEMENT_TIMEOUT_MS, left));
}

async function begin(client: pg.Client, call: DriverCall, started: number, readOnly: boolean): Promise<void> {
  await client.query(readOnly ? "BEGIN READ ONLY" : "BEGIN");
  const settings: [string, string][] = [
    ["statement_timeout", String(statementTimeoutMs(call, started))],
    ["TimeZone", "UTC"],
  ];
  const searchPath = strings(call.config, "searchPath");
  if (searchPath.length > 0)
    settings.push(["search_path", searchPath.map((s) => client.escapeIdentifier(s)).join(", ")]);
  await client.query(
    extended(
      `SELECT ${settings.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, true)`).join(", ")}`,
      settings.flat(),
    ),
  );
}

function rowCap(input: JsonObject, call: DriverCall): number {
  const cap = int(call.config, "maxRows") ?? DEFAULT_MAX_ROWS;
  return Math.max(1, Math.min(int(input, "maxRows") ?? cap, cap));
}

async function columnTypes(client: pg.Client, fields: pg.FieldDef[]): Promise<Map<number, string>> {
  const oids = [...new Set(fields.map((f) => f.dataTypeID))];
  const r = await client.query<{ oid: number; name: string }>(
    extended(
      "SELECT oid::int AS oid, format_type(oid, NULL) AS name FROM pg_catalog.pg_type WHERE oid = ANY($1::oid[])",
      [oids],
    ),
  );
  return new Map(r.rows.map((t) => [t.oid, t.name]));
}

async function query(input: JsonObject, call: DriverCall): Promise<OperationResult> {
  const started = performance.now();
  const { sql, keyword } = statement(input, call, [...THROUGH_CURSOR, ...DIRECT]);
  const maxRows = rowCap(input, call);
  return withPgSession(call, async (client) => {
    await begin(client, call, started, true);
    let result: pg.QueryResult<JsonValue[]>;
    if (DIRECT.includes(keyword)) result = await client.query(extended(sql, params(input), true));
    else {
      await client.query(extended(`DECLARE ${CURSOR} NO SCROLL CURSOR FOR ${sql}`, params(input)));
      result = await client.query(extended(`FETCH FORWARD ${maxRows + 1} FROM ${CURSOR}`, [], true));
    }
    const types = await columnTypes(client, result.fields);
    await client.query("ROLLBACK");
    const rows = result.rows.slice(0, maxRows);
    const truncated = result.rows.length > maxRows;
    return {
      data: {
        command: keyword,
        columns: result.fields.map((f) => ({
          name: f.name,
          type: types.get(f.dataTypeID) ?? "unknown",
          typeOid: f.dataTypeID,
        })),
        rows,
        rowCount: rows.length,
        truncated,
      },
      ...(truncated ? { warnings: [`only the first ${maxRows} rows are returned`] } : {}),
    };
  });
}

const KINDS: Record<string, string> = {
  r: "table",
  p: "partitioned_table",
  v: "view",
  m: "materialized_view",
  f: "foreign_table",
};
const MAX_TABLES = 1000;

/** Relations (not partitions) of these schemas (all non-system ones when none) the role may use, and their columns. */
async function describeTables(client: pg.Client, schemas: string[], withColumns: boolean) {
  const tables = await client.query<{ oid: string; schema: string; name: string; kind: string }>(
    extended(
      `SELECT c.oid::int8::text AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS kind
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
          AND (cardinality($1::text[]) = 0 OR n.nspname = ANY($1::text[]))
          AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
          AND has_schema_privilege(n.oid, 'USAGE')
          AND has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')
        ORDER BY n.nspname, c.relname LIMIT $2`,
      [schemas, MAX_TABLES + 1],
    ),
  );
  const listed = tables.rows.slice(0, MAX_TABLES);
  const columns = new Map<string, JsonObject[]>();
  if (withColumns && listed.length > 0) {
    const r = await client.query<{ oid: string; name: string; type: string; nullable: boolean }>(
      extended(
        `SELECT a.attrelid::int8::text AS oid, a.attname AS name,
                format_type(a.atttypid, a.atttypmod) AS type, NOT a.attnotnull AS nullable
           FROM pg_catalog.pg_attribute a
          WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
            AND has_column_privilege(a.attrelid, a.attnum, 'SELECT, INSERT, UPDATE, REFERENCES')
          ORDER BY a.attrelid, a.attnum`,
        [listed.map((t) => t.oid)],
      ),
    );
    for (const c of r.rows)
      columns.set(c.oid, [
        ...(columns.get(c.oid) ?? []),
        { name: c.name, type: c.type, nullable: c.nullable },
      ]);
  }
  return {
    tables: listed.map((t) => ({
      schema: t.schema,
      name: t.name,
      kind: KINDS[t.kind] ?? t.kind,
      ...(withColumns ? { columns: columns.get(t.oid) ?? [] } : {}),
    })),
    truncated: tables.rows.length > MAX_TABLES,
  };
}

async function describeSchema(input: JsonObject, call: DriverCall): Promise<OperationResult> {
  const started = performance.now();
  const allowed = strings(call.config, "searchPath");
  const asked = strings(input, "schemas");
  const outside = asked.find((s) => allowed.length > 0 && !allowed.includes(s));
  if (outside !== undefined)
    throw new ConnectorError(
      "policy_denied",
      "SchemaNotAllowed",
      `${where(call)}: schema ${JSON.stringify(outside)} is not in spec.config.searchPath`,
      { problems: [{ path: "input.schemas", message: "must be schemas of spec.config.searchPath" }] },
    );
  const schemas = asked.length > 0 ? asked : allowed;
  return withPgSession(call, async (client) => {
    await begin(client, call, started, true);
    const found = await describeTables(client, schemas, bool(input, "includeColumns") !== false);
    await client.query("ROLLBACK");
    return {
      data: found,
      ...(found.truncated ? { warnings: ["only the first tables are listed"] } : {}),
    };
  });
}

async function execute(input: JsonObject, call: DriverCall): Promise<OperationResult> {
  const started = performance.now();
  if (bool(call.config, "readOnly") !== false)
    throw new ConnectorError(
      "policy_denied",
      "ReadOnlyConnector",
      `${where(call)}: the connector is read-only (spec.config.readOnly is not false)`,
    );
  const sql = str(input, "sql") ?? "";
  const keyword = leadingKeyword(sql);
  if (keyword === undefined || !WRITES.includes(keyword))
    throw new ConnectorError(
      "policy_denied",
      "StatementNotAllowed",
      `${where(call)}: execute runs one ${WRITES.join(", ")} statement, not ${keyword ?? "this"}`,
      { problems: [{ path: "input.sql", message: `must be one ${WRITES.join(", ")} statement` }] },
    );
  return withPgSession(call, async (client) => {
    await begin(client, call, started, false);
    const result = await client.query(extended(sql, params(input)));
    await client.query("COMMIT");
    return { data: { command: result.command, rowCount: result.rowCount ?? 0 } };
  });
}

export const postgresDriver: Driver = {
  target: postgresTarget,
  health,
  operations: { query, describeSchema, execute },
  classify: classifyPostgres,
};
