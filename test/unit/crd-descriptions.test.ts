// `kubectl explain` must explain every field: this walks each CRD's schema in crds/ and
// fails on a field without a description, a default the description does not state, or an
// enum value it does not name. It also checks the category every kind shares
// (`kubectl get cynodeai -A`).
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import * as yaml from "js-yaml";
import { describe, expect, it } from "vitest";
import { crdDir } from "../../controller/src/api/paths.ts";

interface Schema {
  description?: string;
  default?: unknown;
  enum?: unknown[];
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
}

interface Crd {
  spec: {
    names: { kind: string; categories?: string[] };
    versions: { name: string; schema: { openAPIV3Schema: Schema } }[];
  };
}

const crds: Crd[] = readdirSync(crdDir)
  .filter((f) => f.endsWith(".yaml"))
  .sort()
  .map((f) => yaml.load(readFileSync(join(crdDir, f), "utf8")) as Crd);

interface Field {
  path: string;
  schema: Schema;
}

/**
 * Every property, at any depth: under properties, array items and map values. The root's
 * metadata is not ours to describe: the API server refuses anything but its type there, and
 * `kubectl explain` shows ObjectMeta's own documentation.
 */
function fields(schema: Schema, path = ""): Field[] {
  const out: Field[] = [];
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    if (path === "" && name === "metadata") {
      expect(child, "the root metadata is { type: object } alone").toEqual({ type: "object" });
      continue;
    }
    out.push({ path: `${path}.${name}`, schema: child });
    out.push(...fields(child, `${path}.${name}`));
  }
  if (schema.items) out.push(...fields(schema.items, `${path}[]`));
  if (typeof schema.additionalProperties === "object")
    out.push(...fields(schema.additionalProperties, `${path}{}`));
  return out;
}

/** The words a description must contain to state a default. */
function defaultWords(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(String);
  return [String(value)];
}

/** What is wrong with one field's description, if anything. */
export function descriptionProblems(f: Field): string[] {
  const { description, default: dflt } = f.schema;
  const leafName =
    f.path
      .split(/[.[\]{}]+/)
      .filter(Boolean)
      .pop() ?? "";
  if (!description?.trim()) return [`${f.path}: no description`];
  const problems: string[] = [];
  if (description.trim().length < 12 || description.trim() === leafName)
    problems.push(`${f.path}: the description says nothing ("${description}")`);
  if (dflt !== undefined) {
    if (!/\bdefault\b/i.test(description)) problems.push(`${f.path}: has a default the description hides`);
    for (const w of defaultWords(dflt))
      if (!description.includes(w))
        problems.push(`${f.path}: the description does not name its default ${w}`);
  }
  const enumValues = f.schema.enum ?? f.schema.items?.enum ?? [];
  for (const v of enumValues)
    if (!description.includes(String(v)))
      problems.push(`${f.path}: the description does not name the allowed value ${String(v)}`);
  return problems;
}

describe("CRD field descriptions (kubectl explain)", () => {
  it("finds the four CRDs", () => {
    expect(crds.map((c) => c.spec.names.kind).sort()).toEqual([
      "Connector",
      "ConnectorPolicyTemplate",
      "ConnectorType",
      "SecretProvider",
    ]);
  });

  for (const crd of crds) {
    const kind = crd.spec.names.kind;
    for (const version of crd.spec.versions) {
      it(`describes every field of ${kind} ${version.name}, its default and its allowed values`, () => {
        const root = version.schema.openAPIV3Schema;
        const all = fields(root);
        expect(all.length, kind).toBeGreaterThan(5);
        expect(root.description?.length ?? 0, `${kind}: the kind itself`).toBeGreaterThan(20);
        expect(all.flatMap(descriptionProblems)).toEqual([]);
      });
    }
  }

  it("counts every Connector field, the operation fields of ConnectorType and the policy template's", () => {
    const count = (kind: string) =>
      fields(crds.find((c) => c.spec.names.kind === kind)!.spec.versions[0]!.schema.openAPIV3Schema).length;
    expect(count("Connector")).toBeGreaterThanOrEqual(60);
    expect(count("ConnectorPolicyTemplate")).toBeGreaterThanOrEqual(6);
    const typeFields = fields(
      crds.find((c) => c.spec.names.kind === "ConnectorType")!.spec.versions[0]!.schema.openAPIV3Schema,
    ).map((f) => f.path);
    for (const op of ["inputSchema", "outputSchema", "redact", "onOversize"])
      expect(typeFields).toContain(`.spec.versions[].operations[].${op}`);
  });

  it("would catch a missing description, a hidden default and an unnamed enum value", () => {
    expect(descriptionProblems({ path: ".spec.x", schema: {} })).toEqual([".spec.x: no description"]);
    expect(
      descriptionProblems({
        path: ".spec.n",
        schema: { description: "Seconds between probes.", default: 300 },
      }),
    ).toEqual([
      ".spec.n: has a default the description hides",
      ".spec.n: the description does not name its default 300",
    ]);
    expect(
      descriptionProblems({
        path: ".spec.p",
        schema: {
          description: "Delete removes the row. Default Delete.",
          enum: ["Delete", "Orphan"],
          default: "Delete",
        },
      }),
    ).toEqual([".spec.p: the description does not name the allowed value Orphan"]);
  });
});

describe("CRD files", () => {
  it("each start with a document marker, so `helm show crds` (which concatenates them) keeps them apart", () => {
    // Without it, `helm show crds | kubectl apply -f -` (docs/upgrading.md) sees ONE document
    // whose repeated keys keep the last CRD's values: the other three are silently skipped.
    for (const f of readdirSync(crdDir).filter((f) => f.endsWith(".yaml")))
      expect(readFileSync(join(crdDir, f), "utf8").startsWith("---\n"), f).toBe(true);
  });
});

describe("CRD categories", () => {
  it("puts all four kinds in the cynodeai category (kubectl get cynodeai -A)", () => {
    for (const crd of crds) expect(crd.spec.names.categories, crd.spec.names.kind).toContain("cynodeai");
  });
});
