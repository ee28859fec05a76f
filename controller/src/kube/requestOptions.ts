// Per-request options for client-node calls: extra headers (a JSON merge patch's content
// type, Impersonate-User) and the caller's AbortSignal (client-node takes both as a request
// middleware, applied after the kubeconfig's own authentication).
import { PatchStrategy, setHeaderMiddleware, type ConfigurationOptions } from "@kubernetes/client-node";

/** Sets the headers (at least one) and the signal on the request. */
export function requestOptions(
  headers: [string, string][] & { 0: [string, string] },
  signal?: AbortSignal,
): ConfigurationOptions {
  const [[key, value], ...more] = headers;
  const header = setHeaderMiddleware(key, value);
  return {
    middleware: [
      {
        pre: (request) => {
          if (signal) request.setSignal(signal);
          for (const [k, v] of more) request.setHeaderParam(k, v);
          return header.pre(request);
        },
        post: (response) => header.post(response),
      },
    ],
    middlewareMergeStrategy: "append",
  };
}

export function mergePatchOptions(signal?: AbortSignal): ConfigurationOptions {
  return requestOptions([["Content-Type", PatchStrategy.MergePatch]], signal);
}
