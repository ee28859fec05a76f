// Authentication and authorization by the API server, for the gateway: TokenReview says
// who a bearer token belongs to, SubjectAccessReview whether they may use a verb on a
// resource. Both answers are cached briefly (keyed by a hash of the token, never the token),
// so a busy caller costs the API server one review per TTL, not one per call.
import { createHash } from "node:crypto";
import { AuthenticationV1Api, AuthorizationV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { Principal } from "../api/invocation.ts";
import { kubeError } from "./apiErrors.ts";

/** A small TTL cache with a size bound (oldest entries go first). */
class TtlCache<V> {
  readonly #entries = new Map<string, { value: V; until: number }>();
  readonly #ttlMs: number;
  readonly #max: number;
  constructor(ttlMs: number, max: number) {
    this.#ttlMs = ttlMs;
    this.#max = max;
  }
  get(key: string, now = Date.now()): V | undefined {
    const e = this.#entries.get(key);
    if (!e) return undefined;
    if (e.until > now) return e.value;
    this.#entries.delete(key);
    return undefined;
  }
  set(key: string, value: V, ttlMs = this.#ttlMs): void {
    if (this.#entries.size >= this.#max) this.#entries.delete(this.#entries.keys().next().value as string);
    this.#entries.set(key, { value, until: Date.now() + ttlMs });
  }
}

export interface ReviewOptions {
  /** How long an answer is reused (default 10 s; refusals 2 s, so a fix takes effect soon). */
  ttlMs?: number;
  /** Audiences the tokens must be for (TokenReview spec.audiences); default: the API server's. */
  audiences?: string[];
}

export class KubeTokenReviewer {
  readonly #api: AuthenticationV1Api;
  readonly #cache: TtlCache<Principal | null>;
  readonly #audiences: string[] | undefined;
  reviews = 0;

  constructor(kc: KubeConfig, opts: ReviewOptions = {}) {
    this.#api = kc.makeApiClient(AuthenticationV1Api);
    this.#cache = new TtlCache(opts.ttlMs ?? 10_000, 10_000);
    this.#audiences = opts.audiences;
  }

  async authenticate(token: string): Promise<Principal | undefined> {
    const key = createHash("sha256").update(token).digest("base64url");
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached ?? undefined;
    this.reviews++;
    const review = await this.#api
      .createTokenReview({
        body: {
          apiVersion: "authentication.k8s.io/v1",
          kind: "TokenReview",
          spec: { token, ...(this.#audiences ? { audiences: this.#audiences } : {}) },
        },
      })
      .catch((err: unknown) => {
        throw kubeError(err, "TokenReview failed");
      });
    const s = review.status;
    const principal: Principal | null =
      s?.authenticated && s.user?.username
        ? {
            user: s.user.username,
            groups: s.user.groups ?? [],
            ...(s.user.uid ? { uid: s.user.uid } : {}),
            ...(s.user.extra ? { extra: s.user.extra } : {}),
          }
        : null;
    this.#cache.set(key, principal, principal ? undefined : 2_000);
    return principal ?? undefined;
  }
}

export class KubeAccessReviewer {
  readonly #api: AuthorizationV1Api;
  readonly #cache: TtlCache<{ allowed: boolean; reason?: string }>;
  reviews = 0;

  constructor(kc: KubeConfig, opts: ReviewOptions = {}) {
    this.#api = kc.makeApiClient(AuthorizationV1Api);
    this.#cache = new TtlCache(opts.ttlMs ?? 10_000, 50_000);
  }

  async allowed(
    p: Principal,
    a: { verb: string; namespace: string; resource: string; name?: string; subresource?: string },
  ): Promise<{ allowed: boolean; reason?: string }> {
    const key = JSON.stringify([
      p.user,
      p.uid,
      p.groups,
      p.extra ?? null,
      a.verb,
      a.namespace,
      a.resource,
      a.name ?? "",
      a.subresource ?? "",
    ]);
    const cached = this.#cache.get(key);
    if (cached) return cached;
    this.reviews++;
    const review = await this.#api
      .createSubjectAccessReview({
        body: {
          apiVersion: "authorization.k8s.io/v1",
          kind: "SubjectAccessReview",
          spec: {
            user: p.user,
            groups: p.groups,
            ...(p.uid ? { uid: p.uid } : {}),
            ...(p.extra ? { extra: p.extra } : {}),
            resourceAttributes: {
              group: "cynodeai.io",
              resource: a.resource,
              verb: a.verb,
              namespace: a.namespace,
              ...(a.name ? { name: a.name } : {}),
              ...(a.subresource ? { subresource: a.subresource } : {}),
            },
          },
        },
      })
      .catch((err: unknown) => {
        throw kubeError(err, "SubjectAccessReview failed");
      });
    const answer = {
      allowed: review.status?.allowed === true && review.status?.denied !== true,
      ...(review.status?.reason ? { reason: review.status.reason } : {}),
    };
    this.#cache.set(key, answer, answer.allowed ? undefined : 2_000);
    return answer;
  }
}
