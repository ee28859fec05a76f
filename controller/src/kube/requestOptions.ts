// Per-request options for client-node calls: a JSON merge patch's content type and the
// caller's AbortSignal (client-node takes both as a request middleware).
import { PatchStrategy, setHeaderMiddleware, type ConfigurationOptions } from "@kubernetes/client-node";

export function mergePatchOptions(signal?: AbortSignal): ConfigurationOptions {
  const header = setHeaderMiddleware("Content-Type", PatchStrategy.MergePatch);
  return {
    middleware: [
      {
        pre: (request) => {
          if (signal) request.setSignal(signal);
          return header.pre(request);
        },
        post: (response) => header.post(response),
      },
    ],
    middlewareMergeStrategy: "append",
  };
}
