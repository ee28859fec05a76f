// OAuth connectors end to end, through the running controller: a real kube-apiserver + etcd
// and a real PostgreSQL; a `file` SecretProvider holding the OAuth clients
// (spec.oauthClients.<type>.clientId) and, once "the flow completes", the token the test
// stores as <connector name>-oauth. The connectors' APIs are loopback servers with the
// Discord (/api/v10/users/@me, plain HTTP, Bearer only as for an OAuth grant) and Mattermost
// (/api/v4/users/me, HTTPS with a throwaway CA) shapes.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Connector, JsonObject } from "../../controller/src/api/types.ts";
import { startBearerTarget, type BearerTarget } from "../support/bearerTarget.ts";
import { apply, kubectlOk } from "../support/cluster.ts";
import { condition, getConnector, waitConnector as waitForConnector } from "../support/connectors.ts";
import type { ControlPlane } from "../support/controlPlane.ts";
import type { TestController } from "../support/controller.ts";
import { fileSecrets, type FileSecrets } from "../support/fileSecrets.ts";
import { startTestHttpsServer, type TestHttpsServer } from "../support/probeServers.ts";
import { startWorld, type World } from "../support/world.ts";

let world: World;
let cp: ControlPlane;
let discordApi: BearerTarget;
let mattermostApi: TestHttpsServer;
let running: TestController;
let secrets: FileSecrets;

const NS = "oauth";
const PROVIDER = "oauth-files";
const NO_CLIENTS = "plain-files";
const DISCORD_CLIENT_ID = "998877665544332211";
const MATTERMOST_CLIENT_ID = "mmclient5x7tfj9bq1rdz6m4hc";
const REDIRECT = "https://connectors.example.com/oauth/callback";
const discordToken = `discord-access-${randomBytes(12).toString("hex")}`;
const mattermostToken = `mattermost-access-${randomBytes(12).toString("hex")}`;
const figures: Record<string, number> = {};

const OWNER = { type: "user" as const, id: "96911e17-3026-45e5-b738-1fc5bf634d9d" };
const PROJECT = "fddcc203-2ca1-42b2-a6f6-2d1f4b016b80";

function writeSecret(name: string, values: Record<string, string>): void {
  secrets.write(NS, name, values);
}

function connector(
  name: string,
  type: "discord" | "mattermost",
  config: JsonObject,
  provider: string,
  scopes?: string[],
): Connector {
  const discord = type === "discord";
  return {
    apiVersion: "cynodeai.io/v1alpha1",
    kind: "Connector",
    metadata: { name, namespace: NS },
    spec: {
      type,
      typeVersion: 1,
      enabled: true,
      owner: OWNER,
      projectId: PROJECT,
      config,
      credentials: { mode: "oauth", oauth: { provider, ...(scopes ? { scopes } : {}) } },
      policy: {
        allowOperations: [discord ? "readMessages" : "readChannel"],
        actionScope: ["connector.operation.read"],
      },
      limits: { maxParallelInvocations: 2, rateLimit: { rps: 1, burst: 5 } },
      healthCheck: { intervalSeconds: 10, timeoutSeconds: 5 },
    },
  };
}

const discordConfig = (): JsonObject => ({
  guildId: "613425648685547541",
  channelIds: ["613425648685547544"],
  apiBase: `${discordApi.url}/api/v10`,
});
const mattermostConfig = (): JsonObject => ({
  serverUrl: mattermostApi.url,
  teamId: "q8xk3n5w7tfj9bq1rdz6m4hc2e",
  channelIds: ["4yc8g1m6kpbz3rfe9d7tnwqh5a"],
  caBundle: mattermostApi.caPem,
});

const waitConnector = (name: string, pred: (c: Connector) => boolean, what: string, timeoutMs?: number) =>
  waitForConnector(cp, NS, name, pred, what, timeoutMs);

const pending = (c: Connector) => c.status?.auth?.state === "Pending" && !!c.status.auth.url;

beforeAll(async () => {
  world = await startWorld({ namespaces: [NS] });
  cp = world.cp;
  discordApi = await startBearerTarget();
  world.defer("the Discord API", () => discordApi.stop());
  mattermostApi = await startTestHttpsServer({ token: mattermostToken });
  world.defer("the Mattermost API", () => mattermostApi.stop());
  discordApi.accepted.add(discordToken);
  secrets = fileSecrets(world.tempDir("cc-oauth-secrets-"));
  await apply(cp, [
    secrets.provider(PROVIDER, {
      oauthClients: {
        discord: { clientId: DISCORD_CLIENT_ID, redirectUri: REDIRECT },
        mattermost: { clientId: MATTERMOST_CLIENT_ID },
      },
    }),
    secrets.provider(NO_CLIENTS),
  ]);
  running = await world.startController(["--failure-retry", "2s"]);
}, 600_000);

afterAll(async () => {
  if (Object.keys(figures).length) console.info(`oauth figures: ${JSON.stringify(figures)}`);
  await world?.stop();
});

describe("OAuth connectors through the running controller", () => {
  let discordUrl: URL;

  it("a Discord OAuth Connector waits in provisioning with an authorization URL built from the type and the provider", async () => {
    await apply(
      cp,
      connector("community", "discord", discordConfig(), PROVIDER, ["identify", "guilds", "bot"]),
    );
    const c = await waitConnector("community", pending, "auth.state Pending with a URL");
    expect(c.status?.state).toBe("provisioning");
    expect(condition(c, "Ready")).toMatchObject({ status: "False", reason: "Provisioning" });
    expect(condition(c, "Healthy")).toMatchObject({ status: "Unknown", reason: "AuthorizationPending" });
    expect(condition(c, "Synced")?.status).toBe("True");
    expect(condition(c, "Reconciling")?.status).toBe("True");

    discordUrl = new URL(c.status!.auth!.url!);
    // The type's oauth.authorizeUrl (examples/types/discord.yaml) ...
    expect(`${discordUrl.origin}${discordUrl.pathname}`).toBe("https://discord.com/oauth2/authorize");
    // ... with the provider's client id and redirect URI, the scopes and a state nonce.
    const q = discordUrl.searchParams;
    expect(q.get("response_type")).toBe("code");
    expect(q.get("client_id")).toBe(DISCORD_CLIENT_ID);
    expect(q.get("redirect_uri")).toBe(REDIRECT);
    expect(q.get("scope")).toBe("identify guilds bot");
    expect(q.get("state")).toMatch(/^[0-9a-f]{32}$/);
    // Nothing is probed while the authorization is pending.
    expect(discordApi.requests).toEqual([]);
  });

  it("the state nonce is stable across reconciles", async () => {
    // A metadata-only change is reconciled (same generation); failing-retry reconciles run every 2 s.
    await kubectlOk(cp, ["annotate", "conn", "community", "-n", NS, "example.com/poke=1", "--overwrite"]);
    await new Promise((r) => setTimeout(r, 6000));
    await kubectlOk(cp, ["annotate", "conn", "community", "-n", NS, "example.com/poke=2", "--overwrite"]);
    await new Promise((r) => setTimeout(r, 3000));
    const c = await waitConnector("community", pending, "still pending");
    expect(c.status?.auth?.url).toBe(discordUrl.toString());
    expect(c.status?.state).toBe("provisioning");
  });

  it("once the token is stored, the Discord connector is probed with it and becomes active, Authorized", async () => {
    const stored = Date.now();
    writeSecret("community-oauth", { access_token: discordToken, token_type: "Bearer" });
    const c = await waitConnector(
      "community",
      (x) => x.status?.state === "active" && x.status.auth?.state === "Authorized",
      "active and Authorized",
    );
    figures.discordTokenToActiveMs = Date.now() - stored;
    expect(condition(c, "Healthy")).toMatchObject({ status: "True", reason: "ConnectivityOK" });
    expect(condition(c, "Ready")).toMatchObject({ status: "True", reason: "Available" });
    // The probe used the stored access token, as a Bearer token (an OAuth grant), at /users/@me.
    const probes = discordApi.requests.filter((r) => r.path === "/api/v10/users/@me");
    expect(probes.length).toBeGreaterThan(0);
    expect(probes.at(-1)).toMatchObject({ scheme: "Bearer", token: discordToken });
  });

  // The status patch clears nested keys that went away (kube/resources.ts mergePatch), so the
  // stored status equals the computed one and an unchanged connector is not written again.
  it("once authorized, status.auth no longer carries the authorization URL", async () => {
    const c = await getConnector(cp, NS, "community");
    expect(c?.status?.auth?.state).toBe("Authorized");
    expect(c?.status?.auth).toEqual({ state: "Authorized" });
  });

  it("writes no status for authorized, unchanged connectors (15 s, probes running)", async () => {
    const before = running.writer.statusWrites;
    await new Promise((r) => setTimeout(r, 15_000));
    figures.statusWritesIn15sSteady = running.writer.statusWrites - before;
    expect(figures.statusWritesIn15sSteady).toBe(0);
  });

  it("a Mattermost OAuth Connector: Pending with its URL, then active once the token is stored", async () => {
    await apply(cp, connector("ops-chat", "mattermost", mattermostConfig(), PROVIDER));
    const c = await waitConnector("ops-chat", pending, "auth.state Pending with a URL");
    expect(c.status?.state).toBe("provisioning");
    const url = new URL(c.status!.auth!.url!);
    expect(`${url.origin}${url.pathname}`).toBe(`${mattermostApi.url}/oauth/authorize`); // on serverUrl
    expect(url.searchParams.get("client_id")).toBe(MATTERMOST_CLIENT_ID);
    expect(url.searchParams.get("state")).toMatch(/^[0-9a-f]{32}$/);
    expect(url.searchParams.get("state")).not.toBe(discordUrl.searchParams.get("state"));
    expect(url.searchParams.has("scope")).toBe(false); // the type asks for no scopes
    expect(mattermostApi.requests).toEqual([]);

    const stored = Date.now();
    writeSecret("ops-chat-oauth", { access_token: mattermostToken });
    const active = await waitConnector(
      "ops-chat",
      (x) => x.status?.state === "active" && x.status.auth?.state === "Authorized",
      "active and Authorized",
    );
    figures.mattermostTokenToActiveMs = Date.now() - stored;
    expect(condition(active, "Healthy")).toMatchObject({ status: "True", reason: "ConnectivityOK" });
    expect(mattermostApi.requests).toContain("GET /api/v4/users/me");
  });

  it("a provider without an OAuth client for the type => Synced False OAuthNotConfigured", async () => {
    await apply(cp, connector("no-client", "mattermost", mattermostConfig(), NO_CLIENTS));
    const c = await waitConnector(
      "no-client",
      (x) => condition(x, "Synced")?.reason === "OAuthNotConfigured",
      "Synced False OAuthNotConfigured",
    );
    expect(condition(c, "Synced")?.status).toBe("False");
    expect(condition(c, "Synced")?.message).toBe(
      `SecretProvider ${NO_CLIENTS} has no OAuth client for type "mattermost"`,
    );
    expect(c.status?.auth).toBeUndefined();
  });

  it("the OAuth tokens never appear in the controller's logs, Events or status", async () => {
    const logs = running.logLines.join("");
    expect(logs.length).toBeGreaterThan(0);
    const evs = await kubectlOk(cp, ["get", "events", "-A", "-o", "json"]);
    const conns = await kubectlOk(cp, ["get", "conn", "-A", "-o", "json"]);
    for (const text of [logs, evs, conns])
      for (const t of [discordToken, mattermostToken]) expect(text).not.toContain(t);
  });
});
