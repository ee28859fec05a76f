// Mattermost (REST API v4), with Authorization: Bearer <token> on every request.
// - health: GET serverUrl + /api/v4/users/me; the body must be a user object with an id.
// - readChannel: GET /api/v4/channels/{id}/posts (page, per_page, since, before, after); the
//   PostList's posts in its `order` (newest first), at most perPage.
// - postMessage: POST /api/v4/posts {channel_id, message, root_id}.
// The channel must be one of config.channelIds (policy_denied otherwise); ids are checked
// against Mattermost's 26-character form before they go into a path.
import type { JsonObject, JsonValue, TypeVersion } from "../api/types.ts";
import { inputError, int, listedInput, requireStr, str } from "./config.ts";
import type { Driver, DriverCall, OperationResult, ProviderReply, Target } from "./driver.ts";
import { requireCredentials, where } from "./failures.ts";
import { currentUserHealth, jsonBody, jsonRequest, jsonWithId, joinUrl, urlTarget } from "./httpClient.ts";

const ID = /^[a-z0-9]{26}$/;
const DEFAULT_PER_PAGE = 30;
const MAX_PER_PAGE = 200;
const MAX_LIST_BYTES = 4 * 1024 * 1024;

const serverUrl = (config: JsonObject): string => requireStr(config, "serverUrl", "mattermost");

function meUrl(config: JsonObject, version: TypeVersion): URL {
  return joinUrl(
    "mattermost",
    "serverUrl",
    serverUrl(config),
    version.healthProbe.path ?? "/api/v4/users/me",
  );
}

function apiUrl(call: DriverCall, path: string): URL {
  return joinUrl("mattermost", "serverUrl", serverUrl(call.config), `/api/v4${path}`);
}

function authorization(call: DriverCall): string {
  return `Bearer ${requireCredentials(call, ["token"]).token}`;
}

function health(call: DriverCall): Promise<ProviderReply> {
  return currentUserHealth(call, meUrl(call.config, call.version), authorization(call), "a Mattermost user");
}

function channel(input: JsonObject, call: DriverCall): string {
  return listedInput(where(call), input, "channelId", call.config, "channelIds", ID, "ChannelNotAllowed");
}

function optionalId(input: JsonObject, field: string, call: DriverCall): string | undefined {
  const v = str(input, field);
  if (v !== undefined && !ID.test(v)) throw inputError(where(call), field, `must match ${ID.source}`);
  return v;
}

type Raw = Record<string, unknown>;
const text = (v: unknown): string => (typeof v === "string" ? v : "");
const millis = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : 0);
const iso = (ms: number): string => new Date(ms).toISOString();

/** A post as the catalog's outputSchema has it: ISO times, no props, metadata or hashtags. */
function post(p: Raw): JsonObject {
  const edited = millis(p["edit_at"]);
  const files = Array.isArray(p["file_ids"]) ? p["file_ids"].filter((f) => typeof f === "string") : [];
  return {
    id: text(p["id"]),
    channelId: text(p["channel_id"]),
    userId: text(p["user_id"]),
    createAt: iso(millis(p["create_at"])),
    ...(edited > 0 ? { editAt: iso(edited) } : {}),
    rootId: text(p["root_id"]),
    type: text(p["type"]),
    message: text(p["message"]),
    isPinned: p["is_pinned"] === true,
    fileIds: files as JsonValue[],
  };
}

async function readChannel(input: JsonObject, call: DriverCall): Promise<OperationResult> {
  const channelId = channel(input, call);
  const perPage = Math.min(int(input, "perPage") ?? DEFAULT_PER_PAGE, MAX_PER_PAGE);
  const url = apiUrl(call, `/channels/${channelId}/posts`);
  url.searchParams.set("page", String(int(input, "page") ?? 0));
  url.searchParams.set("per_page", String(perPage));
  const since = str(input, "since");
  if (since !== undefined) {
    const at = Date.parse(since);
    if (Number.isNaN(at)) throw inputError(where(call), "since", "is not a date-time");
    url.searchParams.set("since", String(at));
  }
  for (const field of ["before", "after"]) {
    const id = optionalId(input, field, call);
    if (id !== undefined) url.searchParams.set(field, id);
  }
  const res = await jsonRequest(call, {
    method: "GET",
    url,
    authorization: authorization(call),
    maxBodyBytes: MAX_LIST_BYTES,
  });
  const list = jsonBody(call, res, "a Mattermost post list") as Raw | null;
  const order = Array.isArray(list?.["order"]) ? list["order"] : [];
  const posts = (typeof list?.["posts"] === "object" && list["posts"] !== null ? list["posts"] : {}) as Raw;
  const found = order
    .map((id) => (typeof id === "string" && Object.hasOwn(posts, id) ? (posts[id] as Raw) : undefined))
    .filter((p): p is Raw => typeof p === "object" && p !== null && millis(p["delete_at"]) === 0);
  return {
    data: {
      channelId,
      posts: found.slice(0, perPage).map(post),
      hasNext: list?.["has_next"] === true,
      nextPostId: text(list?.["next_post_id"]),
      prevPostId: text(list?.["prev_post_id"]),
    },
    providerStatusCode: res.status,
  };
}

async function postMessage(input: JsonObject, call: DriverCall): Promise<OperationResult> {
  const channelId = channel(input, call);
  const message = str(input, "message") ?? "";
  if (message.trim() === "") throw inputError(where(call), "message", "must not be empty");
  const rootId = optionalId(input, "rootId", call);
  const res = await jsonRequest(call, {
    method: "POST",
    url: apiUrl(call, "/posts"),
    authorization: authorization(call),
    body: { channel_id: channelId, message, ...(rootId !== undefined ? { root_id: rootId } : {}) },
  });
  const created = post(jsonWithId(call, res, "a Mattermost post"));
  return {
    data: { id: created["id"]!, channelId, createAt: created["createAt"]!, rootId: created["rootId"]! },
    providerStatusCode: res.status,
    remoteChangeIds: [text(created["id"])],
  };
}

export const mattermostDriver: Driver = {
  target: (config: JsonObject, version: TypeVersion): Target => urlTarget(meUrl(config, version)),
  health,
  operations: { readChannel, postMessage },
};
