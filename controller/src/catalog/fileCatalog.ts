// A catalog read from YAML files (the built-in types in examples/types, or --catalog DIR):
// what `connectorctl validate` checks against offline.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import * as yaml from "js-yaml";
import type { ConnectorType, PolicyTemplate } from "../api/types.ts";
import type { CatalogReader } from "./reader.ts";

export interface LoadedDocument {
  file: string;
  /** 1-based position of the document in a multi-document file. */
  index: number;
  doc: unknown;
}

/** The YAML files among the given files and directories (recursively), in a stable order. */
export function listYamlFiles(paths: string[]): string[] {
  const out: string[] = [];
  const visit = (path: string, explicit: boolean) => {
    if (statSync(path).isDirectory()) {
      for (const entry of readdirSync(path).sort()) visit(join(path, entry), false);
    } else if (explicit || /\.ya?ml$/.test(path)) {
      out.push(path);
    }
  };
  for (const p of paths) visit(p, true);
  return out;
}

/** The non-empty documents of one YAML file; throws js-yaml's error (with line) on bad YAML. */
export function parseYamlFile(file: string): LoadedDocument[] {
  return yaml
    .loadAll(readFileSync(file, "utf8"))
    .map((doc, i) => ({ file, index: i + 1, doc }))
    .filter((d) => d.doc !== null && d.doc !== undefined);
}

export function loadYamlDocuments(paths: string[]): LoadedDocument[] {
  return listYamlFiles(paths).flatMap(parseYamlFile);
}

export class StaticCatalog implements CatalogReader {
  readonly types = new Map<string, ConnectorType>();
  readonly templates = new Map<string, PolicyTemplate>();

  constructor(types: ConnectorType[] = [], templates: PolicyTemplate[] = []) {
    for (const t of types) this.types.set(t.metadata.name, t);
    for (const t of templates) this.templates.set(t.metadata.name, t);
  }

  getType(name: string): ConnectorType | undefined {
    return this.types.get(name);
  }

  getPolicyTemplate(name: string): PolicyTemplate | undefined {
    return this.templates.get(name);
  }
}

function kindOf(doc: unknown): string | undefined {
  return doc && typeof doc === "object"
    ? ((doc as { kind?: unknown }).kind as string | undefined)
    : undefined;
}

/** ConnectorTypes and ConnectorPolicyTemplates found in the given files or directories. */
export function loadFileCatalog(paths: string[]): StaticCatalog {
  const docs = loadYamlDocuments(paths).map((d) => d.doc);
  return new StaticCatalog(
    docs.filter((d) => kindOf(d) === "ConnectorType") as ConnectorType[],
    docs.filter((d) => kindOf(d) === "ConnectorPolicyTemplate") as PolicyTemplate[],
  );
}
