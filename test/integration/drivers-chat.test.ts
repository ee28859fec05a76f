// The mattermost and discord operations through the runner (drivers/run.ts).
//
// No real Mattermost or Discord server can run here (Mattermost needs its own database and
// licence-free image, Discord is a hosted service), so both are local HTTPS fakes speaking the
// documented REST shapes: Mattermost API v4 (Bearer token; GET /channels/{id}/posts answers a
// PostList {order, posts, next_post_id, prev_post_id, has_next}; POST /posts answers 201 and
// the Post; errors are AppError {id, message, status_code}) and Discord API v10 (Bot or Bearer
// token; GET /channels/{id}/messages?limit= answers an array of Message objects; POST answers
// the Message, and a repeated nonce with enforce_nonce answers the first message again;
// errors are {message, code}, 429 with Retry-After and retry_after). The fakes check the auth
// header and the request's shape and refuse what the real APIs refuse.
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

const TYPES = { mattermost: loadType("mattermost"), discord: loadType("discord") };
const TOKEN = "chat-op-token-Zk27pQ";
const WRONG = "chat-op-wrong-token-55";
const { log, lines: logLines } = recordingLogger();
const { op, inputValid, seen } = operationRunner(log);

// --- Mattermost -------------------------------------------------------------------------------

const mmId = (tag: string) => tag.padEnd(26, "0");
const MM = {
  team: mmId("team"),
  town: mmId("townsquare"),
  limited: mmId("ratelimited"),
  broken: mmId("broken"),
  slow: mmId("slow"),
  unlisted: mmId("unlisted"),
  bot: mmId("botuser"),
};
const T0 = Date.parse("2025-03-01T10:00:00Z");

function mmPost(
  id: string,
  channelId: string,
  at: number,
  message: string,
  extra: JsonObject = {},
): JsonObject {
  return {
    id,
    create_at: at,
    update_at: at,
    edit_at: 0,
    delete_at: 0,
    is_pinned: false,
    user_id: MM.bot,
    channel_id: channelId,
    root_id: "",
    original_id: "",
    message,
    type: "",
    props: { from_bot: "true" },
    hashtag: "",
    file_ids: [],
    pending_post_id: "",
    metadata: {},
    ...extra,
  };
}

const mmPosts: JsonObject[] = [
  mmPost(mmId("p1"), MM.town, T0, "disk is filling up"),
  mmPost(mmId("p2"), MM.town, T0 + 60_000, "looking", { root_id: mmId("p1"), file_ids: [mmId("f1")] }),
  mmPost(mmId("p3"), MM.town, T0 + 120_000, "(deleted)", { delete_at: T0 + 130_000 }),
  mmPost(mmId("p4"), MM.town, T0 + 180_000, "fixed", { edit_at: T0 + 200_000, is_pinned: true }),
];

function mmError(res: ServerResponse, status: number, id: string, message: string, headers = {}): void {
  reply(
    res,
    status,
    { id, message, detailed_error: "", request_id: "r".repeat(26), status_code: status },
    headers,
  );
}

function mattermost(req: FakeRequest, res: ServerResponse): void {
  if (req.headers.authorization !== `Bearer ${TOKEN}`)
    return mmError(
      res,
      401,
      "api.context.session_expired.app_error",
      "Invalid or expired session, please login again.",
    );
  const posts = /^\/api\/v4\/channels\/([a-z0-9]{26})\/posts$/.exec(req.path);
  if (req.method === "GET" && posts) {
    const channel = posts[1]!;
    if (channel === MM.slow) return;
    if (channel === MM.limited)
      return mmError(res, 429, "api.context.rate_limit_exceeded.app_error", "limit exceeded", {
        "retry-after": "3",
        "x-ratelimit-limit": "10",
        "x-ratelimit-remaining": "0",
      });
    if (channel === MM.broken) return mmError(res, 503, "api.server.unavailable", "Service Unavailable");
    if (channel !== MM.town)
      return mmError(res, 404, "app.channel.get.existing.app_error", "Unable to find the existing channel.");
    const perPage = Number(req.query.get("per_page") ?? "60");
    if (!Number.isInteger(perPage) || perPage < 1 || perPage > 200)
      return mmError(
        res,
        400,
        "api.context.invalid_url_param.app_error",
        "Invalid or missing per_page parameter in request URL.",
      );
    // Deleted posts only with include_deleted=true (and a system admin's token), as the API documents.
    const newest = [...mmPosts]
      .filter((p) => p["delete_at"] === 0 || req.query.get("include_deleted") === "true")
      .sort((a, b) => Number(b["create_at"]) - Number(a["create_at"]))
      .slice(0, perPage);
    return reply(res, 200, {
      order: newest.map((p) => p["id"]),
      posts: Object.fromEntries(newest.map((p) => [p["id"], p])),
      next_post_id: "",
      prev_post_id: mmId("p0"),
      has_next: false,
    });
  }
  if (req.method === "POST" && req.path === "/api/v4/posts") {
    if (!String(req.headers["content-type"]).startsWith("application/json"))
      return mmError(
        res,
        400,
        "api.context.invalid_body_param.app_error",
        "Invalid or missing post in request body.",
      );
    const body = JSON.parse(req.body) as JsonObject;
    if (typeof body["channel_id"] !== "string" || typeof body["message"] !== "string")
      return mmError(
        res,
        400,
        "api.context.invalid_body_param.app_error",
        "Invalid or missing post in request body.",
      );
    if (body["channel_id"] !== MM.town)
      return mmError(
        res,
        403,
        "api.context.permissions.app_error",
        "You do not have the appropriate permissions.",
      );
    const created = mmPost(mmId(`new${mmPosts.length}`), MM.town, Date.now(), body["message"], {
      root_id: typeof body["root_id"] === "string" ? body["root_id"] : "",
    });
    mmPosts.push(created);
    return reply(res, 201, created);
  }
  return mmError(res, 404, "api.context.404.app_error", "Sorry, we could not find the page.");
}

// --- Discord ----------------------------------------------------------------------------------

const DC = {
  guild: "100000000000000001",
  general: "200000000000000001",
  limited: "200000000000000002",
  broken: "200000000000000003",
  unlisted: "200000000000000009",
};
const dcMessages: JsonObject[] = [];
const nonces = new Map<string, JsonObject>();
let snowflake = 300000000000000000n;

function dcMessage(content: string, extra: JsonObject = {}): JsonObject {
  snowflake += 1n;
  return {
    id: String(snowflake),
    channel_id: DC.general,
    author: {
      id: "400000000000000001",
      username: "ops-bot",
      global_name: null,
      bot: true,
      discriminator: "0",
    },
    content,
    timestamp: new Date(T0 + dcMessages.length * 1000).toISOString().replace("Z", "+00:00"),
    edited_timestamp: null,
    tts: false,
    mention_everyone: false,
    mentions: [],
    mention_roles: [],
    attachments: [],
    embeds: [],
    pinned: false,
    type: 0,
    ...extra,
  };
}

dcMessages.push(
  dcMessage("deploy started"),
  dcMessage("see log", {
    author: { id: "400000000000000002", username: "ana", global_name: "Ana", discriminator: "0" },
    attachments: [
      {
        id: "500000000000000001",
        filename: "deploy.log",
        size: 2048,
        content_type: "text/plain",
        url: "https://cdn.discordapp.com/attachments/1/2/deploy.log?ex=1&is=2&hm=signed",
        proxy_url: "https://media.discordapp.net/attachments/1/2/deploy.log?ex=1&is=2&hm=signed",
      },
    ],
    message_reference: { message_id: "300000000000000001", channel_id: DC.general },
    edited_timestamp: new Date(T0 + 5000).toISOString(),
  }),
);

function discord(req: FakeRequest, res: ServerResponse): void {
  const auth = req.headers.authorization;
  if (auth !== `Bot ${TOKEN}` && auth !== `Bearer ${TOKEN}`)
    return reply(res, 401, { message: "401: Unauthorized", code: 0 });
  const m = /^\/api\/v10\/channels\/([0-9]{17,20})\/messages$/.exec(req.path);
  if (!m) return reply(res, 404, { message: "404: Not Found", code: 0 });
  const channel = m[1]!;
  if (channel === DC.limited)
    return reply(
      res,
      429,
      { message: "You are being rate limited.", retry_after: 2.5, global: false },
      {
        "retry-after": "3",
        "x-ratelimit-limit": "5",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset-after": "2.5",
        "x-ratelimit-scope": "user",
      },
    );
  if (channel === DC.broken) return reply(res, 502, { message: "Bad Gateway", code: 0 });
  if (channel !== DC.general) return reply(res, 404, { message: "Unknown Channel", code: 10003 });
  if (req.method === "GET") {
    const limit = Number(req.query.get("limit") ?? "50");
    const anchors = ["before", "after", "around"].filter((a) => req.query.has(a));
    if (!Number.isInteger(limit) || limit < 1 || limit > 100 || anchors.length > 1)
      return reply(res, 400, { message: "Invalid Form Body", code: 50035, errors: {} });
    return reply(res, 200, [...dcMessages].reverse().slice(0, limit));
  }
  if (req.method === "POST") {
    const body = JSON.parse(req.body) as JsonObject;
    const content = body["content"];
    if (
      typeof content !== "string" ||
      content.length > 2000 ||
      !String(req.headers["content-type"]).startsWith("application/json")
    )
      return reply(res, 400, { message: "Invalid Form Body", code: 50035, errors: {} });
    const nonce = typeof body["nonce"] === "string" ? body["nonce"] : undefined;
    if (nonce !== undefined && nonce.length > 25)
      return reply(res, 400, { message: "Invalid Form Body", code: 50035, errors: {} });
    if (nonce !== undefined && body["enforce_nonce"] === true && nonces.has(nonce))
      return reply(res, 200, nonces.get(nonce));
    const ref = body["message_reference"] as JsonObject | undefined;
    const created = dcMessage(content, {
      nonce: nonce ?? null,
      ...(ref ? { message_reference: { message_id: ref["message_id"]!, channel_id: DC.general } } : {}),
    });
    dcMessages.push(created);
    if (nonce !== undefined) nonces.set(nonce, created);
    return reply(res, 200, created);
  }
  return reply(res, 405, { message: "405: Method Not Allowed", code: 0 });
}

let api: FakeApi;

beforeAll(async () => {
  api = await startFakeApi((req, res) =>
    req.path.startsWith("/api/v4/") ? mattermost(req, res) : discord(req, res),
  );
});

afterAll(async () => {
  await api?.stop();
});

function mm(credentials: Record<string, string> = { token: TOKEN }, config: JsonObject = {}): ProbeInput {
  return {
    type: TYPES.mattermost,
    typeVersion: 1,
    config: {
      serverUrl: api.url,
      teamId: MM.team,
      channelIds: [MM.town, MM.limited, MM.broken, MM.slow],
      caBundle: api.caPem,
      ...config,
    },
    credentials,
    timeoutMs: 10_000,
  };
}

function dc(credentials: Record<string, string> = { token: TOKEN }, config: JsonObject = {}): ProbeInput {
  return {
    type: TYPES.discord,
    typeVersion: 1,
    // Discord's schema has no caBundle (discord.com has a public certificate); the driver's TLS takes it anyway.
    config: {
      guildId: DC.guild,
      channelIds: [DC.general, DC.limited, DC.broken],
      apiBase: `${api.url}/api/v10`,
      caBundle: api.caPem,
      ...config,
    },
    credentials,
    timeoutMs: 10_000,
  };
}

describe("mattermost", () => {
  it("readChannel: the PostList in its order (newest first), times as ISO, bounded by perPage", async () => {
    const r = await op("readChannel", { channelId: MM.town, perPage: 10 }, mm());
    expect(api.last()).toMatchObject({ method: "GET", path: `/api/v4/channels/${MM.town}/posts` });
    expect(api.last().query.get("per_page")).toBe("10");
    expect(api.last().query.get("page")).toBe("0");
    expect(api.last().query.has("include_deleted")).toBe(false);
    const data = r.data as { posts: JsonObject[]; prevPostId: string; hasNext: boolean };
    expect(data.posts.map((p) => p["id"])).toEqual([mmId("p4"), mmId("p2"), mmId("p1")]);
    expect(data.posts[0]).toEqual({
      id: mmId("p4"),
      channelId: MM.town,
      userId: MM.bot,
      createAt: new Date(T0 + 180_000).toISOString(),
      editAt: new Date(T0 + 200_000).toISOString(),
      rootId: "",
      type: "",
      message: "fixed",
      isPinned: true,
      fileIds: [],
    });
    expect(data.posts[1]).toMatchObject({ rootId: mmId("p1"), fileIds: [mmId("f1")] });
    expect(data).toMatchObject({ prevPostId: mmId("p0"), hasNext: false });
    const two = await op("readChannel", { channelId: MM.town, perPage: 2 }, mm());
    expect((two.data as { posts: unknown[] }).posts).toHaveLength(2);
  });

  it("readChannel passes since (as milliseconds), before and after", async () => {
    await op(
      "readChannel",
      { channelId: MM.town, since: "2025-03-01T10:00:00Z", before: mmId("p9"), after: mmId("p0"), page: 2 },
      mm(),
    );
    const q = api.last().query;
    expect([q.get("since"), q.get("before"), q.get("after"), q.get("page")]).toEqual([
      String(T0),
      mmId("p9"),
      mmId("p0"),
      "2",
    ]);
  });

  it("postMessage: POST /api/v4/posts {channel_id, message, root_id}; the new post's id", async () => {
    const r = await op(
      "postMessage",
      { channelId: MM.town, message: "restarting db-7", rootId: mmId("p1") },
      mm(),
    );
    const sent = api.last();
    expect(sent).toMatchObject({ method: "POST", path: "/api/v4/posts" });
    expect(sent.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(sent.body)).toEqual({
      channel_id: MM.town,
      message: "restarting db-7",
      root_id: mmId("p1"),
    });
    const id = (r.data as { id: string }).id;
    expect(r.data).toMatchObject({ channelId: MM.town, rootId: mmId("p1") });
    expect(r.providerStatusCode).toBe(201);
    expect(r.remoteChangeIds).toEqual([id]);
    const read = await op("readChannel", { channelId: MM.town }, mm());
    expect((read.data as { posts: JsonObject[] }).posts[0]).toMatchObject({ id, message: "restarting db-7" });
  });

  it("a channel outside channelIds is policy_denied, a malformed id a validation error; nothing is sent", async () => {
    const before = api.requests.length;
    const e = await failure(op("postMessage", { channelId: MM.unlisted, message: "hi" }, mm()));
    expect(e).toMatchObject({ errorClass: "policy_denied", reason: "ChannelNotAllowed" });
    for (const channelId of ["../users/me", `${MM.town}/../../users`, "%2e%2e", MM.town.toUpperCase(), ""]) {
      expect(inputValid("readChannel", { channelId }, mm()), channelId).toBe(false);
      const bad = await failure(
        runOperation("readChannel", { channelId }, mm({ token: TOKEN }, { channelIds: [channelId] }), log),
      );
      expect(bad, channelId).toMatchObject({ errorClass: "validation_error", reason: "InvalidInput" });
    }
    expect(
      await failure(
        runOperation("postMessage", { channelId: MM.town, message: "x", rootId: "../x" }, mm(), log),
      ),
    ).toMatchObject({
      errorClass: "validation_error",
    });
    expect(api.requests.length).toBe(before);
  });

  it("401 => AuthenticationFailed; 429 => quota_exceeded with Retry-After; 503 => transient; silence => Timeout", async () => {
    const wrong = await failure(op("readChannel", { channelId: MM.town }, mm({ token: WRONG })));
    expect(wrong).toMatchObject({
      errorClass: "permanent",
      reason: "AuthenticationFailed",
      providerStatusCode: 401,
    });
    const post = await failure(op("postMessage", { channelId: MM.town, message: "x" }, mm({ token: WRONG })));
    expect(post).toMatchObject({ reason: "AuthenticationFailed" });
    expect(await failure(op("readChannel", { channelId: MM.limited }, mm()))).toMatchObject({
      errorClass: "quota_exceeded",
      providerStatusCode: 429,
      retryAfterMs: 3000,
    });
    expect(await failure(op("readChannel", { channelId: MM.broken }, mm()))).toMatchObject({
      errorClass: "transient",
      providerStatusCode: 503,
    });
    const started = performance.now();
    const slow = await failure(op("readChannel", { channelId: MM.slow }, { ...mm(), timeoutMs: 500 }));
    expect(slow).toMatchObject({ errorClass: "transient", reason: "Timeout" });
    expect(performance.now() - started).toBeLessThan(1500);
    await api.waitForNoOpenSockets(2000);
  });

  it("deleteChannel is forbidden and never runs", async () => {
    const before = api.requests.length;
    const e = await failure(runOperation("deleteChannel", { channelId: MM.town }, mm(), log));
    expect(e).toMatchObject({ errorClass: "policy_denied", reason: "OperationForbidden" });
    expect(api.requests.length).toBe(before);
  });
});

describe("discord", () => {
  it("readMessages: GET /channels/{id}/messages?limit= with the Bot token; authors, replies, attachments without URLs", async () => {
    const r = await op("readMessages", { channelId: DC.general, limit: 10 }, dc());
    expect(api.last()).toMatchObject({ method: "GET", path: `/api/v10/channels/${DC.general}/messages` });
    expect(api.last().query.get("limit")).toBe("10");
    expect(api.last().headers.authorization).toBe(`Bot ${TOKEN}`);
    const messages = (r.data as { messages: JsonObject[] }).messages;
    expect(messages.map((m) => m["content"]).slice(-2)).toEqual(["see log", "deploy started"]);
    const answer = messages.find((m) => m["content"] === "see log")!;
    expect(answer).toMatchObject({
      authorName: "Ana",
      authorIsBot: false,
      replyTo: "300000000000000001",
      attachments: [
        { id: "500000000000000001", filename: "deploy.log", size: 2048, contentType: "text/plain" },
      ],
    });
    expect(JSON.stringify(r.data)).not.toContain("hm=signed");
    expect(messages.find((m) => m["content"] === "deploy started")).toMatchObject({
      authorName: "ops-bot",
      authorIsBot: true,
      editedTimestamp: null,
    });
  });

  it("readMessages takes one of before, after, around; limit bounds the list", async () => {
    await op("readMessages", { channelId: DC.general, before: "300000000000000099" }, dc());
    expect(api.last().query.get("before")).toBe("300000000000000099");
    expect(api.last().query.get("limit")).toBe("50");
    const one = await op("readMessages", { channelId: DC.general, limit: 1 }, dc());
    expect((one.data as { messages: unknown[] }).messages).toHaveLength(1);
    const both = { channelId: DC.general, before: "300000000000000099", after: "300000000000000001" };
    expect(inputValid("readMessages", both, dc())).toBe(false);
    const before = api.requests.length;
    expect(await failure(runOperation("readMessages", both, dc(), log))).toMatchObject({
      errorClass: "validation_error",
      reason: "InvalidInput",
    });
    expect(api.requests.length).toBe(before);
  });

  it("postMessage: content, allowed_mentions from the config, a reply reference; Bearer for an OAuth token", async () => {
    const r = await op(
      "postMessage",
      { channelId: DC.general, content: "@everyone deploy done", replyTo: "300000000000000001" },
      dc(),
    );
    const sent = JSON.parse(api.last().body) as JsonObject;
    expect(sent).toEqual({
      content: "@everyone deploy done",
      allowed_mentions: { parse: [] },
      message_reference: { message_id: "300000000000000001", fail_if_not_exists: false },
    });
    expect(r.data).toMatchObject({ channelId: DC.general });
    expect(r.remoteChangeIds).toEqual([(r.data as { id: string }).id]);

    await op(
      "postMessage",
      { channelId: DC.general, content: "hi <@1>" },
      dc({ token: TOKEN, tokenType: "Bearer" }, { allowMentions: "users" }),
    );
    expect(api.last().headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(JSON.parse(api.last().body)).toMatchObject({ allowed_mentions: { parse: ["users"] } });
  });

  it("an idempotency key becomes a nonce with enforce_nonce: a repeated post is the same message", async () => {
    const input = {
      channelId: DC.general,
      content: "rollback started",
      idempotencyKey: "job-81f0-attempt-key-that-is-long",
    };
    const count = dcMessages.length;
    const first = await op("postMessage", input, dc());
    const nonce = (JSON.parse(api.last().body) as { nonce: string; enforce_nonce: boolean }).nonce;
    expect(nonce).toHaveLength(25);
    expect(JSON.parse(api.last().body)).toMatchObject({ enforce_nonce: true });
    const again = await op("postMessage", input, dc());
    expect((again.data as { id: string }).id).toBe((first.data as { id: string }).id);
    expect(dcMessages.length).toBe(count + 1);
  });

  it("a channel outside channelIds is policy_denied; ids that are not snowflakes never reach a path", async () => {
    const before = api.requests.length;
    expect(await failure(op("readMessages", { channelId: DC.unlisted }, dc()))).toMatchObject({
      errorClass: "policy_denied",
      reason: "ChannelNotAllowed",
    });
    for (const channelId of ["../../users/@me", `${DC.general}/../1`, "12"]) {
      expect(inputValid("postMessage", { channelId, content: "x" }, dc()), channelId).toBe(false);
      const e = await failure(
        runOperation(
          "postMessage",
          { channelId, content: "x" },
          dc({ token: TOKEN }, { channelIds: [channelId] }),
          log,
        ),
      );
      expect(e, channelId).toMatchObject({ errorClass: "validation_error", reason: "InvalidInput" });
    }
    expect(api.requests.length).toBe(before);
  });

  it("401 => AuthenticationFailed; 429 => quota_exceeded with Retry-After; 502 => transient", async () => {
    expect(await failure(op("readMessages", { channelId: DC.general }, dc({ token: WRONG })))).toMatchObject({
      errorClass: "permanent",
      reason: "AuthenticationFailed",
      providerStatusCode: 401,
    });
    expect(await failure(op("postMessage", { channelId: DC.limited, content: "x" }, dc()))).toMatchObject({
      errorClass: "quota_exceeded",
      providerStatusCode: 429,
      retryAfterMs: 3000,
    });
    expect(await failure(op("readMessages", { channelId: DC.broken }, dc()))).toMatchObject({
      errorClass: "transient",
      providerStatusCode: 502,
    });
  });

  it("banMember is forbidden and never runs", async () => {
    const before = api.requests.length;
    const e = await failure(runOperation("banMember", { userId: "400000000000000002" }, dc(), log));
    expect(e).toMatchObject({ errorClass: "policy_denied", reason: "OperationForbidden" });
    expect(api.requests.length).toBe(before);
  });
});

describe("no credential ever appears in a result, an error or a log line", () => {
  it("a token posted into a channel is scrubbed when it is read back", async () => {
    await op("postMessage", { channelId: MM.town, message: `oops: ${TOKEN}` }, mm());
    const r = await op("readChannel", { channelId: MM.town, perPage: 1 }, mm());
    expect((r.data as { posts: { message: string }[] }).posts[0]?.message).toBe("oops: [REDACTED]");
  });

  it("scans everything this file produced", () => {
    expect(seen.length).toBeGreaterThan(20);
    for (const secret of [TOKEN, WRONG])
      for (const text of [...seen, ...logLines]) expect(text.includes(secret), text).toBe(false);
  });
});
