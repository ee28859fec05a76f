// The CRDs in crds/ are the source of truth; this keeps controller/src/api/types.ts in
// agreement with them: same fields, same required-ness, same enums.
import { readFileSync } from "node:fs";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { crdSchema } from "../../controller/src/api/crdSchema.ts";

type Schema = { properties?: Record<string, Schema>; required?: string[]; enum?: unknown[]; items?: Schema };

const source = ts.createSourceFile(
  "types.ts",
  readFileSync(new URL("../../controller/src/api/types.ts", import.meta.url), "utf8"),
  ts.ScriptTarget.Latest,
  true,
);

interface Member {
  optional: boolean;
  literals?: string[];
}

function interfaceMembers(name: string): Map<string, Member> {
  const out = new Map<string, Member>();
  const visit = (node: ts.Node) => {
    if (ts.isInterfaceDeclaration(node) && node.name.text === name) {
      for (const m of node.members) {
        if (!ts.isPropertySignature(m) || !m.name || !ts.isIdentifier(m.name)) continue;
        let literals: string[] | undefined;
        const t = m.type;
        if (
          t &&
          ts.isUnionTypeNode(t) &&
          t.types.every((x) => ts.isLiteralTypeNode(x) && ts.isStringLiteral(x.literal))
        )
          literals = t.types.map((x) => ((x as ts.LiteralTypeNode).literal as ts.StringLiteral).text).sort();
        out.set(m.name.text, { optional: !!m.questionToken, ...(literals ? { literals } : {}) });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  if (!out.size) throw new Error(`interface ${name} not found in types.ts`);
  return out;
}

function at(kind: string, path: string): Schema {
  let s = crdSchema(kind) as Schema;
  for (const seg of path.split(".")) {
    const next = seg === "[]" ? s.items : s.properties?.[seg];
    if (!next) throw new Error(`${kind} schema has no ${path}`);
    s = next;
  }
  return s;
}

const pairs: [string, string, string][] = [
  ["ConnectorSpec", "Connector", "spec"],
  ["Owner", "Connector", "spec.owner"],
  ["Credentials", "Connector", "spec.credentials"],
  ["SecretRef", "Connector", "spec.credentials.secretRef"],
  ["InlinePolicy", "Connector", "spec.policy"],
  ["Limits", "Connector", "spec.limits"],
  ["RateLimit", "Connector", "spec.limits.rateLimit"],
  ["HealthCheck", "Connector", "spec.healthCheck"],
  ["ConnectorStatus", "Connector", "status"],
  ["Condition", "Connector", "status.conditions.[]"],
  ["ConnectorTypeSpec", "ConnectorType", "spec"],
  ["TypeVersion", "ConnectorType", "spec.versions.[]"],
  ["Operation", "ConnectorType", "spec.versions.[].operations.[]"],
  ["RetryPolicy", "ConnectorType", "spec.versions.[].operations.[].retryPolicy"],
  ["HealthProbe", "ConnectorType", "spec.versions.[].healthProbe"],
  ["LimitsCap", "ConnectorType", "spec.versions.[].limitsCap"],
  ["SecretProviderSpec", "SecretProvider", "spec"],
  ["VaultProviderSpec", "SecretProvider", "spec.vault"],
  ["VaultKv", "SecretProvider", "spec.vault.kv"],
  ["VaultAuth", "SecretProvider", "spec.vault.auth"],
  ["VaultKubernetesAuth", "SecretProvider", "spec.vault.auth.kubernetes"],
  ["VaultAppRoleAuth", "SecretProvider", "spec.vault.auth.appRole"],
  ["SecretKeySelector", "SecretProvider", "spec.vault.auth.appRole.secretIdRef"],
  ["SecretKeySelector", "SecretProvider", "spec.vault.auth.token.secretRef"],
  ["VaultTokenAuth", "SecretProvider", "spec.vault.auth.token"],
  ["FileProviderSpec", "SecretProvider", "spec.file"],
  ["KubernetesProviderSpec", "SecretProvider", "spec.kubernetes"],
  ["CaBundleRef", "SecretProvider", "spec.vault.caBundleRef"],
  ["LabelSelector", "SecretProvider", "spec.namespaceSelector"],
  ["LabelSelectorRequirement", "SecretProvider", "spec.namespaceSelector.matchExpressions.[]"],
  ["SecretProviderStatus", "SecretProvider", "status"],
];

describe("TypeScript types agree with the CRDs", () => {
  it.each(pairs)("%s matches %s %s", (iface, kind, path) => {
    const schema = at(kind, path);
    const members = interfaceMembers(iface);
    expect([...members.keys()].sort()).toEqual(Object.keys(schema.properties ?? {}).sort());
    const required = new Set(schema.required ?? []);
    for (const [name, m] of members) {
      expect({ field: name, required: !m.optional }).toEqual({ field: name, required: required.has(name) });
      const e = schema.properties?.[name]?.enum;
      if (m.literals && e)
        expect({ field: name, values: m.literals }).toEqual({ field: name, values: e.map(String).sort() });
    }
  });

  it("lists the states, error classes and actions the CRD enumerates", async () => {
    const types = await import("../../controller/src/api/types.ts");
    expect([...types.CONNECTOR_STATES].sort()).toEqual(
      (at("Connector", "status.state").enum as string[]).sort(),
    );
    expect([...types.ERROR_CLASSES].sort()).toEqual(
      (at("Connector", "status.lastError.class").enum as string[]).sort(),
    );
    expect([...types.ACTION_TAXONOMY].sort()).toEqual(
      (at("Connector", "spec.policy.actionScope.[]").enum as string[]).sort(),
    );
  });
});
