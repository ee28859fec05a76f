// `connectorctl validate`: the checks the API server and the controller would make, offline,
// so a GitOps pull request can be refused before it merges.
import { configProblems } from "../drivers/run.ts";
import { relative } from "node:path";
import { crdValidators } from "../api/crdSchema.ts";
import { quote, type Problem } from "../api/problems.ts";
import type { Connector, ConnectorType, PolicyTemplate } from "../api/types.ts";
import { ConfigSchemaCache } from "../catalog/configSchemas.ts";
import { loadFileCatalog } from "../catalog/fileCatalog.ts";
import { ConnectorError } from "../api/errors.ts";
import { validateConnector } from "../reconcile/validate.ts";
import { readDocuments } from "./documents.ts";

export interface FileProblem extends Problem {
  file: string;
  /** 1-based document number within the file; 0 when the file itself could not be read. */
  document: number;
  kind?: string;
  name?: string;
}

/** A document of ours that was checked (problems or not): a test case of the JUnit report. */
export interface CheckedDocument {
  file: string;
  document: number;
  kind?: string;
  name?: string;
}

export interface ValidationReport {
  ok: boolean;
  /** Accepted, with a caution (a deprecated type version). */
  warnings: FileProblem[];
  files: number;
  documents: number;
  problems: FileProblem[];
  /** Every document of group cynodeai.io that was checked, in order. */
  checked: CheckedDocument[];
}

export interface ValidateOptions {
  catalogPaths: string[];
  enabledFeatures?: ReadonlySet<string>;
  /** Standard input's text, when `-` is among the paths. */
  stdin?: string;
}

const OUR_GROUP = /^cynodeai\.io\//;

function describeName(doc: Record<string, unknown>): string | undefined {
  const meta = doc.metadata as { name?: unknown; namespace?: unknown } | undefined;
  if (!meta || typeof meta.name !== "string") return undefined;
  return typeof meta.namespace === "string" ? `${meta.namespace}/${meta.name}` : meta.name;
}

export function validateFiles(paths: string[], opts: ValidateOptions): ValidationReport {
  const validators = crdValidators();
  const problems: FileProblem[] = [];
  const warnings: FileProblem[] = [];
  const checked: CheckedDocument[] = [];
  const read = readDocuments(paths, opts.stdin);
  const { files, docs: parsed } = read;
  for (const { file, message } of read.unreadable)
    problems.push({ file, document: 0, path: "(yaml)", message });

  // Types and templates among the inputs take precedence over the catalog directory's.
  const catalog = loadFileCatalog(opts.catalogPaths.filter(Boolean));
  for (const { doc } of parsed) {
    const d = doc as { kind?: string; metadata?: { name?: string } };
    if (d?.kind === "ConnectorType" && d.metadata?.name)
      catalog.types.set(d.metadata.name, doc as ConnectorType);
    if (d?.kind === "ConnectorPolicyTemplate" && d.metadata?.name)
      catalog.templates.set(d.metadata.name, doc as PolicyTemplate);
  }
  const schemas = new ConfigSchemaCache();
  const ctx = {
    catalog,
    schemas,
    enabledFeatures: opts.enabledFeatures ?? new Set<string>(),
    configProblems,
  };

  for (const { file, index, doc } of parsed) {
    const at = { file, document: index };
    if (!doc || typeof doc !== "object" || Array.isArray(doc)) {
      problems.push({ ...at, path: "(document)", message: "must be a mapping with apiVersion and kind" });
      checked.push(at);
      continue;
    }
    const d = doc as Record<string, unknown>;
    const kind = typeof d.kind === "string" ? d.kind : undefined;
    const where = {
      ...at,
      ...(kind ? { kind } : {}),
      ...(describeName(d) ? { name: describeName(d)! } : {}),
    };
    if (typeof d.apiVersion !== "string" || !OUR_GROUP.test(d.apiVersion)) continue; // not ours: other tools check it
    checked.push(where);
    const validator = kind ? validators.get(kind) : undefined;
    if (!validator) {
      problems.push({
        ...where,
        path: "kind",
        message: `unknown kind ${quote(kind)} in group cynodeai.io`,
      });
      continue;
    }
    const schemaProblems = validator.validate(d);
    problems.push(...schemaProblems.map((p) => ({ ...where, ...p })));
    if (schemaProblems.length) continue;
    if (kind === "Connector") {
      try {
        const valid = validateConnector(d as unknown as Connector, ctx);
        warnings.push(
          ...valid.warnings.map((w) => ({ ...where, path: "spec.typeVersion", message: w.message })),
        );
      } catch (err) {
        if (!(err instanceof ConnectorError)) throw err;
        const ps = err.problems.length ? err.problems : [{ path: "spec", message: err.message }];
        problems.push(...ps.map((p) => ({ ...where, ...p })));
      }
    } else if (kind === "ConnectorType") {
      const type = d as unknown as ConnectorType;
      type.spec.versions.forEach((v, i) => {
        const compiled = schemas.get(type, v);
        if (compiled instanceof Error)
          problems.push({
            ...where,
            path: `spec.versions[${i}].configSchema`,
            message: `is not a valid JSON Schema: ${compiled.message}`,
          });
      });
    }
  }
  return {
    ok: problems.length === 0,
    warnings,
    files: files.length,
    documents: parsed.length,
    problems,
    checked,
  };
}

export function formatProblem(p: FileProblem, cwd = process.cwd()): string {
  const file = relative(cwd, p.file) || p.file;
  const doc = p.document ? `#${p.document}` : "";
  const subject = p.kind ? ` ${p.kind}${p.name ? ` ${p.name}` : ""}` : "";
  return `${file}${doc}${subject}: ${p.path}: ${p.message}`;
}
