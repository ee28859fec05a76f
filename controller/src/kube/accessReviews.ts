// TokenReview and SubjectAccessReview: who a bearer token belongs to, and whether that user
// may do something. The secure /metrics server (observability/secureMetrics.ts) asks both,
// as controller-runtime's WithAuthenticationAndAuthorization filter does. The controller's
// ServiceAccount needs create on tokenreviews and subjectaccessreviews (the chart grants it
// only with metrics.secure.enabled). Errors keep the status code and the API's message
// only: a TokenReview carries the token, and client-node's errors carry whole bodies.
import {
  AuthenticationV1Api,
  AuthorizationV1Api,
  type KubeConfig,
  type V1SubjectAccessReviewSpec,
} from "@kubernetes/client-node";
import { GROUP } from "../api/types.ts";
import { kubeError } from "./apiErrors.ts";

export interface ReviewedUser {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export interface TokenReviewResult {
  authenticated: boolean;
  user?: ReviewedUser;
}

export interface AccessDecision {
  allowed: boolean;
  reason?: string;
}

export interface KubeAccessReviews {
  /** TokenReview (audiences: the API server's own when empty). */
  authenticate(token: string, audiences?: string[]): Promise<TokenReviewResult>;
  /** SubjectAccessReview for a non-resource URL, e.g. get /metrics. */
  authorizeNonResource(user: ReviewedUser, verb: string, path: string): Promise<AccessDecision>;
  /** SubjectAccessReview for a resource of ours (API group cynodeai.io), e.g. invoke connectors/web. */
  authorizeResource(user: ReviewedUser, attributes: ResourceAttributes): Promise<AccessDecision>;
}

export interface ResourceAttributes {
  verb: string;
  /** "" for a cluster-scoped resource. */
  namespace: string;
  resource: string;
  name?: string;
  subresource?: string;
}

export function kubeAccessReviews(kc: KubeConfig): KubeAccessReviews {
  const authn = kc.makeApiClient(AuthenticationV1Api);
  const authz = kc.makeApiClient(AuthorizationV1Api);
  return {
    async authenticate(token, audiences) {
      try {
        const r = await authn.createTokenReview({
          body: {
            apiVersion: "authentication.k8s.io/v1",
            kind: "TokenReview",
            spec: { token, ...(audiences?.length ? { audiences } : {}) },
          },
        });
        const s = r.status;
        if (!s?.authenticated || !s.user?.username) return { authenticated: false };
        return {
          authenticated: true,
          user: {
            username: s.user.username,
            ...(s.user.uid ? { uid: s.user.uid } : {}),
            ...(s.user.groups ? { groups: s.user.groups } : {}),
            ...(s.user.extra ? { extra: s.user.extra } : {}),
          },
        };
      } catch (err) {
        throw kubeError(err, "TokenReview");
      }
    },
    authorizeNonResource: (user, verb, path) =>
      review(user, { nonResourceAttributes: { verb, path } }, `SubjectAccessReview (${verb} ${path})`),
    authorizeResource: (user, a) =>
      review(
        user,
        {
          resourceAttributes: {
            group: GROUP,
            resource: a.resource,
            verb: a.verb,
            namespace: a.namespace,
            ...(a.name ? { name: a.name } : {}),
            ...(a.subresource ? { subresource: a.subresource } : {}),
          },
        },
        `SubjectAccessReview (${a.verb} ${a.resource})`,
      ),
  };

  async function review(
    user: ReviewedUser,
    attributes: Pick<V1SubjectAccessReviewSpec, "nonResourceAttributes" | "resourceAttributes">,
    what: string,
  ): Promise<AccessDecision> {
    try {
      const r = await authz.createSubjectAccessReview({
        body: {
          apiVersion: "authorization.k8s.io/v1",
          kind: "SubjectAccessReview",
          spec: {
            user: user.username,
            ...(user.uid ? { uid: user.uid } : {}),
            ...(user.groups ? { groups: user.groups } : {}),
            ...(user.extra ? { extra: user.extra } : {}),
            ...attributes,
          },
        },
      });
      return {
        allowed: r.status?.allowed === true && r.status.denied !== true,
        ...(r.status?.reason ? { reason: r.status.reason } : {}),
      };
    } catch (err) {
      throw kubeError(err, what);
    }
  }
}
