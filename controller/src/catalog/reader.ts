import type { ConnectorType, PolicyTemplate, TypeVersion } from "../api/types.ts";

/** Read-only view of the catalog: ConnectorTypes and policy templates (the informer cache, or files). */
export interface CatalogReader {
  getType(name: string): ConnectorType | undefined;
  getPolicyTemplate(name: string): PolicyTemplate | undefined;
}

export function typeVersionOf(type: ConnectorType, version: number): TypeVersion | undefined {
  return type.spec.versions.find((v) => v.version === version);
}
