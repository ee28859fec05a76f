// The Kubernetes client configuration: a kubeconfig file when given, else in-cluster, else
// ~/.kube/config; one connection pool per TLS identity (kube/connections.ts).
import { KubeConfig } from "@kubernetes/client-node";
import { reuseConnections } from "./connections.ts";

export function connectKube(kubeconfigPath: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
  else kc.loadFromDefault();
  return reuseConnections(kc);
}

export function apiServerOf(kc: KubeConfig): string | undefined {
  return kc.getCurrentCluster()?.server;
}
