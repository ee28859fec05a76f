// Step "credentials": what a probe needs, resolved only when a probe is due, held for it
// and dropped after. A new secret version (or, for KV v1, a new keyed fingerprint) while
// the spec did not change is a rotation. OAuth connectors wait, with an authorization URL
// in status, until completing the flow stores their token with the provider. Every
// failure is thrown as a ConnectorError; the reconciler's one failure route decides.
import { createHmac } from "node:crypto";
import type { Connector, JsonObject, TypeVersion } from "../api/types.ts";
import { ConnectorError, classify } from "../api/errors.ts";
import type { InstanceRow, ObservedInstance, ResolvedSecret } from "../api/model.ts";
import type { SecretResolver } from "./ports.ts";

export interface OAuthClients {
  /** The client id (and redirect URI) the named provider holds for a connector type. */
  client(provider: string, type: string): { clientId: string; redirectUri?: string } | undefined;
}

export type CredentialOutcome =
  /** No credentials to resolve (none in the spec, or no resolver configured). */
  | { kind: "none" }
  /** OAuth consent has not been given yet: wait, with the URL that gives it. */
  | { kind: "pending"; auth: { state: "Pending"; url: string } }
  | {
      kind: "resolved";
      values: Record<string, string>;
      observed: Pick<ObservedInstance, "secretVersion" | "secretFingerprint">;
      rotated?: { from: number | null; to: number | null };
      auth?: { state: "Authorized" };
    };

/** The type's credential keys must all be in the secret; names only in the message. */
export function checkCredentialKeys(
  values: Record<string, string>,
  version: TypeVersion,
  where: string,
): void {
  const missing = (version.credentialKeys ?? []).filter((k) => !(k in values));
  if (missing.length)
    throw new ConnectorError(
      "permanent",
      "SecretKeyMissing",
      `secret ${where} has no key ${missing.map((k) => `"${k}"`).join(", ")} (the type needs ${version.credentialKeys!.join(", ")})`,
    );
}

export function oauthState(key: Buffer, c: Connector): string {
  return createHmac("sha256", key)
    .update(`${c.metadata.uid}:${c.metadata.generation ?? 0}`)
    .digest("hex")
    .slice(0, 32);
}

/** The authorization URL; `{name}` in the type's authorizeUrl takes the config value of that name. */
export function authorizeUrl(
  version: TypeVersion,
  config: JsonObject,
  client: { clientId: string; redirectUri?: string },
  scopes: string[],
  state: string,
): string {
  const template = version.oauth!.authorizeUrl.replace(/\{(\w+)\}/g, (_m, name: string) => {
    const v = config[name];
    if (typeof v !== "string")
      throw new ConnectorError(
        "permanent",
        "OAuthNotConfigured",
        `the type's authorizeUrl names config.${name}, which is not set`,
      );
    return v.replace(/\/+$/, "");
  });
  const url = new URL(template);
  url.searchParams.set("response_type", "code");
  url.searchParams.set("client_id", client.clientId);
  if (scopes.length) url.searchParams.set("scope", scopes.join(" "));
  url.searchParams.set("state", state);
  if (client.redirectUri) url.searchParams.set("redirect_uri", client.redirectUri);
  return url.toString();
}

export interface CredentialDeps {
  secrets?: SecretResolver | undefined;
  oauthClients?: OAuthClients;
  oauthStateKey?: Buffer;
}

export async function resolveCredentials(
  deps: CredentialDeps,
  c: Connector,
  version: TypeVersion,
  row: InstanceRow,
  specChanged: boolean,
  signal?: AbortSignal,
): Promise<CredentialOutcome> {
  const creds = c.spec.credentials;
  if (!creds || !deps.secrets) return { kind: "none" };
  const ns = c.metadata.namespace ?? "";

  if (creds.mode === "oauth" && creds.oauth) {
    const provider = creds.oauth.provider;
    const client = deps.oauthClients?.client(provider, c.spec.type);
    if (!version.oauth || !client)
      throw new ConnectorError(
        "permanent",
        "OAuthNotConfigured",
        !version.oauth
          ? `connector type "${c.spec.type}" version ${version.version} has no OAuth settings`
          : `SecretProvider ${provider} has no OAuth client for type "${c.spec.type}"`,
      );
    let secret: ResolvedSecret;
    try {
      secret = await deps.secrets.resolve(ns, { provider, name: `${c.metadata.name}-oauth` }, signal);
    } catch (err) {
      const e = classify(err);
      if (e.reason !== "SecretNotFound") throw e;
      const scopes = creds.oauth.scopes ?? version.oauth.scopes ?? [];
      const state = deps.oauthStateKey ? oauthState(deps.oauthStateKey, c) : "";
      return {
        kind: "pending",
        auth: {
          state: "Pending",
          url: authorizeUrl(version, c.spec.config ?? {}, client, scopes, state),
        },
      };
    }
    const token = secret.values.access_token ?? secret.values.token;
    if (!token)
      throw new ConnectorError(
        "permanent",
        "SecretKeyMissing",
        `the OAuth token secret of ${ns}/${c.metadata.name} has no "access_token" or "token" key`,
      );
    // An OAuth grant's access token is a Bearer token (RFC 6750): tell the probe so (the
    // Discord probe sends "Bot <token>" otherwise). A stored tokenType or token_type wins.
    const tokenType = secret.values.tokenType ?? secret.values.token_type ?? "Bearer";
    return {
      kind: "resolved",
      values: { ...secret.values, token, tokenType },
      observed: { secretVersion: secret.version, secretFingerprint: secret.fingerprint },
      auth: { state: "Authorized" },
    };
  }

  const ref = creds.secretRef;
  if (creds.mode !== "secretRef" || !ref) return { kind: "none" };
  const secret = await deps.secrets.resolve(ns, ref, signal);
  checkCredentialKeys(secret.values, version, `${ref.provider}/${ref.name}`);
  const pinned = ref.version !== undefined;
  const rotated =
    !specChanged && !pinned && row.secretFingerprint !== null && row.secretFingerprint !== secret.fingerprint
      ? { from: row.secretVersion, to: secret.version }
      : undefined;
  return {
    kind: "resolved",
    values: secret.values,
    observed: { secretVersion: secret.version, secretFingerprint: secret.fingerprint },
    ...(rotated ? { rotated } : {}),
  };
}
