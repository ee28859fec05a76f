// A `file` SecretProvider's directory for tests: secrets written as
// <directory>/<namespace>/<name>.json, and the SecretProvider object that points at it.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { SecretProvider } from "../../controller/src/api/types.ts";

export interface FileSecrets {
  directory: string;
  write(namespace: string, name: string, values: Record<string, string>): void;
  /** A SecretProvider reading this directory (`spec` adds to or overrides its spec). */
  provider(name: string, spec?: Partial<SecretProvider["spec"]>): SecretProvider;
}

export function fileSecrets(directory: string): FileSecrets {
  return {
    directory,
    write(namespace, name, values) {
      mkdirSync(join(directory, namespace), { recursive: true });
      writeFileSync(join(directory, namespace, `${name}.json`), JSON.stringify(values));
    },
    provider: (name, spec = {}) => ({
      apiVersion: "cynodeai.io/v1alpha1",
      kind: "SecretProvider",
      metadata: { name },
      spec: { file: { directory }, ...spec },
    }),
  };
}
