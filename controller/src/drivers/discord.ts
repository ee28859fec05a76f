// Discord (REST API v10): the health check is GET apiBase (default
// https://discord.com/api/v10) + /users/@me with Authorization: Bot <token> (Bearer when the
// credential tokenType is "Bearer", as an OAuth grant stores it); the body must carry an id.
import type { JsonObject, TypeVersion } from "../api/types.ts";
import { str } from "./config.ts";
import type { Driver, DriverCall, ProviderReply, Target } from "./driver.ts";
import { requireCredentials } from "./failures.ts";
import { currentUserHealth, joinUrl, urlTarget } from "./httpClient.ts";

const DEFAULT_API_BASE = "https://discord.com/api/v10";

function meUrl(config: JsonObject, version: TypeVersion): URL {
  return joinUrl(
    "discord",
    "apiBase",
    str(config, "apiBase") ?? DEFAULT_API_BASE,
    version.healthProbe.path ?? "/users/@me",
  );
}

function authorization(call: DriverCall): string {
  const { token } = requireCredentials(call, ["token"]);
  const bearer = (call.credentials?.["tokenType"] ?? "").toLowerCase() === "bearer";
  return `${bearer ? "Bearer" : "Bot"} ${token}`;
}

function health(call: DriverCall): Promise<ProviderReply> {
  return currentUserHealth(call, meUrl(call.config, call.version), authorization(call), "a Discord user");
}

export const discordDriver: Driver = {
  target: (config: JsonObject, version: TypeVersion): Target => urlTarget(meUrl(config, version)),
  health,
  operations: {},
};
