// The http operations (fetch, mutate, deliverEvent) through the runner (drivers/run.ts),
// against a local HTTPS server (test CA) that checks the auth each config asks for and
// records what reached it. Every input passes the catalog's inputSchema and every result its
// outputSchema (ajv); failures are classed; nothing outside baseUrl is ever requested; no
// credential appears in a result, an error or a log line.
import type { ServerResponse } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProbeInput } from "../../controller/src/api/model.ts";
import type { JsonObject } from "../../controller/src/api/types.ts";
import { runOperation } from "../../controller/src/drivers/run.ts";
import { recordingLogger } from "../support/memory.ts";
import {
  failure,
  loadType,
  operationRunner,
  reply,
  startFakeApi,
  type FakeApi,
  type FakeRequest,
} from "../support/operationHarness.ts";

const HTTP = loadType("http");
const TOKEN = "http-op-token-Xq93mZ";
const WRONG = "http-op-wrong-token-77";
const BASIC_USER = "ops";
const { log, lines: logLines } = recordingLogger();
const { op, inputValid, seen } = operationRunner(log);

/** Which credential a request carried, by scheme; undefined when none was right. */
function authOf(req: FakeRequest): string | undefined {
  if (req.headers.authorization === `Bearer ${TOKEN}`) return "bearer";
  if (req.headers.authorization === `Basic ${Buffer.from(`${BASIC_USER}:${TOKEN}`).toString("base64")}`)
    return "basic";
  if (req.headers["x-api-key"] === TOKEN) return "header";
  return undefined;
}

const BIG = JSON.stringify({ rows: Array.from({ length: 2000 }, (_, i) => ({ i, text: "lorem ipsum" })) });
const events: JsonObject[] = [];

function handle(req: FakeRequest, res: ServerResponse): void {
  const path = req.path;
  if (path === "/api/hang") return; // never answers
  if (path === "/open/hook") return reply(res, 204, undefined);
  if (!authOf(req)) return reply(res, 401, { error: "unauthorized" }, { "www-authenticate": "Bearer" });
  const status = /^\/api\/status\/(\d{3})$/.exec(path);
  if (status) {
    const code = Number(status[1]);
    const extra: Record<string, string> =
      code === 429
        ? { "retry-after": "7" }
        : code === 302
          ? { location: "https://elsewhere.example.com/" }
          : {};
    return reply(res, code, { status: code }, extra);
  }
  if (path === "/api/items" && (req.method === "GET" || req.method === "HEAD"))
    return reply(
      res,
      200,
      {
        items: [{ id: 1 }, { id: 2 }],
        query: Object.fromEntries([...req.query.keys()].map((k) => [k, req.query.getAll(k)])),
      },
      { etag: '"v1"', "x-request-id": "req-1", "set-cookie": "session=abc; HttpOnly", "x-internal": "no" },
    );
  if (path === "/api/readme") {
    res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
    return void res.end("Grüße from the fake API\n");
  }
  if (path === "/api/logo") {
    res.writeHead(200, { "content-type": "image/png" });
    return void res.end(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff]));
  }
  if (path === "/api/big") {
    res.writeHead(200, { "content-type": "application/json" });
    return void res.end(BIG);
  }
  if (path.startsWith("/api/items") && ["POST", "PUT", "PATCH", "DELETE"].includes(req.method)) {
    if (req.method === "DELETE") return reply(res, 204, undefined);
    return reply(res, req.method === "POST" ? 201 : 200, {
      method: req.method,
      path,
      contentType: req.headers["content-type"] ?? null,
      idempotencyKey: req.headers["idempotency-key"] ?? null,
      received: req.body === "" ? null : (JSON.parse(req.body) as unknown),
    });
  }
  if (path === "/api/hooks/events" || path === "/api/hooks") {
    events.push({
      path,
      method: req.method,
      contentType: req.headers["content-type"] ?? "",
      idempotencyKey: req.headers["idempotency-key"] ?? "",
      event: JSON.parse(req.body) as JsonObject,
    });
    return reply(res, 202, { accepted: true });
  }
  return reply(res, 404, { error: "not found" });
}

let api: FakeApi;

beforeAll(async () => {
  api = await startFakeApi(handle);
});

afterAll(async () => {
  await api?.stop();
});

function http(
  config: JsonObject = {},
  credentials: Record<string, string> | undefined = { token: TOKEN },
  version = 2,
): ProbeInput {
  return {
    type: HTTP,
    typeVersion: version,
    config: {
      baseUrl: `${api.url}/api`,
      caBundle: api.caPem,
      headers: { "X-Source": "cynode-tests" },
      auth: { scheme: "bearer" },
      ...config,
    },
    credentials,
    timeoutMs: 10_000,
  };
}

describe("fetch", () => {
  it("GETs a path under baseUrl with query parameters, the config's auth and headers; JSON body, selected headers", async () => {
    const r = await op(
      "fetch",
      { path: "/items", query: { q: "disk full", tag: ["a", "b"], n: 3, all: true } },
      http(),
    );
    expect(r.providerStatusCode).toBe(200);
    expect(r.data).toMatchObject({
      status: 200,
      bodyFormat: "json",
      truncated: false,
      body: {
        items: [{ id: 1 }, { id: 2 }],
        query: { q: ["disk full"], tag: ["a", "b"], n: ["3"], all: ["true"] },
      },
    });
    const headers = (r.data as { headers: Record<string, string> }).headers;
    expect(headers).toMatchObject({ etag: '"v1"', "x-request-id": "req-1" });
    expect(headers["content-type"]).toMatch(/^application\/json/);
    expect(Object.keys(headers)).not.toContain("set-cookie");
    expect(Object.keys(headers)).not.toContain("x-internal");
    const seenByServer = api.last();
    expect(seenByServer).toMatchObject({ method: "GET", path: "/api/items" });
    expect(authOf(seenByServer)).toBe("bearer");
    expect(seenByServer.headers["x-source"]).toBe("cynode-tests");
  });

  it("applies basic and header auth (v2) and bearer (deprecated v1)", async () => {
    const cases: [ProbeInput, string][] = [
      [http({ auth: { scheme: "basic", username: BASIC_USER } }), "basic"],
      [http({ auth: { scheme: "header", headerName: "X-Api-Key" } }), "header"],
      [http({}, { token: TOKEN }, 1), "bearer"],
    ];
    for (const [connector, scheme] of cases) {
      const r = await op("fetch", { path: "/items" }, connector);
      expect(r.data, scheme).toMatchObject({ status: 200 });
      expect(authOf(api.last()), scheme).toBe(scheme);
    }
  });

  it("returns text as text, binary as base64, nothing for HEAD", async () => {
    expect((await op("fetch", { path: "/readme" }, http())).data).toMatchObject({
      bodyFormat: "text",
      body: "Grüße from the fake API\n",
    });
    expect((await op("fetch", { path: "/logo" }, http())).data).toMatchObject({
      bodyFormat: "base64",
      body: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff]).toString("base64"),
    });
    // The caller's accept wins over the config's headers (auth wins over both).
    await op(
      "fetch",
      { path: "/readme", accept: "text/plain" },
      http({ headers: { Accept: "application/json" } }),
    );
    expect(api.last().headers.accept).toBe("text/plain");
    await op("fetch", { path: "/readme" }, http({ headers: { Accept: "application/json" } }));
    expect(api.last().headers.accept).toBe("application/json");
    const head = await op("fetch", { path: "/items", method: "HEAD" }, http());
    expect(head.data).toMatchObject({ status: 200, bodyFormat: "empty", body: null });
    expect(api.last().method).toBe("HEAD");
  });

  it("cuts a body at maxBytes: truncated, never parsed, with a warning", async () => {
    const r = await op("fetch", { path: "/big", maxBytes: 1000 }, http());
    const data = r.data as { body: string; bodyFormat: string; truncated: boolean };
    expect(data).toMatchObject({ truncated: true, bodyFormat: "text" });
    expect(data.body).toBe(BIG.slice(0, 1000));
    expect(r.warnings).toEqual(["the response body was cut at 1000 bytes"]);
    const whole = await op("fetch", { path: "/big", maxBytes: 4_194_304 }, http());
    expect(whole.data).toMatchObject({ truncated: false, bodyFormat: "json" });
  });

  it("refuses every path that could leave baseUrl, as a validation error, before any request", async () => {
    const before = api.requests.length;
    const paths = [
      "/../secret",
      "/items/../../secret",
      "/./items",
      "/%2e%2e/secret",
      "/%2E%2e%2fsecret",
      "/items%2F..%2Fsecret",
      "/a%5c..%5csecret",
      "//elsewhere.example.com/x",
      "https://elsewhere.example.com/x",
      "items",
      "/items?admin=1",
      "/items#x",
      "/a\\..\\secret",
      "/items with space",
    ];
    for (const path of paths) {
      // The driver refuses even input that the gateway's inputSchema would have stopped.
      const e = await failure(runOperation("fetch", { path }, http(), log));
      seen.push(JSON.stringify({ message: e.message }));
      expect(e, path).toMatchObject({ errorClass: "validation_error", reason: "InvalidInput" });
      expect(e.problems[0]?.path, path).toBe("input.path");
      const m = await failure(runOperation("mutate", { method: "POST", path }, http(), log));
      expect(m, path).toMatchObject({ errorClass: "validation_error" });
    }
    for (const path of ["https://elsewhere.example.com/x", "items", "/items?admin=1", "//x", "/a\\b", "/a b"])
      expect(inputValid("fetch", { path }, http()), path).toBe(false);
    expect(api.requests.length).toBe(before);
  });
});

describe("mutate", () => {
  it("POST, PUT, PATCH send a JSON body and the Idempotency-Key; DELETE answers 204", async () => {
    const post = await op(
      "mutate",
      { method: "POST", path: "/items", body: { name: "disk", qty: 2 }, idempotencyKey: "op-7f3a" },
      http(),
    );
    expect(post.providerStatusCode).toBe(201);
    expect(post.data).toMatchObject({
      status: 201,
      bodyFormat: "json",
      body: {
        method: "POST",
        path: "/api/items",
        contentType: "application/json",
        idempotencyKey: "op-7f3a",
        received: { name: "disk", qty: 2 },
      },
    });
    for (const method of ["PUT", "PATCH"]) {
      const r = await op("mutate", { method, path: "/items/1", body: [1, "two", null] }, http());
      expect(r.data, method).toMatchObject({
        status: 200,
        body: { method, idempotencyKey: null, received: [1, "two", null] },
      });
    }
    const del = await op("mutate", { method: "DELETE", path: "/items/1" }, http());
    expect(del.data).toMatchObject({ status: 204, bodyFormat: "empty", body: null });
    expect(api.last()).toMatchObject({ method: "DELETE", body: "" });
    expect(authOf(api.last())).toBe("bearer");
  });
});

describe("deliverEvent", () => {
  it("POSTs one CloudEvents envelope to eventPath; the idempotency key is its id and the Idempotency-Key", async () => {
    events.length = 0;
    const r = await op(
      "deliverEvent",
      {
        type: "com.example.ticket.created",
        source: "/tenants/acme",
        subject: "ticket/42",
        data: { ticket: 42, title: "Disk full" },
        idempotencyKey: "evt-2f9c1",
      },
      http({ eventPath: "/hooks/events" }),
    );
    expect(r.data).toMatchObject({ eventId: "evt-2f9c1", status: 202, body: { accepted: true } });
    expect(r.remoteChangeIds).toEqual(["evt-2f9c1"]);
    expect(events).toHaveLength(1);
    const got = events[0]!;
    expect(got).toMatchObject({
      path: "/api/hooks/events",
      method: "POST",
      contentType: "application/cloudevents+json; charset=utf-8",
      idempotencyKey: "evt-2f9c1",
      event: {
        specversion: "1.0",
        id: "evt-2f9c1",
        type: "com.example.ticket.created",
        source: "/tenants/acme",
        subject: "ticket/42",
        datacontenttype: "application/json",
        data: { ticket: 42, title: "Disk full" },
      },
    });
    expect(Date.parse((got["event"] as { time: string }).time)).toBeGreaterThan(Date.now() - 60_000);
  });

  it("without eventPath goes to baseUrl itself with the config's method; without a key the id is a new UUID", async () => {
    events.length = 0;
    const r = await op(
      "deliverEvent",
      { type: "t.v1", data: null },
      http({ baseUrl: `${api.url}/api/hooks`, method: "PUT" }, { token: TOKEN }, 1),
    );
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ path: "/api/hooks", method: "PUT", idempotencyKey: "" });
    const id = (r.data as { eventId: string }).eventId;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(events[0]!["event"]).toMatchObject({ id, source: "/cynode/connector-gateway", data: null });
  });

  it("a config whose method is GET cannot deliver; an eventPath that leaves baseUrl is refused", async () => {
    const get = await failure(op("deliverEvent", { type: "t", data: 1 }, http({ method: "GET" })));
    expect(get).toMatchObject({ errorClass: "permanent", reason: "InvalidConfig" });
    expect(get.problems[0]?.path).toBe("spec.config.method");
    const out = await failure(
      runOperation("deliverEvent", { type: "t", data: 1 }, http({ eventPath: "/../x" }), log),
    );
    expect(out).toMatchObject({ errorClass: "permanent", reason: "InvalidConfig" });
    expect(out.problems[0]?.path).toBe("spec.config.eventPath");
  });
});

describe("failures are classed, with the provider's status", () => {
  it("401 => AuthenticationFailed; 429 => quota_exceeded with Retry-After; 5xx => transient; 404, 3xx => permanent", async () => {
    const wrong = await failure(op("fetch", { path: "/items" }, http({}, { token: WRONG })));
    expect(wrong).toMatchObject({
      errorClass: "permanent",
      reason: "AuthenticationFailed",
      providerStatusCode: 401,
    });
    const cases: [string, object][] = [
      [
        "/status/429",
        {
          errorClass: "quota_exceeded",
          reason: "QuotaExceeded",
          providerStatusCode: 429,
          retryAfterMs: 7000,
        },
      ],
      ["/status/503", { errorClass: "transient", reason: "UnexpectedStatus", providerStatusCode: 503 }],
      ["/status/500", { errorClass: "transient", providerStatusCode: 500 }],
      ["/status/404", { errorClass: "permanent", reason: "UnexpectedStatus", providerStatusCode: 404 }],
      ["/status/302", { errorClass: "permanent", reason: "UnexpectedStatus", providerStatusCode: 302 }],
    ];
    for (const [path, expected] of cases) {
      expect(await failure(op("fetch", { path }, http())), path).toMatchObject(expected);
      expect(await failure(op("mutate", { method: "POST", path, body: {} }, http())), path).toMatchObject(
        expected,
      );
    }
    const hook = await failure(
      op("deliverEvent", { type: "t", data: 1 }, http({ eventPath: "/status/503" })),
    );
    expect(hook).toMatchObject({ errorClass: "transient", providerStatusCode: 503 });
  });

  it("a provider that never answers => Timeout within the deadline, Aborted on the caller's signal; sockets closed", async () => {
    const started = performance.now();
    const e = await failure(op("fetch", { path: "/hang" }, { ...http(), timeoutMs: 500 }));
    expect(e).toMatchObject({ errorClass: "transient", reason: "Timeout" });
    expect(performance.now() - started).toBeLessThan(1500);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const aborted = await failure(
      op("mutate", { method: "POST", path: "/hang" }, { ...http(), signal: controller.signal }),
    );
    expect(aborted).toMatchObject({ errorClass: "transient", reason: "Aborted" });
    await api.waitForNoOpenSockets(2000);
  });

  it("a host outside the egress allowlist is refused before anything is sent", async () => {
    const before = api.requests.length;
    const e = await failure(
      op("fetch", { path: "/items" }, http({ baseUrl: "https://localhost.evil.test/api" })),
    );
    expect(e).toMatchObject({ errorClass: "policy_denied", reason: "EgressDenied" });
    expect(api.requests.length).toBe(before);
  });

  it("an operation a spec declares forbidden (class C) never runs, though the driver has a handler", async () => {
    const type = structuredClone(HTTP);
    for (const v of type.spec.versions)
      for (const o of v.operations) if (o.name === "mutate") o.class = "forbidden";
    const before = api.requests.length;
    const e = await failure(
      runOperation("mutate", { method: "DELETE", path: "/items/1" }, { ...http(), type }, log),
    );
    expect(e).toMatchObject({ errorClass: "policy_denied", reason: "OperationForbidden" });
    expect(api.requests.length).toBe(before);
  });
});

describe("no credential ever appears in a result, an error or a log line", () => {
  it("a token the provider echoes back is scrubbed from the result", async () => {
    const r = await op(
      "mutate",
      { method: "POST", path: "/items", body: { note: `token is ${TOKEN}` } },
      http(),
    );
    expect((r.data as { body: { received: { note: string } } }).body.received.note).toBe(
      "token is [REDACTED]",
    );
  });

  it("scans everything this file produced", () => {
    expect(seen.length).toBeGreaterThan(40);
    const basic = Buffer.from(`${BASIC_USER}:${TOKEN}`).toString("base64");
    for (const secret of [TOKEN, WRONG, basic])
      for (const text of [...seen, ...logLines]) expect(text.includes(secret), text).toBe(false);
  });
});
