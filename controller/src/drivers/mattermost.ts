// Mattermost (REST API v4): the health check is GET serverUrl + /api/v4/users/me with
// Authorization: Bearer <token>; the body must be a user object with an id.
import type { JsonObject, TypeVersion } from "../api/types.ts";
import { configError, str } from "./config.ts";
import type { Driver, DriverCall, ProviderReply, Target } from "./driver.ts";
import { requireCredentials } from "./failures.ts";
import { currentUserHealth, joinUrl, urlTarget } from "./httpClient.ts";

function meUrl(config: JsonObject, version: TypeVersion): URL {
  const base = str(config, "serverUrl");
  if (!base) throw configError("mattermost", "serverUrl", "is missing");
  return joinUrl("mattermost", "serverUrl", base, version.healthProbe.path ?? "/api/v4/users/me");
}

function health(call: DriverCall): Promise<ProviderReply> {
  return currentUserHealth(
    call,
    meUrl(call.config, call.version),
    `Bearer ${requireCredentials(call, ["token"]).token}`,
    "a Mattermost user",
  );
}

export const mattermostDriver: Driver = {
  target: (config: JsonObject, version: TypeVersion): Target => urlTarget(meUrl(config, version)),
  health,
  operations: {},
};
