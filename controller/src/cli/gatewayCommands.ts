// `connectorctl invoke`, `jobs` and `approve`: operations run through the gateway's HTTP API
// as the caller (a Kubernetes bearer token), never with a credential of the Connector's.
// Arguments are parsed into plain values first (parse*Args, tested on their own); then each
// command makes its calls and prints what a script can use: the normalized response as
// JSON, a job id, an approval token. Failures leave as GatewayError (see gatewayFailure.ts).
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { JobRecord, JobState } from "../api/invocation.ts";
import type { JsonObject } from "../api/types.ts";
import { ConfigError, parseDuration, positiveInt } from "../config.ts";
import type { KubeconfigIdentity } from "../kube/kubeconfigIdentity.ts";
import {
  DEFAULT_GATEWAY_URL,
  gatewayClient,
  type GatewayClient,
  type GatewayTarget,
} from "./gatewayClient.ts";
import { GatewayError } from "./gatewayFailure.ts";
import { formatTable, humanDuration, truncate } from "./table.ts";
import { UsageError } from "./usageError.ts";

const GATEWAY_OPTIONS = {
  gateway: { type: "string" },
  token: { type: "string" },
  kubeconfig: { type: "string" },
  context: { type: "string" },
  timeout: { type: "string" },
} as const;

const INPUT_OPTIONS = { input: { type: "string" } } as const;

/** How to reach the gateway, as given on the command line (resolved by gatewayTarget). */
export interface ConnectionArgs {
  gateway?: string;
  token?: string;
  kubeconfig?: string;
  context?: string;
  timeoutMs: number;
}

export interface InvokeArgs extends ConnectionArgs {
  namespace: string;
  name: string;
  operation: string;
  /** As given: JSON, @FILE or @- (undefined: {}). */
  input?: string;
  idempotencyKey?: string;
  approval?: string;
  async: boolean;
  wait: boolean;
}

export interface JobsArgs extends ConnectionArgs {
  id?: string;
  namespace?: string;
  connector?: string;
  state?: JobState;
  limit?: number;
  cancel: boolean;
  output: "table" | "json";
}

export interface ApproveArgs extends ConnectionArgs {
  namespace: string;
  name: string;
  operation: string;
  input?: string;
  requester: string;
  ttlSeconds?: number;
}

const JOB_STATES: readonly JobState[] = ["pending", "running", "succeeded", "failed", "canceled"];

/** A ConfigError (a bad duration or number) is a usage error here. */
function flag<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
}

function connection(values: {
  gateway?: string;
  token?: string;
  kubeconfig?: string;
  context?: string;
  timeout?: string;
}): ConnectionArgs {
  return {
    ...(values.gateway !== undefined ? { gateway: values.gateway } : {}),
    ...(values.token !== undefined ? { token: values.token } : {}),
    ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
    ...(values.context ? { context: values.context } : {}),
    timeoutMs: flag(() => parseDuration("timeout", values.timeout ?? "2m")),
  };
}

/** `<namespace>/<name>` and an operation name, the first two positionals of invoke and approve. */
function connectorAndOperation(command: string, positionals: string[]) {
  const [key, operation, ...rest] = positionals;
  const m = key ? /^([^/\s]+)\/([^/\s]+)$/.exec(key) : null;
  if (!m || !operation || rest.length)
    throw new UsageError(`${command} needs <namespace>/<name> and an operation, e.g. team-a/web fetch`);
  return { namespace: m[1]!, name: m[2]!, operation };
}

export function parseInvokeArgs(argv: string[]): InvokeArgs {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...GATEWAY_OPTIONS,
      ...INPUT_OPTIONS,
      "idempotency-key": { type: "string" },
      approval: { type: "string" },
      async: { type: "boolean", default: false },
      wait: { type: "boolean", default: false },
    },
  });
  return {
    ...connectorAndOperation("invoke", positionals),
    ...connection(values),
    ...(values.input !== undefined ? { input: values.input } : {}),
    ...(values["idempotency-key"] !== undefined ? { idempotencyKey: values["idempotency-key"] } : {}),
    ...(values.approval !== undefined ? { approval: values.approval } : {}),
    async: values.async,
    wait: values.wait,
  };
}

export function parseJobsArgs(argv: string[]): JobsArgs {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...GATEWAY_OPTIONS,
      namespace: { type: "string", short: "n" },
      connector: { type: "string" },
      state: { type: "string" },
      limit: { type: "string" },
      cancel: { type: "boolean", default: false },
      output: { type: "string", short: "o", default: "table" },
    },
  });
  if (positionals.length > 1) throw new UsageError("jobs takes at most one job id");
  const [id] = positionals;
  if (values.cancel && !id) throw new UsageError("--cancel needs the id of the job to cancel");
  if (id && (values.connector || values.state || values.limit || values.namespace))
    throw new UsageError("a job id names one job: --namespace, --connector, --state and --limit list jobs");
  if (values.state !== undefined && !JOB_STATES.includes(values.state as JobState))
    throw new UsageError(`--state must be one of ${JOB_STATES.join(", ")} (not "${values.state}")`);
  if (values.output !== "table" && values.output !== "json")
    throw new UsageError(`--output must be table or json (not "${values.output}")`);
  return {
    ...connection(values),
    ...(id ? { id } : {}),
    ...(values.namespace ? { namespace: values.namespace } : {}),
    ...(values.connector ? { connector: values.connector } : {}),
    ...(values.state ? { state: values.state as JobState } : {}),
    ...(values.limit ? { limit: flag(() => positiveInt("limit", values.limit!, 1000)) } : {}),
    cancel: values.cancel,
    output: values.output,
  };
}

export function parseApproveArgs(argv: string[]): ApproveArgs {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...GATEWAY_OPTIONS,
      ...INPUT_OPTIONS,
      requester: { type: "string" },
      ttl: { type: "string" },
    },
  });
  const target = connectorAndOperation("approve", positionals);
  if (!values.requester)
    throw new UsageError("approve needs --requester USER: the principal who will make the call");
  const ttlMs = values.ttl !== undefined ? flag(() => parseDuration("ttl", values.ttl!)) : undefined;
  if (ttlMs !== undefined && (ttlMs < 1000 || ttlMs > 3_600_000))
    throw new UsageError(`--ttl must be from 1s to 1h (not "${values.ttl}")`);
  return {
    ...target,
    ...connection(values),
    ...(values.input !== undefined ? { input: values.input } : {}),
    requester: values.requester,
    ...(ttlMs !== undefined ? { ttlSeconds: Math.round(ttlMs / 1000) } : {}),
  };
}

export interface InputSources {
  readFile(path: string): string;
  stdin(): Promise<string>;
}

/** --input as the operation's input object: JSON itself, @FILE, or @- for standard input. */
export async function readInput(spec: string | undefined, sources: InputSources): Promise<JsonObject> {
  if (spec === undefined) return {};
  let text = spec;
  let from = "--input";
  if (spec.startsWith("@")) {
    const path = spec.slice(1);
    from = path === "-" ? "--input @- (standard input)" : `--input ${spec}`;
    try {
      text = path === "-" ? await sources.stdin() : sources.readFile(path);
    } catch (err) {
      const code = (err as { code?: string }).code;
      throw new UsageError(`${from}: cannot read ${path}${code ? ` (${code})` : ""}`);
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    // Only the position: the parser's message quotes the input, which may hold something secret.
    const at = /at position \d+(?: \(line \d+ column \d+\))?/.exec((err as Error).message)?.[0];
    throw new UsageError(`${from}: not valid JSON${at ? ` (${at})` : ""}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new UsageError(`${from}: must be a JSON object (the operation's input)`);
  return value as JsonObject;
}

export interface TargetSources {
  env: NodeJS.ProcessEnv;
  /** The kubeconfig's current user and namespace; asked only when needed. */
  identity(): Promise<KubeconfigIdentity>;
}

/** The gateway's URL and the caller's token: flags, then environment, then the kubeconfig. */
export async function gatewayTarget(a: ConnectionArgs, s: TargetSources): Promise<GatewayTarget> {
  const fromFlag = a.gateway !== undefined;
  const url = a.gateway ?? (s.env.CONNECTOR_GATEWAY || DEFAULT_GATEWAY_URL);
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || (parsed.protocol !== "http:" && parsed.protocol !== "https:"))
    throw new UsageError(
      `${fromFlag ? "--gateway" : "CONNECTOR_GATEWAY"}: not an http:// or https:// URL of the gateway`,
    );
  let token = a.token || s.env.CONNECTOR_TOKEN || undefined;
  let why = "";
  if (!token) {
    try {
      token = (await s.identity()).token;
      if (!token) why = "; the kubeconfig's current user has none (a client certificate is no token)";
    } catch (err) {
      why = `; ${(err as Error).message}`;
    }
  }
  if (!token)
    throw new Error(
      `no token for the gateway: give --token, set CONNECTOR_TOKEN, or use a kubeconfig whose current user has a token${why}. A ServiceAccount's: export CONNECTOR_TOKEN=$(kubectl create token NAME -n NAMESPACE)`,
    );
  return { url, token, timeoutMs: a.timeoutMs };
}

export interface CommandContext extends TargetSources, InputSources {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Makes the client for a target (tests give one of their own). */
  client?(target: GatewayTarget): GatewayClient;
  sleep?(ms: number): Promise<void>;
}

const clientFor = (ctx: CommandContext, target: GatewayTarget) =>
  ctx.client ? ctx.client(target) : gatewayClient(target);

const json = (value: unknown) => JSON.stringify(value, null, 2) + "\n";

const FINISHED: ReadonlySet<JobState> = new Set(["succeeded", "failed", "canceled"]);

/** Polls a job until it ends: its result when it succeeded; otherwise a GatewayError saying why. */
export async function waitForJob(
  client: GatewayClient,
  id: string,
  sleep: (ms: number) => Promise<void>,
): Promise<JobRecord> {
  let delay = 250;
  for (;;) {
    const job = await client.job(id);
    if (FINISHED.has(job.state)) {
      if (job.state === "succeeded") return job;
      if (job.state === "canceled")
        throw new GatewayError({ reason: "JobCanceled", detail: `job ${id} was canceled` });
      throw new GatewayError({
        ...(job.error ? { errorClass: job.error.class, reason: job.error.reason } : { reason: "JobFailed" }),
        detail: `job ${id} failed after ${job.attempts} attempt(s): ${job.error?.message ?? "no error recorded"}${job.deadLetterId ? ` (dead letter ${job.deadLetterId})` : ""}`,
      });
    }
    await sleep(delay);
    delay = Math.min(delay * 1.5, 2000);
  }
}

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function runInvoke(a: InvokeArgs, ctx: CommandContext): Promise<number> {
  const input = await readInput(a.input, ctx);
  const client = clientFor(ctx, await gatewayTarget(a, ctx));
  const answer = await client.invoke(a.namespace, a.name, a.operation, {
    input,
    ...(a.idempotencyKey !== undefined ? { idempotencyKey: a.idempotencyKey } : {}),
    ...(a.approval !== undefined ? { approval: a.approval } : {}),
    ...(a.async ? { mode: "async" as const } : {}),
  });
  if (answer.kind === "response") {
    if (a.wait) ctx.stderr("the operation ran synchronously: nothing to wait for\n");
    ctx.stdout(json(answer.response));
    return 0;
  }
  if (!a.wait) {
    ctx.stdout(`${answer.jobId}\n`);
    ctx.stderr(`job ${answer.jobId} accepted: connectorctl jobs ${answer.jobId} shows it\n`);
    return 0;
  }
  const job = await waitForJob(client, answer.jobId, ctx.sleep ?? pause);
  ctx.stdout(json(job.result ?? null));
  return 0;
}

export function formatJobsTable(jobs: JobRecord[], now: Date): string {
  const rows = jobs.map((j) => [
    j.id,
    j.target.name,
    j.target.operation,
    j.state,
    String(j.attempts),
    humanDuration(now.getTime() - new Date(j.createdAt).getTime()),
    j.error ? truncate(`${j.error.class} ${j.error.reason}: ${j.error.message}`, 80) : "",
  ]);
  return formatTable(["ID", "CONNECTOR", "OPERATION", "STATE", "ATTEMPTS", "AGE", "ERROR"], rows);
}

export async function runJobs(a: JobsArgs, ctx: CommandContext): Promise<number> {
  const client = clientFor(ctx, await gatewayTarget(a, ctx));
  if (a.id) {
    ctx.stdout(json(a.cancel ? await client.cancelJob(a.id) : await client.job(a.id)));
    return 0;
  }
  let namespace = a.namespace;
  if (!namespace) {
    try {
      namespace = (await ctx.identity()).namespace;
    } catch (err) {
      throw new UsageError(`give -n/--namespace: ${(err as Error).message}`);
    }
  }
  const jobs = await client.jobs({
    namespace,
    ...(a.connector ? { name: a.connector } : {}),
    ...(a.state ? { state: a.state } : {}),
    ...(a.limit ? { limit: a.limit } : {}),
  });
  if (a.output === "json") ctx.stdout(json({ items: jobs }));
  else if (!jobs.length) ctx.stderr(`no jobs in namespace ${namespace}\n`);
  else ctx.stdout(formatJobsTable(jobs, new Date()));
  return 0;
}

export async function runApprove(a: ApproveArgs, ctx: CommandContext): Promise<number> {
  const input = await readInput(a.input, ctx);
  const client = clientFor(ctx, await gatewayTarget(a, ctx));
  const issued = await client.approve(a.namespace, a.name, {
    operation: a.operation,
    input,
    requester: a.requester,
    ...(a.ttlSeconds !== undefined ? { ttlSeconds: a.ttlSeconds } : {}),
  });
  ctx.stdout(`${issued.approval}\n`);
  ctx.stderr(
    `approval ${issued.approvalId}: ${a.requester} may call ${a.operation} on ${a.namespace}/${a.name} once with this input, until ${issued.expiresAt}\n`,
  );
  return 0;
}

/** The context of a real run: this process's streams, files, environment and kubeconfig. */
export function processContext(a: ConnectionArgs, stdin: () => Promise<string>): CommandContext {
  let identity: Promise<KubeconfigIdentity> | undefined;
  return {
    env: process.env,
    identity: () =>
      (identity ??= import("../kube/kubeconfigIdentity.ts").then((m) =>
        m.kubeconfigIdentity({
          ...(a.kubeconfig ? { kubeconfig: a.kubeconfig } : {}),
          ...(a.context ? { context: a.context } : {}),
        }),
      )),
    readFile: (path) => readFileSync(path, "utf8"),
    stdin,
    stdout: (text) => void process.stdout.write(text),
    stderr: (text) => void process.stderr.write(text),
  };
}
