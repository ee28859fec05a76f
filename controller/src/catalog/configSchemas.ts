// Config schemas compiled once per (type, version, resourceVersion): a reconcile never
// compiles, and an edited ConnectorType replaces its compiled schemas.
import type { ValidateFunction } from "ajv";
import { createAjv } from "../api/ajv.ts";
import type { ConnectorType, TypeVersion } from "../api/types.ts";

interface Entry {
  resourceVersion: string;
  byVersion: Map<number, ValidateFunction | Error>;
}

export class ConfigSchemaCache {
  #ajv = createAjv({ useDefaults: true });
  #types = new Map<string, Entry>();
  compiles = 0;

  /** The compiled config schema, or the Error that compiling it raised. */
  get(type: ConnectorType, version: TypeVersion): ValidateFunction | Error {
    const rv = type.metadata.resourceVersion ?? "";
    let entry = this.#types.get(type.metadata.name);
    if (!entry || entry.resourceVersion !== rv) {
      entry = { resourceVersion: rv, byVersion: new Map() };
      this.#types.set(type.metadata.name, entry);
    }
    let fn = entry.byVersion.get(version.version);
    if (!fn) {
      this.compiles++;
      try {
        // A fresh $id-free copy: ajv refuses to compile the same $id twice.
        const { $id: _id, ...schema } = version.configSchema;
        fn = this.#ajv.compile(schema);
      } catch (err) {
        fn = err instanceof Error ? err : new Error(String(err));
      }
      entry.byVersion.set(version.version, fn);
    }
    return fn;
  }

  forget(typeName: string): void {
    this.#types.delete(typeName);
  }
}
