#!/usr/bin/env node
// connectorctl: offline validation for GitOps checks, what the cluster says (status), what an
// apply would change (diff), operations run through the gateway (invoke, jobs, approve), and
// database chores.
import { parseArgs } from "node:util";
import { existsSync } from "node:fs";
import { errorChainMessage } from "../api/errors.ts";
import { defaultCatalogDirs } from "../api/paths.ts";
import { buildInfo, versionLine } from "../observability/logger.ts";
import { readDocuments, readStdin, STDIN_ARG } from "./documents.ts";
import { DEFAULT_GATEWAY_URL } from "./gatewayClient.ts";
import { EXIT_CODES_HELP, exitCodeOf, formatFailure, GatewayError } from "./gatewayFailure.ts";
import { UsageError } from "./usageError.ts";

const USAGE = `usage: connectorctl <command> [options]

commands:
  validate <files, dirs or -...>  check Connectors (and ConnectorTypes) offline; - reads standard input
      --catalog DIR             ConnectorTypes to validate against (repeatable; default examples/types and
                                examples/policy-templates)
      --feature NAME            treat a feature flag as enabled (repeatable)
      --output text|json|junit  junit: JUnit XML for CI test reports
  status [NAME]                 Connectors with state, conditions, last error and drift, from the cluster
      -n, --namespace NS        one namespace (default: all)
      --output table|json
      --kubeconfig FILE         (default KUBECONFIG, then ~/.kube/config)
      --context NAME
  diff <files, dirs or -...>    what applying these files would change, in the cluster (server-side dry
                                run) and in the instance rows (spec vs database); exit 0 no differences,
                                1 differences, 2 trouble
      -n, --namespace NS        for Connectors that name none (default: the context's)
      --field-manager NAME      as whom the dry run applies (default kubectl, as kubectl apply --server-side)
      --feature NAME            a feature flag the controller has enabled (repeatable)
      --database-url URL | --data-dir DIR   the instance rows (default DATABASE_URL or DATA_DIR;
                                without one, only the cluster is compared)
      --kubeconfig FILE, --context NAME
  migrate                       run database migrations (DATABASE_URL, or PGlite at --data-dir)
      --database-url URL
      --data-dir DIR
  audit <namespace/name>        the audit trail of one Connector
      --database-url URL | --data-dir DIR
      --output table|json
  invoke <ns/name> <operation>  run an operation through the gateway; prints the normalized response
                                (JSON), or the job id when the operation runs as a job
      --input JSON | @FILE | @-   the operation's input (default {}); @- reads standard input
      --idempotency-key KEY       a repeat within the key's time to live returns the first result
      --approval TOKEN            for a class B operation (from connectorctl approve)
      --async                     run it as a job (mode async) and print the job id
      --wait                      when it runs as a job, wait until it ends and print its result
  jobs [ID]                     a namespace's async jobs (a table), or one job (JSON)
      -n, --namespace NS          (default: the kubeconfig context's namespace)
      --connector NAME            only this Connector's jobs
      --state STATE               pending, running, succeeded, failed or canceled
      --limit N                   at most N jobs, newest first
      --cancel                    cancel job ID (pending or running)
      --output table|json
  approve <ns/name> <operation> approve one class B call another principal will make (needs the
                                approve verb); prints the approval token for their --approval
      --input JSON | @FILE | @-   the exact input the call will carry
      --requester USER            who will make the call, as the API server names them
                                  (system:serviceaccount:NS:NAME for a ServiceAccount)
      --ttl DURATION              how long it holds (default 10m, at most 1h)
    gateway options of invoke, jobs and approve:
      --gateway URL               (default CONNECTOR_GATEWAY, then ${DEFAULT_GATEWAY_URL})
      --token TOKEN               a Kubernetes bearer token (default CONNECTOR_TOKEN, then the
                                  kubeconfig's current user's, e.g. from kubectl create token)
      --kubeconfig FILE, --context NAME
      --timeout DURATION          the longest one request may take (default 2m)
  version                       the version and commit (also --version)

${EXIT_CODES_HELP}`;

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
  if (!positionals.length)
    throw new UsageError("validate needs at least one file or directory (or - for standard input)");
  if (!["text", "json", "junit"].includes(values.output))
    throw new UsageError(`--output must be text, json or junit (not "${values.output}")`);
  // Each command loads what it needs: --version and --help answer without loading ajv and the CRDs.
  const { formatProblem, validateFiles } = await import("./validate.ts");
  const report = validateFiles(positionals, {
    catalogPaths: values.catalog ?? defaultCatalogDirs,
    enabledFeatures: new Set(values.feature ?? []),
    ...(positionals.includes(STDIN_ARG) ? { stdin: await readStdin() } : {}),
  });
  if (values.output === "json") {
    process.stdout.write(JSON.stringify(report, null, 2) + "\n");
  } else if (values.output === "junit") {
    const { formatJunit } = await import("./junit.ts");
    process.stdout.write(formatJunit(report));
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
    else process.stdout.write((await import("./audit.ts")).formatAuditTable(events));
  } finally {
    await database.close();
  }
  return 0;
}

const KUBE_OPTIONS = { kubeconfig: { type: "string" }, context: { type: "string" } } as const;

async function clusterFromFlags(values: { kubeconfig?: string; context?: string }) {
  const { connectCluster } = await import("../kube/cliClient.ts");
  return connectCluster({
    ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
    ...(values.context ? { context: values.context } : {}),
  });
}

async function status(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...KUBE_OPTIONS,
      namespace: { type: "string", short: "n" },
      output: { type: "string", short: "o", default: "table" },
    },
  });
  if (positionals.length > 1) throw new UsageError("status takes at most one Connector name");
  if (values.output !== "table" && values.output !== "json")
    throw new UsageError(`--output must be table or json (not "${values.output}")`);
  const [name] = positionals;
  const { summarize, formatStatusDetail, formatStatusTable } = await import("./status.ts");
  const cluster = await clusterFromFlags(values);
  const connectors = await cluster.listConnectors({
    ...(values.namespace ? { namespace: values.namespace } : {}),
    ...(name ? { name } : {}),
  });
  const list = connectors
    .map(summarize)
    .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
  if (values.output === "json") {
    process.stdout.write(JSON.stringify({ items: list }, null, 2) + "\n");
    return name && !list.length ? 1 : 0;
  }
  if (!list.length) {
    const where = values.namespace ? `namespace ${values.namespace}` : "any namespace";
    process.stderr.write(
      name ? `connector "${name}" not found in ${where}\n` : `no Connectors in ${where}\n`,
    );
    return name ? 1 : 0;
  }
  if (name) process.stdout.write(list.map((s) => formatStatusDetail(s)).join("\n"));
  else process.stdout.write(formatStatusTable(list, { namespaced: values.namespace !== undefined }));
  return 0;
}

async function diff(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...KUBE_OPTIONS,
      ...DB_OPTIONS,
      namespace: { type: "string", short: "n" },
      "field-manager": { type: "string", default: "kubectl" },
      feature: { type: "string", multiple: true },
    },
  });
  if (!positionals.length)
    throw new UsageError("diff needs at least one file or directory (or - for standard input)");
  const { diffDocuments, exitCode, summaryLine } = await import("./diff.ts");
  const read = readDocuments(positionals, positionals.includes(STDIN_ARG) ? await readStdin() : undefined);
  if (read.unreadable.length) {
    for (const u of read.unreadable) process.stderr.write(`${u.file}: (yaml): ${u.message}\n`);
    return 2;
  }
  const cluster = await clusterFromFlags(values);
  const database = hasDatabase(values) ? await openFromFlags(values) : undefined;
  try {
    const { createInstanceStore } = await import("../store/instanceStore.ts");
    const report = await diffDocuments(read.docs, {
      cluster,
      fieldManager: values["field-manager"],
      enabledFeatures: new Set(values.feature ?? []),
      ...(values.namespace ? { namespace: values.namespace } : {}),
      ...(database ? { instances: createInstanceStore(database.db) } : {}),
    });
    process.stdout.write(report.output);
    for (const s of report.skipped) process.stderr.write(`skipped ${s}: not a cynodeai.io resource\n`);
    for (const p of report.problems) process.stderr.write(`${p}\n`);
    if (!database)
      process.stderr.write(
        "instance rows not compared: give --database-url (or DATABASE_URL) or --data-dir\n",
      );
    process.stderr.write(summaryLine(report, database !== undefined) + "\n");
    return exitCode(report);
  } finally {
    await database?.close();
  }
}

/** Whether a database was named; a PGlite directory must exist (opening it would create an empty one). */
function hasDatabase(values: { "database-url"?: string; "data-dir"?: string }): boolean {
  if (values["database-url"] || process.env.DATABASE_URL) return true;
  const dir = values["data-dir"] ?? process.env.DATA_DIR;
  if (dir && !existsSync(dir)) throw new UsageError(`--data-dir: ${dir} does not exist`);
  return Boolean(dir);
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

async function invoke(argv: string[]): Promise<number> {
  const g = await import("./gatewayCommands.ts");
  const args = g.parseInvokeArgs(argv);
  return g.runInvoke(
    args,
    g.processContext(args, () => readStdin()),
  );
}

async function jobs(argv: string[]): Promise<number> {
  const g = await import("./gatewayCommands.ts");
  const args = g.parseJobsArgs(argv);
  return g.runJobs(
    args,
    g.processContext(args, () => readStdin()),
  );
}

async function approve(argv: string[]): Promise<number> {
  const g = await import("./gatewayCommands.ts");
  const args = g.parseApproveArgs(argv);
  return g.runApprove(
    args,
    g.processContext(args, () => readStdin()),
  );
}

async function version(): Promise<number> {
  process.stdout.write(versionLine("connectorctl", buildInfo()));
  return 0;
}

const commands: Record<string, (argv: string[]) => Promise<number>> = {
  validate,
  status,
  diff,
  migrate,
  audit,
  invoke,
  jobs,
  approve,
  version,
};

/** --help and --version anywhere before `--` answer at once, whatever else was given. */
function asked(argv: string[], ...flags: string[]): boolean {
  const end = argv.indexOf("--");
  return (end === -1 ? argv : argv.slice(0, end)).some((a) => flags.includes(a));
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (asked(argv, "--version")) return version();
  if (!command || command === "help" || asked(argv, "--help", "-h")) {
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
    if (err instanceof GatewayError) {
      process.stderr.write(`connectorctl: ${formatFailure(err.failure)}\n`);
      process.exitCode = exitCodeOf(err.failure);
      return;
    }
    const usage = err instanceof UsageError || (err as { code?: string })?.code?.startsWith("ERR_PARSE_ARGS");
    process.stderr.write(`connectorctl: ${errorChainMessage(err)}\n${usage ? USAGE : ""}`);
    process.exitCode = 2;
  },
);
