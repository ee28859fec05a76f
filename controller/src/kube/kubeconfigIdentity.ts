// Who the kubeconfig's current context is, for connectorctl's calls to the gateway: the
// gateway authenticates callers with TokenReview, so the bearer token kubectl would send
// (a token, a token file, an exec plugin's or an auth provider's, in-cluster the pod's
// ServiceAccount token) is one the gateway accepts. A client certificate gives no token.
import { KubeConfig } from "@kubernetes/client-node";

export interface KubeconfigIdentity {
  /** The current user's bearer token, or undefined when it authenticates otherwise. */
  token: string | undefined;
  /** The current context's namespace, else "default" (as kubectl). */
  namespace: string;
}

export interface KubeconfigIdentityOptions {
  /** A kubeconfig file; default KUBECONFIG, ~/.kube/config, then in-cluster. */
  kubeconfig?: string;
  context?: string;
}

export async function kubeconfigIdentity(opts: KubeconfigIdentityOptions = {}): Promise<KubeconfigIdentity> {
  const kc = new KubeConfig();
  const where = opts.kubeconfig ?? process.env.KUBECONFIG ?? "~/.kube/config";
  try {
    if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
    else kc.loadFromDefault();
  } catch {
    // Not the parser's message: it quotes the lines around the fault, which may hold a token.
    throw new Error(`the kubeconfig (${where}) cannot be read`);
  }
  if (opts.context) {
    if (!kc.getContextObject(opts.context))
      throw new Error(`--context: the kubeconfig has no context "${opts.context}"`);
    kc.setCurrentContext(opts.context);
  }
  const namespace = kc.getContextObject(kc.getCurrentContext())?.namespace || "default";
  const request: { headers?: Record<string, string> } = {};
  try {
    await kc.applyToHTTPSOptions(request as never);
  } catch {
    // Not the plugin's message either: an exec plugin's output is not ours to print.
    throw new Error(
      `the kubeconfig's user (${where}, context ${kc.getCurrentContext()}) gives no credentials (kubectl auth whoami shows why)`,
    );
  }
  const bearer = /^Bearer\s+(\S+)$/i.exec(request.headers?.Authorization ?? "")?.[1];
  return { token: bearer, namespace };
}
