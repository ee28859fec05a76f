// Discord (REST API v10) under config.apiBase (default https://discord.com/api/v10), with
// Authorization: Bot <token> (Bearer when the credential tokenType is "Bearer", as an OAuth
// grant stores it).
// - health: GET /users/@me; the body must carry an id.
// - readMessages: GET /channels/{id}/messages?limit= (and one of before, after, around).
// - postMessage: POST /channels/{id}/messages with allowed_mentions from config.allowMentions
//   (none by default), an optional reply reference, and, with an idempotency key, a nonce
//   derived from it with enforce_nonce, so Discord itself drops a repeated delivery.
// The channel must be one of config.channelIds (policy_denied otherwise); ids are checked as
// snowflakes before they go into a path.
import { createHash } from "node:crypto";
import type { JsonObject, JsonValue, TypeVersion } from "../api/types.ts";
import { inputError, int, listedInput, str } from "./config.ts";
import type { Driver, DriverCall, OperationResult, ProviderReply, Target } from "./driver.ts";
import { requireCredentials, where } from "./failures.ts";
import { currentUserHealth, jsonBody, jsonRequest, jsonWithId, joinUrl, urlTarget } from "./httpClient.ts";

const DEFAULT_API_BASE = "https://discord.com/api/v10";
const SNOWFLAKE = /^[0-9]{17,20}$/;
const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 100;
const MAX_LIST_BYTES = 4 * 1024 * 1024;
/** Discord's nonce is at most 25 characters. */
const NONCE_CHARS = 25;

function apiUrl(config: JsonObject, path: string): URL {
  return joinUrl("discord", "apiBase", str(config, "apiBase") ?? DEFAULT_API_BASE, path);
}

function meUrl(config: JsonObject, version: TypeVersion): URL {
  return apiUrl(config, version.healthProbe.path ?? "/users/@me");
}

function authorization(call: DriverCall): string {
  const { token } = requireCredentials(call, ["token"]);
  const bearer = (call.credentials?.["tokenType"] ?? "").toLowerCase() === "bearer";
  return `${bearer ? "Bearer" : "Bot"} ${token}`;
}

function health(call: DriverCall): Promise<ProviderReply> {
  return currentUserHealth(call, meUrl(call.config, call.version), authorization(call), "a Discord user");
}

function channel(input: JsonObject, call: DriverCall): string {
  return listedInput(
    where(call),
    input,
    "channelId",
    call.config,
    "channelIds",
    SNOWFLAKE,
    "ChannelNotAllowed",
  );
}

function snowflake(input: JsonObject, field: string, call: DriverCall): string | undefined {
  const v = str(input, field);
  if (v !== undefined && !SNOWFLAKE.test(v)) throw inputError(where(call), field, "must be a snowflake id");
  return v;
}

type Raw = Record<string, unknown>;
const text = (v: unknown): string => (typeof v === "string" ? v : "");
const record = (v: unknown): Raw =>
  typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Raw) : {};

/** A message as the catalog's outputSchema has it: no embeds, and attachments without their signed URLs. */
function message(m: Raw): JsonObject {
  const author = record(m["author"]);
  const reference = record(m["message_reference"]);
  const attachments = (Array.isArray(m["attachments"]) ? m["attachments"] : []).map((a) => {
    const r = record(a);
    return {
      id: text(r["id"]),
      filename: text(r["filename"]),
      size: typeof r["size"] === "number" ? r["size"] : 0,
      ...(typeof r["content_type"] === "string" ? { contentType: r["content_type"] } : {}),
    };
  });
  return {
    id: text(m["id"]),
    channelId: text(m["channel_id"]),
    authorId: text(author["id"]),
    authorName: text(author["global_name"]) || text(author["username"]),
    authorIsBot: author["bot"] === true,
    content: text(m["content"]),
    timestamp: text(m["timestamp"]),
    editedTimestamp: typeof m["edited_timestamp"] === "string" ? m["edited_timestamp"] : null,
    ...(typeof reference["message_id"] === "string" ? { replyTo: reference["message_id"] } : {}),
    pinned: m["pinned"] === true,
    attachments,
  };
}

async function readMessages(input: JsonObject, call: DriverCall): Promise<OperationResult> {
  const channelId = channel(input, call);
  const limit = Math.min(int(input, "limit") ?? DEFAULT_LIMIT, MAX_LIMIT);
  const url = apiUrl(call.config, `/channels/${channelId}/messages`);
  url.searchParams.set("limit", String(limit));
  const anchors = ["before", "after", "around"].filter((f) => snowflake(input, f, call) !== undefined);
  if (anchors.length > 1) throw inputError(where(call), anchors[1]!, `cannot be combined with ${anchors[0]}`);
  for (const field of anchors) url.searchParams.set(field, str(input, field)!);
  const res = await jsonRequest(call, {
    method: "GET",
    url,
    authorization: authorization(call),
    maxBodyBytes: MAX_LIST_BYTES,
  });
  const list = jsonBody(call, res, "a list of Discord messages");
  const messages = (Array.isArray(list) ? list : []).map(record).filter((m) => text(m["id"]) !== "");
  return {
    data: { channelId, messages: messages.slice(0, limit).map(message) },
    providerStatusCode: res.status,
  };
}

function allowedMentions(config: JsonObject): JsonObject {
  const mode = str(config, "allowMentions") ?? "none";
  const parse: JsonValue[] =
    mode === "everyone" ? ["users", "roles", "everyone"] : mode === "users" ? ["users"] : [];
  return { parse };
}

async function postMessage(input: JsonObject, call: DriverCall): Promise<OperationResult> {
  const channelId = channel(input, call);
  const content = str(input, "content") ?? "";
  if (content.trim() === "") throw inputError(where(call), "content", "must not be empty");
  const replyTo = snowflake(input, "replyTo", call);
  const key = str(input, "idempotencyKey");
  const body: JsonObject = {
    content,
    allowed_mentions: allowedMentions(call.config),
    ...(replyTo !== undefined
      ? { message_reference: { message_id: replyTo, fail_if_not_exists: false } }
      : {}),
    ...(key !== undefined
      ? {
          nonce: createHash("sha256").update(key).digest("base64url").slice(0, NONCE_CHARS),
          enforce_nonce: true,
        }
      : {}),
  };
  const res = await jsonRequest(call, {
    method: "POST",
    url: apiUrl(call.config, `/channels/${channelId}/messages`),
    authorization: authorization(call),
    body,
  });
  const sent = message(jsonWithId(call, res, "a Discord message"));
  return {
    data: { id: sent["id"]!, channelId, timestamp: sent["timestamp"]! },
    providerStatusCode: res.status,
    remoteChangeIds: [text(sent["id"])],
  };
}

export const discordDriver: Driver = {
  target: (config: JsonObject, version: TypeVersion): Target => urlTarget(meUrl(config, version)),
  health,
  operations: { readMessages, postMessage },
};
