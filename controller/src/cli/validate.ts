// `connectorctl validate`: the checks the API server and the controller would make, offline,
// so a GitOps pull request can be refused before it merges.
import { relative } from "node:path";
import { crdValidators } from "../api/crdSchema.ts";
import { quote, type Problem } from "../api/problems.ts";
import type { Connector, ConnectorType, PolicyTemplate } from "../api/types.ts";
import { ConfigSchemaCache } from "../catalog/configSchemas.ts";
import { listYamlFiles, loadFileCatalog, parseYamlFile } from "../catalog/fileCatalog.ts";
import { ConnectorError } from "../api/errors.ts";
import { validateConnector } from "../reconcile/validate.ts";

export interface FileProblem extends Problem {
  file: string;
  /** 1-based document number within the file; 0 when the file itself could not be read. */
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
}

export interface ValidateOptions {
  catalogPaths: string[];
  enabledFeatures?: ReadonlySet<string>;
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
  const parsed: { file: string; index: number; doc: unknown }[] = [];
  const files = listYamlFiles(paths);
  for (const file of files) {
    try {
      parsed.push(...parseYamlFile(file));
    } catch (err) {
      const e = err as { reason?: string; mark?: { line: number; column: number }; message: string };
      const message = e.mark
        ? `line ${e.mark.line + 1}, column ${e.mark.column + 1}: ${e.reason ?? e.message}`
        : (e.message.split("\n")[0] ?? "");
      problems.push({ file, document: 0, path: "(yaml)", message });
    }
  }

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
  const ctx = { catalog, schemas, enabledFeatures: opts.enabledFeatures ?? new Set<string>() };

  for (const { file, index, doc } of parsed) {
    const at = { file, document: index };
    if (!doc || typeof doc !== "object" || Array.isArray(doc)) {
      problems.push({ ...at, path: "(document)", message: "must be a mapping with apiVersion and kind" });
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
  return { ok: problems.length === 0, warnings, files: files.length, documents: parsed.length, problems };
}

export function formatProblem(p: FileProblem, cwd = process.cwd()): string {
  const file = relative(cwd, p.file) || p.file;
  const doc = p.document ? `#${p.document}` : "";
  const subject = p.kind ? ` ${p.kind}${p.name ? ` ${p.name}` : ""}` : "";
  return `${file}${doc}${subject}: ${p.path}: ${p.message}`;
}
