// The one place that talks to a Vault-API server (HashiCorp Vault, OpenBao) — through
// node-vault, with its pitfalls closed:
//
// - its `debug` (which prints login bodies, tokens and secret values) is replaced by a no-op;
// - its HTTP transport is ours (node:http/https): TLS verification can never be turned off
//   (VAULT_SKIP_VERIFY is ignored), `caBundle` is the trust root when given, requests time out
//   and honour an AbortSignal, and no error it produces holds a request header (node-vault's
//   own axios errors carry `X-Vault-Token` in their config);
// - the VAULT_TOKEN / VAULT_NAMESPACE / VAULT_PREFIX environment variables node-vault would
//   pick up are cleared: a client has exactly the token it logged in with, or none;
// - `mount_point` is always passed to the login calls;
// - every error leaves as a ConnectorError that keeps the status code, the first Vault error
//   message (with any token or credential of this client scrubbed out), and nothing else.
import * as http from "node:http";
import * as https from "node:https";
import nodeVault from "node-vault";
import { ConnectorError } from "../api/errors.ts";

export interface VaultClientOptions {
  /** http(s)://host:port */
  address: string;
  /** PEM trust roots for https; the system's when absent. */
  caBundle?: string | undefined;
  /** X-Vault-Namespace (Vault Enterprise, OpenBao namespaces). */
  namespace?: string | undefined;
  /** Per-request timeout (default 10 s). */
  requestTimeoutMs?: number;
}

/** A token as a login or renewal returned it. */
export interface VaultLogin {
  token: string;
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

/** Which call failed, for messages and for classifying 403 and 404. */
export type VaultOperation = "login" | "read" | "renew" | "revoke" | "health" | "lookup";

interface RawResponse {
  statusCode: number;
  body: unknown;
  request: { path: string };
}

interface TransportOptions {
  method: string;
  uri: string;
  headers?: Record<string, string>;
  json?: unknown;
  timeout?: number;
  signal?: AbortSignal;
}

/** Retry-After of 429 responses, keyed by the parsed body node-vault hands back in its error. */
const retryAfterByBody = new WeakMap<object, number>();

/** Vault's JSON error body. */
interface VaultErrorBody {
  errors?: unknown[];
  data?: { metadata?: { deletion_time?: string; destroyed?: boolean; version?: number } | null } | null;
}

function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  const secs = Number(v);
  if (Number.isFinite(secs) && secs >= 0) return Math.round(secs * 1000);
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}

/** A node-vault `request-promise` replacement on node:http(s). */
function makeTransport(opts: VaultClientOptions): { rp: unknown; agent: http.Agent } {
  const url = new URL(opts.address);
  const secure = url.protocol === "https:";
  const agent = secure
    ? new https.Agent({
        keepAlive: true,
        maxSockets: 16,
        rejectUnauthorized: true,
        ...(opts.caBundle ? { ca: opts.caBundle } : {}),
      })
    : new http.Agent({ keepAlive: true, maxSockets: 16 });
  const defaultTimeout = opts.requestTimeoutMs ?? 10_000;

  const request = (o: TransportOptions): Promise<RawResponse> =>
    new Promise<RawResponse>((resolve, reject) => {
      const target = new URL(o.uri);
      if (target.origin !== url.origin) {
        reject(new Error("refusing a request to another origin than the provider's address"));
        return;
      }
      const payload = o.json === undefined ? undefined : Buffer.from(JSON.stringify(o.json));
      const headers: Record<string, string> = { Accept: "application/json", ...(o.headers ?? {}) };
      if (payload) {
        headers["Content-Type"] ??= "application/json";
        headers["Content-Length"] = String(payload.length);
      }
      const reqOpts: https.RequestOptions = {
        method: o.method,
        agent,
        headers,
        timeout: o.timeout ?? defaultTimeout,
        ...(o.signal ? { signal: o.signal } : {}),
        // Whatever a caller passed, certificates are verified.
        rejectUnauthorized: true,
        ...(secure && opts.caBundle ? { ca: opts.caBundle } : {}),
      };
      const req = (secure ? https : http).request(target, reqOpts, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", (e) => reject(netError(e)));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let body: unknown = text;
          if (text.length > 0) {
            try {
              body = JSON.parse(text);
            } catch {
              body = { errors: [text.slice(0, 200)] };
            }
          } else body = undefined;
          if (res.statusCode === 429 && body && typeof body === "object") {
            const ra = parseRetryAfter(res.headers["retry-after"]);
            if (ra !== undefined) retryAfterByBody.set(body, ra);
          }
          resolve({ statusCode: res.statusCode ?? 0, body, request: { path: target.pathname } });
        });
      });
      req.on("timeout", () =>
        req.destroy(Object.assign(new Error("request timed out"), { code: "ETIMEDOUT" })),
      );
      req.on("error", (e) => reject(netError(e)));
      req.end(payload);
    });

  // node-vault calls `require('request-promise').defaults(rpDefaults)` and then the result.
  const rp = { defaults: () => request };
  return { rp, agent };
}

/** A network error reduced to its code and message (node's errors hold no headers; be sure). */
function netError(e: unknown): Error {
  const err = e as { code?: string; name?: string; message?: string };
  const code = err.name === "AbortError" ? "ABORT_ERR" : (err.code ?? "ENETWORK");
  return Object.assign(new Error(String(err.message ?? "network error").slice(0, 300)), {
    code,
    network: true,
  });
}

interface NodeVaultClient {
  token: string | undefined;
  namespace: string | undefined;
  pathPrefix: string;
  read(path: string, requestOptions?: object): Promise<unknown>;
  kubernetesLogin(args: object): Promise<unknown>;
  approleLogin(args: object): Promise<unknown>;
  tokenRenewSelf(args?: object): Promise<unknown>;
  tokenRevokeSelf(args?: object): Promise<unknown>;
  tokenLookupSelf(args?: object): Promise<unknown>;
  health(args?: object): Promise<unknown>;
}

const noop = (): void => undefined;

/** One Vault client: one server, at most one token. */
export class VaultClient {
  readonly address: string;
  readonly #vault: NodeVaultClient;
  readonly #agent: http.Agent;
  /** Strings scrubbed from every error message (the token, the last login's credentials). */
  readonly #sensitive = new Set<string>();
  #closed = false;

  constructor(opts: VaultClientOptions) {
    let url: URL;
    try {
      url = new URL(opts.address);
    } catch {
      throw new ConnectorError(
        "validation_error",
        "InvalidSecretProvider",
        "spec.vault.address is not a URL",
      );
    }
    if (url.protocol !== "https:" && url.protocol !== "http:")
      throw new ConnectorError(
        "validation_error",
        "InvalidSecretProvider",
        "spec.vault.address must be http(s)",
      );
    this.address = url.origin;
    const { rp, agent } = makeTransport({ ...opts, address: url.origin });
    this.#agent = agent;
    this.#vault = nodeVault({
      endpoint: url.origin,
      apiVersion: "v1",
      // node-vault's debug prints request bodies (login JWTs, SecretIDs) and responses.
      debug: noop,
      "request-promise": rp,
      rpDefaults: { strictSSL: true },
      noCustomHTTPVerbs: true,
    } as unknown as nodeVault.VaultOptions) as unknown as NodeVaultClient;
    // Never the environment's VAULT_TOKEN / VAULT_NAMESPACE / VAULT_PREFIX.
    this.#vault.token = undefined;
    this.#vault.namespace = opts.namespace || undefined;
    this.#vault.pathPrefix = "";
  }

  get hasToken(): boolean {
    return typeof this.#vault.token === "string" && this.#vault.token.length > 0;
  }

  /** Sets (or clears) the token used for the next requests. */
  setToken(token: string | undefined): void {
    if (token) this.#sensitive.add(token);
    this.#vault.token = token || undefined;
  }

  async loginKubernetes(
    mountPath: string,
    role: string,
    jwt: string,
    signal?: AbortSignal,
  ): Promise<VaultLogin> {
    this.#sensitive.add(jwt);
    const body = await this.#call("login", `kubernetes auth at auth/${mountPath} with role ${role}`, () =>
      this.#vault.kubernetesLogin({ mount_point: mountPath, role, jwt, requestOptions: this.#ro(signal) }),
    );
    return this.#adopt(body, "login");
  }

  async loginAppRole(
    mountPath: string,
    roleId: string,
    secretId: string,
    signal?: AbortSignal,
  ): Promise<VaultLogin> {
    this.#sensitive.add(secretId);
    const body = await this.#call("login", `AppRole auth at auth/${mountPath}`, () =>
      this.#vault.approleLogin({
        mount_point: mountPath,
        role_id: roleId,
        secret_id: secretId,
        requestOptions: this.#ro(signal),
      }),
    );
    return this.#adopt(body, "login");
  }

  /** The current token's remaining TTL and renewability (auth/token/lookup-self). */
  async lookupSelf(signal?: AbortSignal): Promise<{ ttlSeconds: number; renewable: boolean }> {
    const body = (await this.#call("lookup", "token lookup", () =>
      this.#vault.tokenLookupSelf({ requestOptions: this.#ro(signal) }),
    )) as { data?: { ttl?: number; renewable?: boolean } };
    return { ttlSeconds: Number(body?.data?.ttl ?? 0), renewable: body?.data?.renewable === true };
  }

  async renewSelf(signal?: AbortSignal): Promise<VaultLogin> {
    const body = await this.#call("renew", "token renewal", () =>
      this.#vault.tokenRenewSelf({ requestOptions: this.#ro(signal) }),
    );
    return this.#adopt(body, "renew");
  }

  /** Revokes the current token and forgets it. Never throws when there is no token. */
  async revokeSelf(): Promise<void> {
    if (!this.hasToken) return;
    try {
      await this.#call("revoke", "token revocation", () => this.#vault.tokenRevokeSelf());
    } finally {
      this.#vault.token = undefined;
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
    const encoded = path
      .split("/")
      .map((s) => encodeURIComponent(s))
      .join("/");
    if (kvVersion === 1) {
      if (pinnedVersion !== undefined)
        throw new ConnectorError(
          "validation_error",
          "InvalidSecretRef",
          "spec.credentials.secretRef.version: a pinned version needs a KV version 2 engine; this provider's is version 1",
        );
      const body = (await this.#call("read", `read of ${mount}/${path}`, () =>
        this.#vault.read(`${mount}/${encoded}`, this.#ro(signal)),
      )) as { data?: Record<string, unknown> };
      return { data: body?.data ?? {}, version: null };
    }
    const query = pinnedVersion !== undefined ? `?version=${Math.trunc(pinnedVersion)}` : "";
    const body = (await this.#call("read", `read of ${mount}/data/${path}`, () =>
      this.#vault.read(`${mount}/data/${encoded}${query}`, this.#ro(signal)),
    )) as {
      data?: {
        data?: Record<string, unknown> | null;
        metadata?: { version?: number; deletion_time?: string; destroyed?: boolean } | null;
      };
    };
    const meta = body?.data?.metadata ?? undefined;
    if (meta && (meta.destroyed === true || (meta.deletion_time ?? "") !== "") && !body?.data?.data)
      throw deletedError(`${mount}/data/${path}`, meta.version);
    return { data: body?.data?.data ?? {}, version: typeof meta?.version === "number" ? meta.version : null };
  }

  /** sys/health without treating sealed/standby as errors. */
  async health(signal?: AbortSignal): Promise<VaultHealth> {
    const body = (await this.#call("health", "health check", () =>
      this.#vault.health({
        standbyok: true,
        sealedcode: 200,
        uninitcode: 200,
        requestOptions: this.#ro(signal),
      }),
    )) as {
      initialized?: boolean;
      sealed?: boolean;
      standby?: boolean;
      version?: string;
      errors?: unknown[];
    };
    if (body === undefined || typeof body !== "object" || body.errors)
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

  /** Drops pooled connections. Call revokeSelf first if the token should die too. */
  close(): void {
    this.#closed = true;
    this.#vault.token = undefined;
    this.#agent.destroy();
  }

  get closed(): boolean {
    return this.#closed;
  }

  #ro(signal: AbortSignal | undefined): object {
    return signal ? { signal } : {};
  }

  #adopt(body: unknown, op: VaultOperation): VaultLogin {
    const auth = (body as { auth?: Record<string, unknown> } | undefined)?.auth;
    const token = typeof auth?.client_token === "string" ? auth.client_token : undefined;
    if (!token)
      throw new ConnectorError("transient", "VaultUnavailable", `Vault ${op} returned no token`, {
        providerStatusCode: 200,
      });
    this.setToken(token);
    return {
      token,
      accessor: typeof auth?.accessor === "string" ? auth.accessor : undefined,
      ttlSeconds: Number(auth?.lease_duration ?? 0),
      renewable: auth?.renewable === true,
    };
  }

  async #call(op: VaultOperation, what: string, fn: () => Promise<unknown>): Promise<unknown> {
    if (this.#closed)
      throw new ConnectorError("transient", "VaultUnavailable", `Vault ${what}: client closed`);
    try {
      return await fn();
    } catch (err) {
      throw wrapVaultError(err, op, what, [
        ...this.#sensitive,
        ...(this.hasToken ? [this.#vault.token ?? ""] : []),
      ]);
    }
  }
}

function deletedError(path: string, version: number | undefined): ConnectorError {
  return new ConnectorError(
    "permanent",
    "SecretDeleted",
    `the secret at ${path}${version ? ` (version ${version})` : ""} was deleted or destroyed`,
    { providerStatusCode: 404 },
  );
}

/** Removes every sensitive string from `text`, and anything that looks like a Vault token. */
export function scrub(text: string, sensitive: Iterable<string> = []): string {
  let out = text;
  for (const s of sensitive) if (s && s.length >= 4) out = out.split(s).join("[REDACTED]");
  return out
    .replace(/\b(hv[sbr]|s)\.[A-Za-z0-9_-]{20,}/g, "[REDACTED]")
    .replace(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*/g, "[REDACTED]");
}

/**
 * Any error from node-vault or our transport => a ConnectorError with the status code and
 * the first Vault error message only. Nothing of the original (request config, headers,
 * body) is kept, not even as `cause`.
 */
export function wrapVaultError(
  err: unknown,
  op: VaultOperation,
  what: string,
  sensitive: Iterable<string> = [],
): ConnectorError {
  if (err instanceof ConnectorError) return err;
  const e = err as {
    message?: unknown;
    code?: unknown;
    network?: boolean;
    response?: { statusCode?: number; body?: unknown };
  };
  const clean = (s: string): string => scrub(s, sensitive).slice(0, 300);

  const status = typeof e?.response?.statusCode === "number" ? e.response.statusCode : undefined;
  if (status === undefined) {
    const code = typeof e?.code === "string" ? e.code : undefined;
    if (code === "ABORT_ERR") return new ConnectorError("transient", "Aborted", `Vault ${what} was aborted`);
    if (e?.network || code) {
      return new ConnectorError(
        "transient",
        "VaultUnavailable",
        clean(
          `Vault ${what} failed: ${code ?? ""} ${typeof e?.message === "string" ? e.message : ""}`.trim(),
        ),
      );
    }
    // tv4 validation of node-vault's arguments, or a bug.
    return new ConnectorError(
      "permanent",
      "VaultClientError",
      clean(`Vault ${what}: ${typeof e?.message === "string" ? e.message : "invalid request"}`),
    );
  }

  const body = (e.response?.body ?? undefined) as VaultErrorBody | undefined;
  const first = Array.isArray(body?.errors) && body.errors.length > 0 ? String(body.errors[0]) : "";
  const msg = clean(`Vault ${what}: ${status}${first ? ` ${first}` : ""}`);
  const extra = { providerStatusCode: status };
  switch (status) {
    case 400:
      return new ConnectorError("validation_error", "InvalidSecretRef", msg, extra);
    case 401:
    case 403:
      return new ConnectorError("policy_denied", "PermissionDenied", msg, extra);
    case 404: {
      if (op !== "read") return new ConnectorError("permanent", "VaultNotFound", msg, extra);
      const meta = body?.data?.metadata ?? undefined;
      if (meta && (meta.destroyed === true || (meta.deletion_time ?? "") !== ""))
        return new ConnectorError(
          "permanent",
          "SecretDeleted",
          clean(
            `Vault ${what}: 404 the secret${meta.version ? ` version ${meta.version}` : ""} was ${meta.destroyed ? "destroyed" : "deleted"}`,
          ),
          extra,
        );
      return new ConnectorError(
        "permanent",
        "SecretNotFound",
        clean(`Vault ${what}: 404 secret not found`),
        extra,
      );
    }
    case 429: {
      const retryAfterMs = body && typeof body === "object" ? retryAfterByBody.get(body) : undefined;
      return new ConnectorError("quota_exceeded", "QuotaExceeded", msg, {
        ...extra,
        retryAfterMs: retryAfterMs ?? 1_000,
      });
    }
    case 500:
    case 502:
    case 503:
    case 504:
      return new ConnectorError(
        "transient",
        "VaultUnavailable",
        status === 503 && /sealed/i.test(first) ? clean(`Vault ${what}: 503 Vault is sealed`) : msg,
        extra,
      );
    case 412:
      return new ConnectorError("transient", "VaultUnavailable", msg, extra);
    default:
      return new ConnectorError("permanent", "VaultError", msg, extra);
  }
}
