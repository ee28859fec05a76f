// The generic http type: GET baseUrl + (config.healthPath ?? healthProbe.path ?? "/") with the
// configured auth (config.auth {scheme: none|bearer|basic|header} and the `token` credential)
// and extra config.headers; healthy when the status is healthProbe.expectStatus, else any 2xx.
// Only the status is read.
import type { JsonObject, TypeVersion } from "../api/types.ts";
import { configError, obj, str } from "./config.ts";
import type { Driver, DriverCall, ProviderReply, Target } from "./driver.ts";
import { requireCredentials, where } from "./failures.ts";
import { expectStatus, httpRequest, joinUrl, urlTarget } from "./httpClient.ts";

function healthUrl(config: JsonObject, version: TypeVersion): URL {
  const base = str(config, "baseUrl");
  if (!base) throw configError("http", "baseUrl", "is missing");
  return joinUrl("http", "baseUrl", base, str(config, "healthPath") ?? version.healthProbe.path ?? "/");
}

function authHeaders(call: DriverCall): Record<string, string> {
  const auth = obj(call.config, "auth");
  const scheme = (auth && str(auth, "scheme")) ?? "none";
  if (scheme === "none") return {};
  if (scheme !== "bearer" && scheme !== "basic" && scheme !== "header")
    throw configError(
      where(call),
      ["auth", "scheme"],
      `${JSON.stringify(scheme)} is not a known auth scheme`,
    );
  const { token } = requireCredentials(call, ["token"]);
  if (scheme === "bearer") return { authorization: `Bearer ${token}` };
  if (scheme === "basic") {
    const username = (auth && str(auth, "username")) ?? "";
    if (username.includes(":")) throw configError(where(call), ["auth", "username"], "must not contain ':'");
    return { authorization: `Basic ${Buffer.from(`${username}:${token}`).toString("base64")}` };
  }
  const name = auth && str(auth, "headerName");
  if (!name) throw configError(where(call), ["auth", "headerName"], "is missing");
  return { [name.toLowerCase()]: token };
}

function configHeaders(config: JsonObject): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj(config, "headers") ?? {}))
    if (typeof v === "string") out[k.toLowerCase()] = v;
  return out;
}

async function health(call: DriverCall): Promise<ProviderReply> {
  const res = await httpRequest(call, {
    method: "GET",
    url: healthUrl(call.config, call.version),
    headers: {
      ...configHeaders(call.config),
      accept: "*/*",
      ...authHeaders(call),
    },
    wantBody: false,
  });
  expectStatus(call, res, call.version.healthProbe.expectStatus);
  return { providerStatusCode: res.status };
}

export const httpDriver: Driver = {
  target: (config: JsonObject, version: TypeVersion): Target => urlTarget(healthUrl(config, version)),
  health,
  operations: {},
};
