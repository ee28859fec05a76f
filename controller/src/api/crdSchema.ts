// Validation of resources against the CRDs in crds/ (their one source of truth), offline:
// the structural schema with ajv (unknown fields refused, as kubectl's strict field
// validation does), then the x-kubernetes-validations CEL rules the API server enforces.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { parse as parseCel } from "@marcbachmann/cel-js";
import type { ValidateFunction } from "ajv";
import * as yaml from "js-yaml";
import { createAjv } from "./ajv.ts";
import { crdDir } from "./paths.ts";
import { ajvProblems, joinPath, type Problem } from "./problems.ts";

type Schema = {
  type?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  "x-kubernetes-preserve-unknown-fields"?: boolean;
  "x-kubernetes-validations"?: { rule: string; message?: string; fieldPath?: string }[];
  [k: string]: unknown;
};

interface CelRule {
  evaluate: (ctx: { self: unknown }) => unknown;
  message: string;
  fieldPath?: string;
}

interface CrdValidator {
  kind: string;
  validate(obj: unknown): Problem[];
}

interface CrdDocument {
  kind: string;
  spec: { names: { kind: string }; versions: { name: string; schema: { openAPIV3Schema: Schema } }[] };
}

/** Structural schemas may not say `additionalProperties: false`; strict field validation means it. */
function strictCopy(schema: Schema): Schema {
  const out: Schema = { ...schema };
  if (schema.properties) {
    out.properties = Object.fromEntries(
      Object.entries(schema.properties).map(([k, v]) => [k, strictCopy(v)]),
    );
    if (!schema["x-kubernetes-preserve-unknown-fields"] && schema.additionalProperties === undefined)
      out.additionalProperties = false;
  }
  if (schema.items) out.items = strictCopy(schema.items);
  if (typeof schema.additionalProperties === "object")
    out.additionalProperties = strictCopy(schema.additionalProperties);
  return out;
}

function compileRules(schema: Schema): CelRule[] {
  return (schema["x-kubernetes-validations"] ?? [])
    .filter((r) => !/\boldSelf\b/.test(r.rule)) // transition rules need the stored object
    .map((r) => {
      const expr = parseCel(r.rule);
      return {
        evaluate: (ctx) => expr(ctx),
        message: r.message ?? `failed rule: ${r.rule}`,
        ...(r.fieldPath ? { fieldPath: r.fieldPath } : {}),
      };
    });
}

interface RuleNode {
  rules: CelRule[];
  properties: Map<string, RuleNode>;
  items?: RuleNode;
  additional?: RuleNode;
}

function ruleTree(schema: Schema): RuleNode | undefined {
  const node: RuleNode = { rules: compileRules(schema), properties: new Map() };
  for (const [k, v] of Object.entries(schema.properties ?? {})) {
    const child = ruleTree(v);
    if (child) node.properties.set(k, child);
  }
  if (schema.items) node.items = ruleTree(schema.items);
  if (typeof schema.additionalProperties === "object")
    node.additional = ruleTree(schema.additionalProperties);
  const empty = !node.rules.length && !node.properties.size && !node.items && !node.additional;
  return empty ? undefined : node;
}

function runRules(node: RuleNode, value: unknown, path: string, out: Problem[]): void {
  if (value === undefined || value === null) return;
  for (const rule of node.rules) {
    let ok: unknown;
    try {
      ok = rule.evaluate({ self: value });
    } catch {
      ok = true; // a type mismatch is already reported by the schema
    }
    if (ok !== true) {
      const at = rule.fieldPath ? path + rule.fieldPath : path;
      out.push({ path: at || "(root)", message: rule.message });
    }
  }
  if (typeof value !== "object") return;
  if (Array.isArray(value)) {
    if (node.items) value.forEach((v, i) => runRules(node.items!, v, `${path}[${i}]`, out));
    return;
  }
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const child = node.properties.get(k) ?? node.additional;
    if (child) runRules(child, v, joinPath(path, k), out);
  }
}

/**
 * The API server drops null values of declared fields that are not nullable (none of ours
 * are); an unknown field stays, to be refused, null or not.
 */
function dropNulls(value: unknown, schema: Schema | undefined): unknown {
  if (!schema || !value || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v) => dropNulls(v, schema.items));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const child =
      schema.properties?.[k] ??
      (typeof schema.additionalProperties === "object" ? schema.additionalProperties : undefined);
    if (v === null && schema.properties && k in schema.properties) continue;
    out[k] = dropNulls(v, child);
  }
  return out;
}

function buildValidator(crd: CrdDocument): CrdValidator {
  const version = crd.spec.versions[0];
  if (!version) throw new Error(`CRD ${crd.spec.names.kind} has no versions`);
  const schema = version.schema.openAPIV3Schema;
  const ajv = createAjv({ useDefaults: true });
  const check: ValidateFunction = ajv.compile(strictCopy(schema));
  const rules = ruleTree(schema);
  return {
    kind: crd.spec.names.kind,
    validate(obj) {
      // Defaults are applied (to a copy) before the CEL rules, as the API server does.
      const copy = dropNulls(structuredClone(obj), schema);
      if (!check(copy)) return ajvProblems(check.errors);
      const problems: Problem[] = [];
      if (rules) runRules(rules, copy, "", problems);
      return problems;
    },
  };
}

let cached: Map<string, CrdValidator> | undefined;

/** Validators for every CRD in crds/, by kind. */
export function crdValidators(dir = crdDir): Map<string, CrdValidator> {
  if (dir === crdDir && cached) return cached;
  const out = new Map<string, CrdValidator>();
  for (const file of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f))) {
    for (const doc of yaml.loadAll(readFileSync(join(dir, file), "utf8"))) {
      const crd = doc as CrdDocument;
      if (crd?.kind !== "CustomResourceDefinition") continue;
      out.set(crd.spec.names.kind, buildValidator(crd));
    }
  }
  if (dir === crdDir) cached = out;
  return out;
}

/** Raw openAPIV3Schema of a CRD kind (for the type-agreement test and the chart). */
export function crdSchema(kind: string, dir = crdDir): Schema {
  for (const file of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f))) {
    for (const doc of yaml.loadAll(readFileSync(join(dir, file), "utf8"))) {
      const crd = doc as CrdDocument;
      if (crd?.kind === "CustomResourceDefinition" && crd.spec.names.kind === kind)
        return crd.spec.versions[0]!.schema.openAPIV3Schema;
    }
  }
  throw new Error(`no CRD for kind ${kind} in ${dir}`);
}
