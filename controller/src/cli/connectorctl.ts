#!/usr/bin/env node
// connectorctl: offline validation for GitOps checks, and database chores.
import { parseArgs } from "node:util";
import { defaultCatalogDirs } from "../api/paths.ts";
import { formatAuditTable } from "./audit.ts";
import { formatProblem, validateFiles } from "./validate.ts";

const USAGE = `usage: connectorctl <command> [options]

commands:
  validate <files or dirs...>   check Connectors (and ConnectorTypes) offline
      --catalog DIR             ConnectorTypes to validate against (repeatable; default examples/types and
                                examples/policy-templates)
      --feature NAME            treat a feature flag as enabled (repeatable)
      --output text|json
  migrate                       run database migrations (DATABASE_URL, or PGlite at --data-dir)
      --database-url URL
      --data-dir DIR
  audit <namespace/name>        the audit trail of one Connector
      --database-url URL | --data-dir DIR
      --output table|json
`;

async function validate(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      catalog: { type: "string", multiple: true },
      feature: { type: "string", multiple: true },
      output: { type: "string", default: "text" },
    },
  });
  if (!positionals.length) throw new UsageError("validate needs at least one file or directory");
  if (values.output !== "text" && values.output !== "json")
    throw new UsageError("--output must be text or json");
  const report = validateFiles(positionals, {
    catalogPaths: values.catalog ?? defaultCatalogDirs,
    enabledFeatures: new Set(values.feature ?? []),
  });
  if (values.output === "json") {
    process.stdout.write(JSON.stringify(report, null, 2) + "\n");
  } else {
    for (const w of report.warnings) process.stdout.write(`warning: ${formatProblem(w)}\n`);
    for (const p of report.problems) process.stdout.write(formatProblem(p) + "\n");
    const summary = `${report.files} file(s), ${report.documents} document(s), ${report.problems.length} problem(s)`;
    (report.ok ? process.stdout : process.stderr).write(summary + "\n");
  }
  return report.ok ? 0 : 1;
}

const DB_OPTIONS = { "database-url": { type: "string" }, "data-dir": { type: "string" } } as const;

async function openFromFlags(values: { "database-url"?: string; "data-dir"?: string }) {
  const { openDatabase } = await import("../store/database.ts");
  const url = values["database-url"] ?? process.env.DATABASE_URL;
  const dataDir = values["data-dir"] ?? process.env.DATA_DIR ?? ".data/pglite";
  return openDatabase(url ? { url } : { dataDir });
}

async function audit(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { ...DB_OPTIONS, output: { type: "string", default: "table" } },
  });
  const [key] = positionals;
  const m = key ? /^([^/]+)\/([^/]+)$/.exec(key) : null;
  if (!m) throw new UsageError("audit needs one <namespace>/<name>");
  if (values.output !== "table" && values.output !== "json")
    throw new UsageError("--output must be table or json");
  const database = await openFromFlags(values);
  try {
    const { createInstanceStore } = await import("../store/instanceStore.ts");
    const events = await createInstanceStore(database.db).listAudit({ namespace: m[1]!, name: m[2]! });
    if (values.output === "json") process.stdout.write(JSON.stringify(events, null, 2) + "\n");
    else if (!events.length) process.stderr.write(`no audit events for ${key}\n`);
    else process.stdout.write(formatAuditTable(events));
  } finally {
    await database.close();
  }
  return 0;
}

async function migrate(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: DB_OPTIONS });
  const { migrateToLatest } = await import("../store/migrations.ts");
  const database = await openFromFlags(values);
  try {
    const ran = await migrateToLatest(database.db);
    process.stdout.write(
      ran.length ? `applied: ${ran.map((m) => m.migrationName).join(", ")}\n` : "database is up to date\n",
    );
  } finally {
    await database.close();
  }
  return 0;
}

class UsageError extends Error {}

const commands: Record<string, (argv: string[]) => Promise<number>> = { validate, migrate, audit };

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "help" || command === "--help" || command === "-h") {
    process.stdout.write(USAGE);
    return command ? 0 : 2;
  }
  const run = commands[command];
  if (!run) throw new UsageError(`unknown command "${command}"`);
  return run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const usage = err instanceof UsageError || (err as { code?: string })?.code?.startsWith("ERR_PARSE_ARGS");
    process.stderr.write(`connectorctl: ${(err as Error).message ?? String(err)}\n${usage ? USAGE : ""}`);
    process.exitCode = 2;
  },
);
