// The one place that talks to a Vault-API server (HashiCorp Vault, OpenBao): a small typed
// client for the endpoints we call, on undici (why not node-vault: README, Secrets).
//
// - An undici Agent (vaultPool) per provider, shared by its clients: keep-alive pool, the
//   provider's caBundle as the trust root when given, TLS verification always on (nothing
//   reads VAULT_SKIP_VERIFY or any other VAULT_* variable); a timeout and the caller's
//   AbortSignal on every request.
// - Requests never leave the provider's origin, and no dot segment rewrites their path.
// - A client holds at most one token, the one it logged in with or was given; it never
//   leaves the client, not even in a login's result.
// - Every failure leaves as a ConnectorError (vaultErrors.ts) with the tokens and
//   credentials this client has seen scrubbed out.
import { Agent } from "undici";
import { ConnectorError } from "../api/errors.ts";
import {
  deletedError,
  isDeleted,
  parseRetryAfter,
  wrapVaultError,
  type KvMetadata,
  type VaultErrorResponse,
  type VaultOperation,
} from "./vaultErrors.ts";

export interface VaultClientOptions {
  /** http(s)://host:port */
  address: string;
  /** PEM trust roots for https; the system's when absent. */
  caBundle?: string | undefined;
  /** X-Vault-Namespace (Vault Enterprise, OpenBao namespaces). */
  namespace?: string | undefined;
  /** Per-request timeout (default 10 s). */
  requestTimeoutMs?: number;
  /** A pool shared with the provider's other clients (vaultPool); the client's own when absent. */
  pool?: Agent;
}

/** A token's lease as a login, renewal or lookup reports it. */
export interface TokenLease {
  accessor: string | undefined;
  /** 0 = never expires. */
  ttlSeconds: number;
  renewable: boolean;
}

export interface KvSecret {
  data: Record<string, unknown>;
  /** KV v2 metadata.version; null for KV v1. */
  version: number | null;
}

export interface VaultHealth {
  initialized: boolean;
  sealed: boolean;
  standby: boolean;
  version: string | undefined;
}

interface SendOptions {
  json?: unknown;
  signal?: AbortSignal | undefined;
  /** Credentials sent in this request, scrubbed from its errors. */
  sensitive?: string[];
  /** Answer with the body whatever the status (sys/health reports with its status code). */
  anyStatus?: boolean;
}

/** Vault answers in small JSON documents; anything this large is not Vault. */
const MAX_BODY_BYTES = 1 << 20;
/** Tokens and login credentials remembered for scrubbing (the newest ones). */
const MAX_SENSITIVE = 16;

/** Where a KV engine keeps `path`: `<mount>/data/<path>` (KV v2) or `<mount>/<path>` (KV v1). */
function kvLocation(mount: string, kvVersion: 1 | 2, path: string): string {
  return kvVersion === 2 ? `${mount}/data/${path}` : `${mount}/${path}`;
}

/** Each segment percent-encoded, the slashes kept. */
function encodePath(path: string): string {
  return path
    .split("/")
    .map((s) => encodeURIComponent(s))
    .join("/");
}

/** A connection pool to one provider's server, trusting its CA bundle (the system's when absent). */
export function vaultPool(caBundle: string | undefined, connectTimeoutMs: number): Agent {
  return new Agent({
    connections: 16,
    keepAliveTimeout: 30_000,
    connect: { rejectUnauthorized: true, timeout: connectTimeoutMs, ...(caBundle ? { ca: caBundle } : {}) },
  });
}

function invalidAddress(message: string): ConnectorError {
  return new ConnectorError("validation_error", "InvalidSecretProvider", message);
}

/** One Vault client: one server, at most one token. */
export class VaultClient {
  readonly address: string;
  readonly #namespace: string | undefined;
  readonly #timeoutMs: number;
  readonly #agent: Agent;
  readonly #ownsAgent: boolean;
  #token: string | undefined;
  /** Strings scrubbed from every error message (tokens, the last logins' credentials). */
  readonly #sensitive = new Set<string>();
  #closed = false;

  constructor(opts: VaultClientOptions) {
    let url: URL;
    try {
      url = new URL(opts.address);
    } catch {
      throw invalidAddress("spec.vault.address is not a URL");
    }
    if (url.protocol !== "https:" && url.protocol !== "http:")
      throw invalidAddress("spec.vault.address must be http(s)");
    this.address = url.origin;
    this.#namespace = opts.namespace || undefined;
    this.#timeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.#ownsAgent = !opts.pool;
    this.#agent = opts.pool ?? vaultPool(opts.caBundle, this.#timeoutMs);
  }

  get hasToken(): boolean {
    return this.#token !== undefined;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Sets (or clears) the token used for the next requests. */
  setToken(token: string | undefined): void {
    if (token) this.#remember(token);
    this.#token = token || undefined;
  }

  async loginKubernetes(
    mountPath: string,
    role: string,
    jwt: string,
    signal?: AbortSignal,
  ): Promise<TokenLease> {
    this.#remember(jwt);
    const what = `kubernetes auth at auth/${mountPath} with role ${role}`;
    const body = await this.#send("login", what, "POST", `auth/${encodePath(mountPath)}/login`, {
      json: { role, jwt },
      signal,
    });
    return this.#adopt(body, "login");
  }

  async loginAppRole(
    mountPath: string,
    roleId: string,
    secretId: string,
    signal?: AbortSignal,
  ): Promise<TokenLease> {
    this.#remember(secretId);
    const what = `AppRole auth at auth/${mountPath}`;
    const body = await this.#send("login", what, "POST", `auth/${encodePath(mountPath)}/login`, {
      json: { role_id: roleId, secret_id: secretId },
      signal,
    });
    return this.#adopt(body, "login");
  }

  /** The current token's remaining TTL and renewability (auth/token/lookup-self). */
  async lookupSelf(signal?: AbortSignal): Promise<{ ttlSeconds: number; renewable: boolean }> {
    const body = (await this.#send("lookup", "token lookup", "GET", "auth/token/lookup-self", { signal })) as
      { data?: { ttl?: number; renewable?: boolean } } | undefined;
    return { ttlSeconds: Number(body?.data?.ttl ?? 0), renewable: body?.data?.renewable === true };
  }

  async renewSelf(signal?: AbortSignal): Promise<TokenLease> {
    const body = await this.#send("renew", "token renewal", "POST", "auth/token/renew-self", { signal });
    return this.#adopt(body, "renew");
  }

  /** Revokes the current token and forgets it. Never throws when there is no token. */
  async revokeSelf(): Promise<void> {
    if (!this.hasToken) return;
    try {
      await this.#send("revoke", "token revocation", "POST", "auth/token/revoke-self");
    } finally {
      this.#token = undefined;
    }
  }

  /**
   * Reads a KV secret: v2 `<mount>/data/<path>[?version=N]`, v1 `<mount>/<path>`. The path
   * must come from the path guard (this method does not check it).
   */
  async readKv(
    mount: string,
    kvVersion: 1 | 2,
    path: string,
    pinnedVersion?: number,
    signal?: AbortSignal,
  ): Promise<KvSecret> {
    if (kvVersion === 1 && pinnedVersion !== undefined)
      throw new ConnectorError(
        "validation_error",
        "InvalidSecretRef",
        "spec.credentials.secretRef.version: a pinned version needs a KV version 2 engine; this provider's is version 1",
      );
    const at = kvLocation(mount, kvVersion, path);
    const query = pinnedVersion !== undefined ? `?version=${Math.trunc(pinnedVersion)}` : "";
    const body = (await this.#send("read", `read of ${at}`, "GET", `${encodePath(at)}${query}`, {
      signal,
    })) as
      | {
          data?: Record<string, unknown> & {
            data?: Record<string, unknown> | null;
            metadata?: KvMetadata | null;
          };
        }
      | undefined;
    if (kvVersion === 1) return { data: body?.data ?? {}, version: null };
    const meta = body?.data?.metadata ?? undefined;
    if (isDeleted(meta) && !body?.data?.data) throw deletedError(at, meta.version);
    return { data: body?.data?.data ?? {}, version: typeof meta?.version === "number" ? meta.version : null };
  }

  /**
   * Writes a KV secret: v2 a new version at `<mount>/data/<path>`, v1 `<mount>/<path>`.
   * Returns the new version (null for KV v1). The path must come from the path guard.
   */
  async writeKv(
    mount: string,
    kvVersion: 1 | 2,
    path: string,
    data: Record<string, unknown>,
    signal?: AbortSignal,
  ): Promise<{ version: number | null }> {
    const at = kvLocation(mount, kvVersion, path);
    const body = (await this.#send("write", `write of ${at}`, "POST", encodePath(at), {
      json: kvVersion === 2 ? { data } : data,
      signal,
      sensitive: Object.values(data).map((v) => (typeof v === "string" ? v : JSON.stringify(v ?? ""))),
    })) as { data?: { version?: number } } | undefined;
    const version = kvVersion === 2 ? body?.data?.version : undefined;
    return { version: typeof version === "number" ? version : null };
  }

  /** sys/health, with sealed, standby and uninitialised servers answering 200. */
  async health(signal?: AbortSignal): Promise<VaultHealth> {
    const path = "sys/health?standbyok=true&sealedcode=200&uninitcode=200";
    const body = (await this.#send("health", "health check", "GET", path, { signal, anyStatus: true })) as {
      initialized?: boolean;
      sealed?: boolean;
      standby?: boolean;
      version?: string;
      errors?: unknown;
    };
    if (body === undefined || body === null || typeof body !== "object" || body.errors)
      throw new ConnectorError(
        "transient",
        "VaultUnavailable",
        "Vault health check returned an unexpected body",
      );
    return {
      initialized: body.initialized === true,
      sealed: body.sealed === true,
      standby: body.standby === true,
      version: body.version,
    };
  }

  /** Forgets the token and drops its own pool (not a shared one). Call revokeSelf first if the token should die too. */
  close(): void {
    this.#closed = true;
    this.#token = undefined;
    if (this.#ownsAgent) void this.#agent.destroy().catch(() => undefined);
  }

  #remember(secret: string): void {
    this.#sensitive.delete(secret);
    this.#sensitive.add(secret);
    if (this.#sensitive.size > MAX_SENSITIVE)
      this.#sensitive.delete(this.#sensitive.values().next().value as string);
  }

  #adopt(body: unknown, op: VaultOperation): TokenLease {
    const auth = (body as { auth?: Record<string, unknown> } | undefined)?.auth;
    const token = typeof auth?.client_token === "string" ? auth.client_token : undefined;
    if (!token)
      throw new ConnectorError("transient", "VaultUnavailable", `Vault ${op} returned no token`, {
        providerStatusCode: 200,
      });
    this.setToken(token);
    return {
      accessor: typeof auth?.accessor === "string" ? auth.accessor : undefined,
      ttlSeconds: Number(auth?.lease_duration ?? 0),
      renewable: auth?.renewable === true,
    };
  }

  /**
   * One request to `path` (below /v1/, encoded): the parsed body of a 200 or 204 (of any
   * status with anyStatus), or a ConnectorError. `what` names the call in messages.
   */
  async #send(
    op: VaultOperation,
    what: string,
    method: "GET" | "POST",
    path: string,
    opts: SendOptions = {},
  ): Promise<unknown> {
    if (this.#closed)
      throw new ConnectorError("transient", "VaultUnavailable", `Vault ${what}: client closed`);
    const sensitive = [...this.#sensitive, ...(this.#token ? [this.#token] : []), ...(opts.sensitive ?? [])];
    const target = new URL(`/v1/${path}`, this.address);
    // The path guard refuses such paths first; this holds even if a caller skipped it.
    if (target.origin !== this.address || `${target.pathname}${target.search}` !== `/v1/${path}`)
      throw wrapVaultError(new Error("refusing a request outside the provider's address and path"), op, what);
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.#token) headers["x-vault-token"] = this.#token;
    if (this.#namespace) headers["x-vault-namespace"] = this.#namespace;
    if (opts.json !== undefined) headers["content-type"] = "application/json";

    const timeout = AbortSignal.timeout(this.#timeoutMs);
    let response: VaultErrorResponse;
    try {
      const res = await this.#agent.request({
        origin: this.address,
        path: `/v1/${path}`,
        method,
        headers,
        body: opts.json === undefined ? null : JSON.stringify(opts.json),
        signal: opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout,
      });
      response = {
        statusCode: res.statusCode,
        body: await readBody(res.body),
        retryAfterMs: res.statusCode === 429 ? parseRetryAfter(res.headers["retry-after"]) : undefined,
      };
    } catch (err) {
      // Only the code and the message of what failed go on; the error itself stays here.
      const e = err as { code?: unknown; message?: unknown };
      const failure = opts.signal?.aborted
        ? { code: "ABORT_ERR" }
        : timeout.aborted
          ? { code: "ETIMEDOUT", message: `no answer within ${this.#timeoutMs} ms` }
          : { code: typeof e?.code === "string" ? e.code : "ENETWORK", message: String(e?.message ?? "") };
      throw wrapVaultError(failure, op, what, sensitive);
    }
    if (opts.anyStatus || response.statusCode === 200 || response.statusCode === 204) return response.body;
    throw wrapVaultError({ response }, op, what, sensitive);
  }
}

/** The body as JSON; text that is not JSON as Vault's error shape; nothing as undefined. */
async function readBody(body: AsyncIterable<Buffer> & { destroy(): void }): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      body.destroy();
      throw Object.assign(new Error(`response larger than ${MAX_BODY_BYTES} bytes`), { code: "ETOOLARGE" });
    }
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return { errors: [text.slice(0, 200)] };
  }
}
