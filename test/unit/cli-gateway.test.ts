// connectorctl invoke, jobs and approve without a gateway: their arguments, where the URL and
// the token come from, --input, the one-line errors and the exit codes scripts rely on, and the
// client's handling of what comes back (with a stand-in fetch). The real gateway is in
// test/integration/cli-gateway.test.ts.
import { describe, expect, it } from "vitest";
import type { JobRecord, NormalizedResponse } from "../../controller/src/api/invocation.ts";
import type { ErrorClass } from "../../controller/src/api/types.ts";
import { gatewayClient, type GatewayClient } from "../../controller/src/cli/gatewayClient.ts";
import {
  formatJobsTable,
  gatewayTarget,
  parseApproveArgs,
  parseInvokeArgs,
  parseJobsArgs,
  readInput,
  runInvoke,
  type CommandContext,
} from "../../controller/src/cli/gatewayCommands.ts";
import {
  EXIT_CODE_BY_CLASS,
  EXIT_CODES_HELP,
  exitCodeOf,
  formatFailure,
  GatewayError,
} from "../../controller/src/cli/gatewayFailure.ts";
import { UsageError } from "../../controller/src/cli/usageError.ts";

const TOKEN = "eyJhbGciOiJSUzI1NiJ9.secret-token-value";

async function failureOf(p: Promise<unknown>): Promise<GatewayError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GatewayError);
  return err as GatewayError;
}

describe("invoke arguments", () => {
  it("reads the Connector, the operation and every flag", () => {
    const a = parseInvokeArgs([
      "team-a/web",
      "fetch",
      "--input",
      '{"path":"/"}',
      "--idempotency-key",
      "k-1",
      "--approval",
      "appr",
      "--async",
      "--wait",
      "--gateway",
      "http://gw:8090",
      "--timeout",
      "30s",
    ]);
    expect(a).toEqual({
      namespace: "team-a",
      name: "web",
      operation: "fetch",
      input: '{"path":"/"}',
      idempotencyKey: "k-1",
      approval: "appr",
      async: true,
      wait: true,
      gateway: "http://gw:8090",
      timeoutMs: 30_000,
    });
  });

  it("defaults to a 2m timeout, no input, sync and no wait", () => {
    expect(parseInvokeArgs(["ns/c", "op"])).toEqual({
      namespace: "ns",
      name: "c",
      operation: "op",
      async: false,
      wait: false,
      timeoutMs: 120_000,
    });
  });

  it.each([[["web", "fetch"]], [["team-a/web"]], [["a/b/c", "fetch"]], [["a/b", "fetch", "extra"]]])(
    "refuses %j without <namespace>/<name> and one operation",
    (argv) => {
      expect(() => parseInvokeArgs(argv)).toThrow(UsageError);
      expect(() => parseInvokeArgs(argv)).toThrow(/needs <namespace>\/<name> and an operation/);
    },
  );

  it("refuses a bad duration and an unknown flag as usage errors", () => {
    expect(() => parseInvokeArgs(["a/b", "op", "--timeout", "soon"])).toThrow(UsageError);
    expect(() => parseInvokeArgs(["a/b", "op", "--timeout", "soon"])).toThrow(/--timeout: "soon"/);
    expect(() => parseInvokeArgs(["a/b", "op", "--inptu", "{}"])).toThrow(/Unknown option '--inptu'/);
  });
});

describe("jobs arguments", () => {
  it("lists with filters, or names one job to show or cancel", () => {
    expect(
      parseJobsArgs([
        "-n",
        "team-a",
        "--connector",
        "web",
        "--state",
        "failed",
        "--limit",
        "5",
        "-o",
        "json",
      ]),
    ).toMatchObject({ namespace: "team-a", connector: "web", state: "failed", limit: 5, output: "json" });
    expect(parseJobsArgs(["j-1", "--cancel"])).toMatchObject({ id: "j-1", cancel: true, output: "table" });
  });

  it.each([
    [["--cancel"], /--cancel needs the id/],
    [["--state", "done"], /--state must be one of pending, running, succeeded, failed, canceled/],
    [["j-1", "-n", "team-a"], /a job id names one job/],
    [["j-1", "j-2"], /at most one job id/],
    [["--limit", "0"], /--limit: "0" must be a whole number from 1 to 1000/],
    [["-o", "yaml"], /--output must be table or json/],
  ])("refuses %j", (argv, message) => {
    expect(() => parseJobsArgs(argv)).toThrow(UsageError);
    expect(() => parseJobsArgs(argv)).toThrow(message);
  });
});

describe("approve arguments", () => {
  it("needs the requester, and turns --ttl into seconds", () => {
    expect(
      parseApproveArgs([
        "team-a/web",
        "mutate",
        "--requester",
        "system:serviceaccount:team-a:agent",
        "--ttl",
        "5m",
      ]),
    ).toMatchObject({
      namespace: "team-a",
      name: "web",
      operation: "mutate",
      requester: "system:serviceaccount:team-a:agent",
      ttlSeconds: 300,
    });
    expect(() => parseApproveArgs(["team-a/web", "mutate"])).toThrow(/approve needs --requester USER/);
    expect(() => parseApproveArgs(["team-a/web", "mutate", "--requester", "u", "--ttl", "2h"])).toThrow(
      /--ttl must be from 1s to 1h/,
    );
  });
});

describe("--input", () => {
  const files: Record<string, string> = { "in.json": '{"path":"/from-file"}', "list.json": "[1]" };
  const sources = {
    readFile(path: string) {
      const text = files[path];
      if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: "ENOENT" });
      return text;
    },
    stdin: async () => '{"path":"/from-stdin"}',
  };

  it("is JSON itself, @FILE or @- for standard input, and {} when not given", async () => {
    expect(await readInput('{"path":"/"}', sources)).toEqual({ path: "/" });
    expect(await readInput("@in.json", sources)).toEqual({ path: "/from-file" });
    expect(await readInput("@-", sources)).toEqual({ path: "/from-stdin" });
    expect(await readInput(undefined, sources)).toEqual({});
  });

  it("refuses what is no JSON object without quoting it back", async () => {
    const bad = readInput('{"password": hunter2}', sources);
    await expect(bad).rejects.toThrow(UsageError);
    const message = await bad.catch((e: Error) => e.message);
    expect(message).toMatch(/^--input: not valid JSON/);
    expect(message).not.toContain("hunter2");
    await expect(readInput("@list.json", sources)).rejects.toThrow(
      "--input @list.json: must be a JSON object (the operation's input)",
    );
    await expect(readInput("@missing.json", sources)).rejects.toThrow(
      "--input @missing.json: cannot read missing.json (ENOENT)",
    );
  });
});

describe("the gateway and the token", () => {
  const identity = (token?: string) => async () => ({ token, namespace: "ctx-ns" });
  const noKubeconfig = async (): Promise<never> => {
    throw new Error("the kubeconfig (/nowhere) cannot be read");
  };

  it("takes flags over the environment over the kubeconfig", async () => {
    const env = { CONNECTOR_GATEWAY: "http://env-gw:1", CONNECTOR_TOKEN: "env-token" };
    const flags = { gateway: "https://flag-gw", token: "flag-token", timeoutMs: 1000 };
    expect(await gatewayTarget(flags, { env, identity: noKubeconfig })).toEqual({
      url: "https://flag-gw",
      token: "flag-token",
      timeoutMs: 1000,
    });
    expect(await gatewayTarget({ timeoutMs: 1000 }, { env, identity: noKubeconfig })).toMatchObject({
      url: "http://env-gw:1",
      token: "env-token",
    });
    expect(await gatewayTarget({ timeoutMs: 1000 }, { env: {}, identity: identity("kube-token") })).toEqual({
      url: "http://127.0.0.1:8090",
      token: "kube-token",
      timeoutMs: 1000,
    });
  });

  it("says what is missing when there is no token anywhere", async () => {
    const none = gatewayTarget({ timeoutMs: 1000 }, { env: { CONNECTOR_TOKEN: "" }, identity: identity() });
    await expect(none).rejects.toThrow(
      /^no token for the gateway: give --token, set CONNECTOR_TOKEN, or use a kubeconfig whose current user has a token; the kubeconfig's current user has none/,
    );
    await expect(gatewayTarget({ timeoutMs: 1000 }, { env: {}, identity: noKubeconfig })).rejects.toThrow(
      /the kubeconfig \(\/nowhere\) cannot be read\. A ServiceAccount's: export CONNECTOR_TOKEN=\$\(kubectl create token NAME -n NAMESPACE\)/,
    );
  });

  it("refuses a gateway URL that is not http(s), naming where it came from, not echoing it", async () => {
    const bad = gatewayTarget(
      { gateway: "ftp://u:pw@gw", token: "t", timeoutMs: 1 },
      { env: {}, identity: noKubeconfig },
    );
    await expect(bad).rejects.toThrow("--gateway: not an http:// or https:// URL of the gateway");
    await expect(
      gatewayTarget(
        { token: "t", timeoutMs: 1 },
        { env: { CONNECTOR_GATEWAY: "gw:8090" }, identity: noKubeconfig },
      ),
    ).rejects.toThrow(/^CONNECTOR_GATEWAY: /);
  });
});

describe("errors on one line, exit codes by class", () => {
  it("prints a RBAC refusal with status, class, reason, rule, detail and request", () => {
    const f = {
      status: 403,
      errorClass: "policy_denied" as const,
      reason: "Forbidden",
      rule: "rbac",
      detail:
        'system:serviceaccount:team-a:stranger may not invoke connectors named "web" in namespace team-a',
      requestId: "req-1",
    };
    expect(formatFailure(f)).toBe(
      '403 policy_denied Forbidden (rule rbac): system:serviceaccount:team-a:stranger may not invoke connectors named "web" in namespace team-a [request req-1]',
    );
    expect(exitCodeOf(f)).toBe(4);
  });

  it("names the fields of a validation error, folds newlines, and says when to retry", () => {
    const line = formatFailure({
      status: 400,
      errorClass: "validation_error",
      reason: "InvalidInput",
      detail: 'input.path: must match pattern\n  "^/"; input.method: must be one of',
      problems: [
        { path: "input.path", message: "must match pattern" },
        { path: "input.method", message: "must be one of" },
        { path: "input.path", message: "again" },
      ],
    });
    expect(line).toBe(
      '400 validation_error InvalidInput (at input.path, input.method): input.path: must match pattern "^/"; input.method: must be one of',
    );
    expect(line).not.toContain("\n");
    expect(
      formatFailure({
        status: 429,
        errorClass: "quota_exceeded",
        reason: "RateLimited",
        detail: "slow down",
        retryAfterSeconds: 3,
      }),
    ).toBe("429 quota_exceeded RateLimited: slow down; retry after 3s");
  });

  it("gives each class its own exit code, 1 to what has none, and documents them all", () => {
    const classes: ErrorClass[] = [
      "validation_error",
      "policy_denied",
      "quota_exceeded",
      "transient",
      "permanent",
    ];
    const codes = classes.map((c) => exitCodeOf({ errorClass: c, reason: "R", detail: "" }));
    expect(codes).toEqual([3, 4, 5, 6, 7]);
    expect(exitCodeOf({ reason: "UnexpectedAnswer", detail: "" })).toBe(1);
    for (const c of classes)
      expect(EXIT_CODES_HELP).toMatch(new RegExp(`^  ${EXIT_CODE_BY_CLASS[c]} ${c} `, "m"));
    expect(EXIT_CODES_HELP).toMatch(/^ {2}2 usage/m);
  });
});

/** A stand-in for fetch that records the request and answers with `answer`. */
function fakeFetch(answer: () => Response | Promise<Response>) {
  const seen: { url: string; init: RequestInit }[] = [];
  const fn = (async (url: string, init: RequestInit) => {
    seen.push({ url, init });
    return answer();
  }) as unknown as typeof fetch;
  return { fn, seen };
}

const problemResponse = (status: number, body: object) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/problem+json", "x-request-id": "req-9" },
  });

describe("the gateway client", () => {
  const target = { url: "http://gw.test:8090/prefix/", token: TOKEN, timeoutMs: 5000 };

  it("sends the bearer token and the body to the operation's route, and tells a job from a response", async () => {
    const f = fakeFetch(
      () => new Response(JSON.stringify({ jobId: "j-1", state: "pending" }), { status: 202 }),
    );
    const answer = await gatewayClient(target, f.fn).invoke("team-a", "web", "deliverEvent", {
      input: { type: "t", data: {} },
      idempotencyKey: "k",
    });
    expect(answer).toEqual({ kind: "job", jobId: "j-1" });
    expect(f.seen[0]!.url).toBe(
      "http://gw.test:8090/prefix/v1/namespaces/team-a/connectors/web/operations/deliverEvent",
    );
    expect(f.seen[0]!.init.method).toBe("POST");
    expect((f.seen[0]!.init.headers as Record<string, string>).authorization).toBe(`Bearer ${TOKEN}`);
    expect(JSON.parse(f.seen[0]!.init.body as string)).toEqual({
      input: { type: "t", data: {} },
      idempotencyKey: "k",
    });
  });

  it("lists jobs with the query the gateway expects", async () => {
    const f = fakeFetch(() => new Response(JSON.stringify({ items: [] }), { status: 200 }));
    await gatewayClient(target, f.fn).jobs({ namespace: "team-a", name: "web", state: "failed", limit: 3 });
    expect(f.seen[0]!.url).toBe(
      "http://gw.test:8090/prefix/v1/jobs?namespace=team-a&name=web&state=failed&limit=3",
    );
  });

  it("turns problem details into a GatewayError carrying every field", async () => {
    const f = fakeFetch(() =>
      problemResponse(403, {
        type: "https://cynodeai.io/problems/policy-denied",
        title: "Forbidden",
        status: 403,
        detail: 'operation "mutate" needs an approval',
        instance: "req-9",
        errorClass: "policy_denied",
        reason: "PolicyDenied",
        rule: "approval-required",
      }),
    );
    const err = await failureOf(gatewayClient(target, f.fn).invoke("a", "b", "mutate", { input: {} }));
    expect(err.failure).toEqual({
      status: 403,
      errorClass: "policy_denied",
      reason: "PolicyDenied",
      detail: 'operation "mutate" needs an approval',
      rule: "approval-required",
      requestId: "req-9",
    });
  });

  it("says when what answered is not the gateway, without the token it may echo", async () => {
    const f = fakeFetch(
      () =>
        new Response(`<html>bad gateway; you sent Authorization: Bearer ${TOKEN}</html>`, { status: 502 }),
    );
    const err = await failureOf(gatewayClient(target, f.fn).job("j-1"));
    expect(err.failure.errorClass).toBeUndefined();
    expect(exitCodeOf(err.failure)).toBe(1);
    expect(formatFailure(err.failure)).toMatch(
      /^502 UnexpectedAnswer: GET http:\/\/gw\.test:8090\/prefix\/v1\/jobs\/j-1 answered HTTP 502 without problem details/,
    );
    expect(formatFailure(err.failure)).not.toContain(TOKEN);
    expect(formatFailure(err.failure)).toContain("[REDACTED]");
  });

  it("classes an unreachable or silent gateway as transient", async () => {
    const refused = fakeFetch(() => {
      throw new TypeError("fetch failed", {
        cause: Object.assign(new Error("connect ECONNREFUSED 10.0.0.1:8090"), { code: "ECONNREFUSED" }),
      });
    });
    const unreachable = await failureOf(
      gatewayClient({ ...target, url: "http://user:pw@gw.test:8090" }, refused.fn).job("j"),
    );
    expect(formatFailure(unreachable.failure)).toBe(
      "transient GatewayUnreachable: cannot reach the gateway at http://gw.test:8090: fetch failed: connect ECONNREFUSED 10.0.0.1:8090",
    );
    expect(exitCodeOf(unreachable.failure)).toBe(6);
    const silent = fakeFetch(() => {
      throw new DOMException("The operation was aborted due to timeout", "TimeoutError");
    });
    const timedOut = await failureOf(gatewayClient(target, silent.fn).job("j"));
    expect(timedOut.failure).toMatchObject({ errorClass: "transient", reason: "GatewayTimeout" });
    expect(timedOut.failure.detail).toContain("did not answer GET /v1/jobs/j within 5s");
  });
});

describe("invoke --wait", () => {
  const response = {
    metadata: { operation: "deliverEvent" },
    data: { status: 200 },
  } as unknown as NormalizedResponse;
  const job = (state: JobRecord["state"], extra: Partial<JobRecord> = {}): JobRecord => ({
    id: "j-1",
    state,
    target: { namespace: "team-a", name: "web", operation: "deliverEvent" },
    requester: "agent",
    createdAt: "2025-06-01T12:00:00Z",
    attempts: 1,
    ...extra,
  });

  function context(states: JobRecord[]) {
    const out: string[] = [];
    const err: string[] = [];
    const sleeps: number[] = [];
    let polls = 0;
    const client = {
      invoke: async () => ({ kind: "job" as const, jobId: "j-1" }),
      job: async () => states[Math.min(polls++, states.length - 1)]!,
    } as unknown as GatewayClient;
    const ctx: CommandContext = {
      env: { CONNECTOR_TOKEN: "t" },
      identity: async () => ({ token: undefined, namespace: "default" }),
      readFile: () => "{}",
      stdin: async () => "{}",
      stdout: (t) => void out.push(t),
      stderr: (t) => void err.push(t),
      client: () => client,
      sleep: async (ms) => void sleeps.push(ms),
    };
    return { ctx, out, err, sleeps, polls: () => polls };
  }
  const args = parseInvokeArgs(["team-a/web", "deliverEvent", "--input", '{"type":"t","data":{}}', "--wait"]);

  it("polls the job, backing off, until it succeeds, and prints its result", async () => {
    const c = context([job("pending"), job("running"), job("succeeded", { result: response })]);
    expect(await runInvoke(args, c.ctx)).toBe(0);
    expect(c.polls()).toBe(3);
    expect(c.sleeps).toEqual([250, 375]);
    expect(JSON.parse(c.out.join(""))).toEqual(response);
  });

  it("fails with the job's own class when it failed, and with exit 1 when it was canceled", async () => {
    const failed = context([
      job("failed", {
        attempts: 9,
        error: { class: "transient", reason: "HttpError", message: "HTTP 503" },
        deadLetterId: "d-1",
      }),
    ]);
    const err = await failureOf(runInvoke(args, failed.ctx));
    expect(formatFailure(err.failure)).toBe(
      "transient HttpError: job j-1 failed after 9 attempt(s): HTTP 503 (dead letter d-1)",
    );
    expect(exitCodeOf(err.failure)).toBe(6);
    const canceled = await failureOf(runInvoke(args, context([job("canceled")]).ctx));
    expect(exitCodeOf(canceled.failure)).toBe(1);
    expect(canceled.failure.detail).toBe("job j-1 was canceled");
  });

  it("prints only the job id without --wait", async () => {
    const c = context([]);
    expect(await runInvoke({ ...args, wait: false }, c.ctx)).toBe(0);
    expect(c.out.join("")).toBe("j-1\n");
    expect(c.polls()).toBe(0);
  });
});

describe("the jobs table", () => {
  it("shows each job's Connector, operation, state, attempts, age and error", () => {
    const now = new Date("2025-06-01T12:05:00Z");
    const jobs: JobRecord[] = [
      {
        id: "j-2",
        state: "failed",
        target: { namespace: "team-a", name: "web", operation: "deliverEvent" },
        requester: "agent",
        createdAt: "2025-06-01T12:04:30Z",
        attempts: 3,
        error: { class: "permanent", reason: "HttpError", message: "HTTP 404" },
      },
      {
        id: "j-1",
        state: "succeeded",
        target: { namespace: "team-a", name: "web", operation: "deliverEvent" },
        requester: "agent",
        createdAt: "2025-06-01T12:00:00Z",
        attempts: 1,
      },
    ];
    expect(formatJobsTable(jobs, now)).toBe(
      [
        "ID    CONNECTOR   OPERATION      STATE       ATTEMPTS   AGE   ERROR",
        "j-2   web         deliverEvent   failed      3          30s   permanent HttpError: HTTP 404",
        "j-1   web         deliverEvent   succeeded   1          5m",
        "",
      ].join("\n"),
    );
  });
});
