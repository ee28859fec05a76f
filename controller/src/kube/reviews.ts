// The gateway's Authenticator and Authorizer (gateway/ports.ts) over the API server's
// TokenReview and SubjectAccessReview (kube/accessReviews.ts), with their answers cached
// briefly — keyed by a hash of the token, never the token — so a busy caller costs the API
// server one review per TTL, not one per call. Refusals are kept for less time, so that a
// fixed RoleBinding takes effect soon.
import { createHash } from "node:crypto";
import type { Principal } from "../api/invocation.ts";
import { TtlCache } from "../api/ttlCache.ts";
import type { AccessDecision, KubeAccessReviews, ResourceAttributes } from "./accessReviews.ts";

const REFUSAL_TTL_MS = 2_000;

export class CachedReviews {
  readonly #reviews: KubeAccessReviews;
  readonly #principals: TtlCache<Principal | null>;
  readonly #decisions: TtlCache<AccessDecision>;
  readonly #audiences: string[] | undefined;
  readonly #ttlMs: number;
  tokenReviews = 0;
  accessReviews = 0;

  constructor(reviews: KubeAccessReviews, opts: { ttlMs?: number; audiences?: string[] } = {}) {
    this.#reviews = reviews;
    this.#ttlMs = opts.ttlMs ?? 10_000;
    this.#principals = new TtlCache(10_000);
    this.#decisions = new TtlCache(50_000);
    this.#audiences = opts.audiences;
  }

  async authenticate(token: string): Promise<Principal | undefined> {
    const key = createHash("sha256").update(token).digest("base64url");
    const cached = this.#principals.get(key);
    if (cached !== undefined) return cached ?? undefined;
    this.tokenReviews++;
    const r = await this.#reviews.authenticate(token, this.#audiences);
    const principal: Principal | null =
      r.authenticated && r.user
        ? {
            user: r.user.username,
            groups: r.user.groups ?? [],
            ...(r.user.uid ? { uid: r.user.uid } : {}),
            ...(r.user.extra ? { extra: r.user.extra } : {}),
          }
        : null;
    this.#principals.set(key, principal, principal ? this.#ttlMs : REFUSAL_TTL_MS);
    return principal ?? undefined;
  }

  async allowed(p: Principal, a: ResourceAttributes): Promise<AccessDecision> {
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
    const cached = this.#decisions.get(key);
    if (cached) return cached;
    this.accessReviews++;
    const answer = await this.#reviews.authorizeResource(
      {
        username: p.user,
        groups: p.groups,
        ...(p.uid ? { uid: p.uid } : {}),
        ...(p.extra ? { extra: p.extra } : {}),
      },
      a,
    );
    this.#decisions.set(key, answer, answer.allowed ? this.#ttlMs : REFUSAL_TTL_MS);
    return answer;
  }
}
