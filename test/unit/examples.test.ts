// The shipped examples: every valid one passes `connectorctl validate`, every file in
// examples/invalid is refused with exactly the one problem its `# expect:` line names,
// and the imap type accepts the spec's own example (seed §19.3) as a whole.
import { readFileSync, readdirSync } from "node:fs";
import { basename, join } from "node:path";
import { describe, expect, it } from "vitest";
import { crdValidators } from "../../controller/src/api/crdSchema.ts";
import { projectRoot } from "../../controller/src/api/paths.ts";
import type { Connector, ConnectorType } from "../../controller/src/api/types.ts";
import { ConfigSchemaCache } from "../../controller/src/catalog/configSchemas.ts";
import { loadFileCatalog, loadYamlDocuments } from "../../controller/src/catalog/fileCatalog.ts";
import { formatProblem, validateFiles, type FileProblem } from "../../controller/src/cli/validate.ts";
import { validateConnector } from "../../controller/src/reconcile/validate.ts";

const dir = (name: string) => join(projectRoot, "examples", name);
const typesDir = dir("types");
const connectorsDir = dir("connectors");
const templatesDir = dir("policy-templates");
const invalidDir = dir("invalid");

const show = (problems: FileProblem[]) => problems.map((p) => formatProblem(p, projectRoot)).join("\n");

describe("valid examples", () => {
  it("validate with no problems against the example catalog", () => {
    const report = validateFiles([connectorsDir, typesDir, templatesDir, dir("providers")], {
      catalogPaths: [typesDir],
    });
    expect(report.problems, show(report.problems)).toEqual([]);
    expect(report.documents).toBeGreaterThanOrEqual(13);
  });

  const connectors = loadYamlDocuments([connectorsDir]).map((d) => ({ file: d.file, c: d.doc as Connector }));
  const types = loadYamlDocuments([typesDir]).map((d) => ({ file: d.file, t: d.doc as ConnectorType }));

  it("name each file after its resource", () => {
    for (const { file, c } of connectors) expect(basename(file), file).toBe(`${c.metadata.name}.yaml`);
    for (const { file, t } of types) expect(basename(file), file).toBe(`${t.metadata.name}.yaml`);
  });

  it("cover every type and the interesting variants", () => {
    const typeNames = types.map(({ t }) => t.metadata.name).sort();
    expect(typeNames).toEqual(["discord", "http", "imap", "mattermost", "postgres", "smtp"]);
    expect(new Set(connectors.map(({ c }) => c.spec.type))).toEqual(new Set(typeNames));
    const specs = connectors.map(({ c }) => c.spec);
    expect(specs.some((s) => s.enabled === false)).toBe(true);
    expect(specs.some((s) => s.policyTemplate === "read-only-notifications")).toBe(true);
    expect(specs.some((s) => s.credentials?.mode === "oauth")).toBe(true);
    const lifecycles = types.flatMap(({ t }) => t.spec.versions.map((v) => v.lifecycle));
    expect(new Set(lifecycles)).toEqual(new Set(["approved", "deprecated", "retired"]));
    const classes = types.flatMap(({ t }) =>
      t.spec.versions.flatMap((v) => v.operations.map((o) => o.class)),
    );
    expect(new Set(classes)).toEqual(new Set(["auto", "approval_required", "forbidden"]));
  });

  it("let tests probe loopback servers and have Arabic display names", () => {
    for (const { t } of types) {
      expect(t.spec.displayNameAr, t.metadata.name).toMatch(/[\u0600-\u06FF]/);
      for (const v of t.spec.versions)
        expect(v.egressAllowlist, `${t.metadata.name} v${v.version}`).toEqual(
          expect.arrayContaining(["localhost", "127.0.0.1"]),
        );
    }
  });

  it("mark standalone only connectors that need no credentials", () => {
    const standalone = connectors.filter(
      ({ c }) => c.metadata.labels?.["cynodeai.io/example"] === "standalone",
    );
    expect(standalone.map(({ c }) => c.metadata.name)).toContain("status-webhook");
    for (const { c } of standalone) expect(c.spec.credentials, c.metadata.name).toBeUndefined();
  });
});

describe("invalid examples", () => {
  const files = readdirSync(invalidDir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort();

  it("cover at least twelve cases", () => {
    expect(files.length).toBeGreaterThanOrEqual(12);
  });

  for (const name of files) {
    it(`refuses ${name}`, () => {
      const file = join(invalidDir, name);
      const expectLine = /^# expect: (.+)$/m.exec(readFileSync(file, "utf8").split("\n")[0] ?? "");
      expect(expectLine, `${name} must begin with "# expect: <text>"`).not.toBeNull();
      const expected = expectLine![1]!.trim();
      const report = validateFiles([file], { catalogPaths: [typesDir, templatesDir] });
      expect(report.ok).toBe(false);
      expect(report.problems, show(report.problems)).toHaveLength(1);
      expect(formatProblem(report.problems[0]!, projectRoot)).toContain(expected);
    });
  }
});

describe("the spec's own example (seed §19.3)", () => {
  const example: Connector = {
    apiVersion: "cynodeai.io/v1alpha1",
    kind: "Connector",
    metadata: { name: "ops-mail", namespace: "team-ops" },
    spec: {
      type: "imap",
      typeVersion: 1,
      enabled: true,
      owner: { type: "group", id: "7b2c1f4e-5d3a-4c8b-9e2f-0a6d8c4b1e73" },
      projectId: "3a91d2c5-8e47-4f6a-b1c3-5d9e7f2a4b68",
      config: {
        host: "imap.example.com",
        port: 993,
        tls: true,
        mailbox: "INBOX",
        filter: { fromAllowlist: ["alerts@example.com"] },
      },
      credentials: {
        mode: "secretRef",
        secretRef: {
          provider: "cynode-vault",
          name: "imap-ops-mail-creds",
          keys: { username: "username", password: "password" },
        },
      },
      policy: { allowOperations: ["readInbox"], actionScope: ["connector.operation.read"] },
      limits: { maxParallelInvocations: 4, rateLimit: { rps: 2, burst: 5 } },
    },
  };

  it("passes the Connector CRD schema and its CEL rules", () => {
    expect(crdValidators().get("Connector")!.validate(example)).toEqual([]);
  });

  it("is accepted by the imap type: config, policy and limits", () => {
    const ctx = {
      catalog: loadFileCatalog([typesDir]),
      schemas: new ConfigSchemaCache(),
      enabledFeatures: new Set<string>(),
    };
    const valid = validateConnector(example, ctx);
    expect(valid.warnings).toEqual([]);
    expect(valid.version.lifecycle).toBe("approved");
    expect(valid.desired.config).toEqual({ ...example.spec.config, insecureSkipVerify: false });
    expect(valid.desired.policy).toEqual({
      actionScope: ["connector.operation.read"],
      operations: [{ name: "readInbox", class: "auto", action: "connector.operation.read" }],
    });
    // the example's config is what the shipped ops-mail connector declares
    const opsMail = loadYamlDocuments([join(connectorsDir, "ops-mail.yaml")])[0]!.doc as Connector;
    expect(opsMail.spec.config).toEqual(example.spec.config);
    expect(opsMail.spec.policy).toEqual(example.spec.policy);
  });

  it("gets the imap defaults when it leaves them out", () => {
    const ctx = {
      catalog: loadFileCatalog([typesDir]),
      schemas: new ConfigSchemaCache(),
      enabledFeatures: new Set<string>(),
    };
    const bare = structuredClone(example);
    bare.spec.config = { host: "imap.example.com" };
    expect(validateConnector(bare, ctx).desired.config).toEqual({
      host: "imap.example.com",
      port: 993,
      tls: true,
      mailbox: "INBOX",
      insecureSkipVerify: false,
    });
  });
});
