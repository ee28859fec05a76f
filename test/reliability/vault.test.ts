// Secrets under faults, and tenancy. A real Vault-API server (test/support/openbao.ts:
// OpenBao, or Vault 1.14.1) with Kubernetes auth against the real test kube-apiserver;
// the controller as a separate process resolves each Connector's bearer token with the
// tenant's own identity (TokenRequest for a service account in the Connector's namespace)
// and probes a loopback target that checks which tenant's token it was given.
//
//  - Vault sealed, then unsealed; Vault SIGKILLed, then restarted: working Connectors keep
//    Ready (Synced=False says why), new ones wait, everything converges after; a rotation
//    after the outage is picked up and audited.
//  - Tenancy: a Connector never resolves another namespace's secret, whatever path trick it
//    tries, through the controller end to end (Vault and file providers) and through the
//    resolver for generated names; a misconfigured provider (one role for all) is stopped
//    by Vault's own policy.
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import fc from "fast-check";
import * as yaml from "js-yaml";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Connector, SecretProvider } from "../../controller/src/api/types.ts";
import { loadOrCreateFingerprintKey } from "../../controller/src/kube/hmacKey.ts";
import { KubeSecretKeys, KubeServiceAccountTokens } from "../../controller/src/kube/serviceAccountTokens.ts";
import { createLogger } from "../../controller/src/observability/logger.ts";
import { ConnectorError } from "../../controller/src/api/errors.ts";
import { VaultSecretResolver } from "../../controller/src/secrets/resolver.ts";
import type { ControlPlane } from "../support/controlPlane.ts";
import type { ControllerProcess } from "../support/controllerProcess.ts";
import { listen } from "../support/net.ts";
import type { OpenBao } from "../support/openbao.ts";
import { eventually, sleep } from "../support/wait.ts";
import { startWorld, type World as TestWorld } from "../support/world.ts";
import {
  createAll,
  FILE_A_SECRET,
  httpConnector,
  Kube,
  ROTATED_SECRET,
  SECRETS,
  size,
  TENANT_A_SECRET,
  TENANT_B_SECRET,
  World,
  type Expectation,
  SCENARIO_TIMEOUT,
} from "./harness.ts";
import { checkInvariants, describeReport, scanForSecrets } from "./invariants.ts";
import { Tally, type ScenarioRecord } from "./tally.ts";

const A = "v-a";
const B = "v-b";
const NOROLE = "v-norole"; // allowed by the provider, but Vault has no role for it
const OUTSIDE = "v-outside"; // not in the provider's allowedNamespaces
const NAMESPACES = [A, B, NOROLE, OUTSIDE];

let testWorld: TestWorld;
let cp: ControlPlane;
let bao: OpenBao;
let kube: Kube;
let sql: pg.Pool;
let filesDir: string;
let ctl: ControllerProcess;
const world = new World();
const tally = new Tally("vault");

// ---------------------------------------------------------------------------------------
// A target that knows each tenant's tokens: it answers 200 only to its own tenant's token
// and remembers any request that carried another tenant's.
// ---------------------------------------------------------------------------------------
const TOKENS: Record<string, string[]> = {
  [A]: [TENANT_A_SECRET, FILE_A_SECRET, ROTATED_SECRET],
  [B]: [TENANT_B_SECRET],
};
const target = {
  url: "",
  server: undefined as Server | undefined,
  requests: [] as { ns: string; owner: string | undefined }[],
  crossTenant: [] as string[],
};
function ownerOf(token: string): string | undefined {
  return Object.entries(TOKENS).find(([, ts]) => ts.includes(token))?.[0];
}
async function startAuthTarget(): Promise<void> {
  target.server = createServer((req, res) => {
    req.resume();
    const ns = (req.url ?? "").split("/")[1] ?? "";
    const token = /^Bearer (.*)$/.exec(req.headers.authorization ?? "")?.[1] ?? "";
    const owner = ownerOf(token);
    target.requests.push({ ns, owner });
    if (owner !== undefined && owner !== ns) target.crossTenant.push(`${ns} presented ${owner}'s token`);
    res.writeHead(owner === ns ? 200 : 401, { "content-type": "application/json" });
    res.end(owner === ns ? '{"ok":true}\n' : '{"error":"unauthorized"}\n');
  });
  target.url = `http://127.0.0.1:${(await listen(target.server)).port}`;
}

/** An http Connector with bearer auth whose token comes from `provider`'s secret `secret`. */
function secretConnector(ns: string, name: string, secret: string, provider = "rel-vault"): Connector {
  const c = httpConnector(ns, name, `${target.url}/${ns}`);
  c.spec.config = { ...c.spec.config, auth: { scheme: "bearer" } };
  c.spec.credentials = { mode: "secretRef", secretRef: { provider, name: secret, keys: { token: "token" } } };
  c.spec.healthCheck = { intervalSeconds: 10, timeoutSeconds: 5 };
  return c;
}

async function applyProvider(name: string, spec: SecretProvider["spec"]): Promise<void> {
  const doc = { apiVersion: "cynodeai.io/v1alpha1", kind: "SecretProvider", metadata: { name }, spec };
  const r = await cp.kubectl(["apply", "-f", "-"], { input: yaml.dump(doc) });
  if (r.code !== 0) throw new Error(`SecretProvider ${name}: ${r.stderr}`);
}

const vaultProvider = (role: string, allowed: string[]): SecretProvider["spec"] => ({
  vault: {
    address: bao.address,
    caBundle: bao.caPem,
    kv: { mount: "kv", version: 2 },
    pathTemplate: "connectors/{namespace}/{name}",
    auth: {
      kubernetes: { role, serviceAccountName: "vault-reader", mountPath: "kubernetes", audiences: ["vault"] },
    },
  },
  allowedNamespaces: allowed,
});

beforeAll(async () => {
  testWorld = await startWorld({ vault: true, namespaces: [NOROLE, OUTSIDE] });
  ({ cp, sql, bao } = testWorld);
  await startAuthTarget();
  testWorld.defer("the auth target", () => new Promise((r) => target.server!.close(r)));
  kube = new Kube(cp.kubeconfigPath);
  for (const ns of NAMESPACES) world.namespaces.add(ns);

  await bao.tenant(cp, A);
  await bao.tenant(cp, B);
  const sa = await cp.kubectl(["create", "serviceaccount", "vault-reader", "-n", NOROLE]);
  if (sa.code !== 0) throw new Error(sa.stderr);
  await bao.writeKv2(`connectors/${A}/hook`, { token: TENANT_A_SECRET });
  await bao.writeKv2(`connectors/${B}/hook`, { token: TENANT_B_SECRET });

  filesDir = testWorld.tempDir("cc-rel-files-");
  mkdirSync(join(filesDir, A));
  mkdirSync(join(filesDir, B));
  writeFileSync(join(filesDir, A, "hook.json"), JSON.stringify({ token: FILE_A_SECRET }));
  writeFileSync(join(filesDir, B, "ok.json"), JSON.stringify({ token: TENANT_B_SECRET }));
  // A secret of B's that is a symlink to A's file: it must not lead out of B's directory.
  symlinkSync(join(filesDir, A, "hook.json"), join(filesDir, B, "evil.json"));

  await applyProvider("rel-vault", vaultProvider("{namespace}", [A, B, NOROLE]));
  // Misconfigured: one role (A's) for every namespace. Vault's policy is the second wall.
  await applyProvider("rel-vault-onerole", vaultProvider(A, [A, B]));
  await applyProvider("rel-files", { file: { directory: filesDir }, allowedNamespaces: [A, B] });

  ctl = testWorld.spawnController({
    name: "vault-ctl",
    namespaces: NAMESPACES,
    args: ["--failure-retry", "2s"],
  });
  await ctl.started();
}, 45 * 60_000); // a cold build of the Vault-API server binary takes many minutes

afterAll(async () => {
  await testWorld?.stop();
});

type Item = { c: Connector; e: Omit<Expectation, "uid" | "ns" | "name"> };

async function create(items: Item[]): Promise<Connector[]> {
  const created = await createAll(
    kube,
    items.map((x) => x.c),
  );
  created.forEach((c, i) =>
    world.expect({ ...items[i]!.e, ns: c.metadata.namespace!, name: c.metadata.name, uid: c.metadata.uid! }),
  );
  return created;
}

/** Creates each; one the API server refuses is no Connector (counted, its message kept). */
async function tryCreate(items: Item[]): Promise<number> {
  let refused = 0;
  for (const { c, e } of items) {
    const res = await kube.tryCreate(c);
    if (!res.ok) {
      expect(res.code, res.message).toBe(422);
      refused++;
      continue;
    }
    world.expect({
      ...e,
      ns: res.obj.metadata.namespace!,
      name: res.obj.metadata.name,
      uid: res.obj.metadata.uid!,
    });
  }
  return refused;
}

async function invariants(r: ScenarioRecord, timeoutMs = 120_000): Promise<void> {
  const report = await checkInvariants({ kube, sql, world, logs: () => ctl.raw }, { timeoutMs });
  r.violations += report.violations.length + target.crossTenant.length;
  r.secretBytes += report.secretBytes;
  console.log(`[${r.scenario}] settled in ${report.settledMs} ms; checked ${JSON.stringify(report.checked)}`);
  expect(target.crossTenant, "a tenant's token presented for another tenant").toEqual([]);
  expect(report.violations.length + report.secretBytes, describeReport(report)).toBe(0);
}

const cond = (c: Connector | undefined, type: string) => c?.status?.conditions?.find((x) => x.type === type);

let n = 0;
const ready = { want: "ready" as const, enabled: true };

describe("Vault faults", () => {
  it(
    "sealed, then unsealed: working Connectors keep Ready, new ones wait, all converge; a rotation after is picked up",
    async () => {
      await tally.scenario("faults", "Vault sealed, then unsealed", async (r) => {
        const working = await create(
          [A, B].flatMap((ns) =>
            Array.from({ length: size(3, 8) }, () => ({
              c: secretConnector(ns, `s${n++}`, "hook"),
              e: ready,
            })),
          ),
        );
        await invariants(r);

        await bao.seal();
        r.faults++;
        // A finished read is shared for 2 s (one read per refresh): past that, nothing new
        // can be resolved until Vault is unsealed.
        await sleep(2500);
        const during = await create(
          Array.from({ length: size(2, 6) }, () => ({ c: secretConnector(A, `s${n++}`, "hook"), e: ready })),
        );
        // Within a probe interval every working Connector meets the sealed Vault: Synced says
        // so, Ready stays (a passing failure does not take a working connector down).
        await eventually(
          async () => {
            const c = await kube.get(A, working[0]!.metadata.name);
            return cond(c, "Synced")?.status === "False";
          },
          "Synced=False while Vault is sealed",
          60_000,
        );
        const sealed = await kube.get(A, working[0]!.metadata.name);
        world.messages.push(cond(sealed, "Synced")!.message);
        expect(cond(sealed, "Ready")?.status).toBe("True");
        expect(cond(sealed, "Synced")?.message).toMatch(/seal|503|unavailable/i);
        const waiting = await kube.get(A, during[0]!.metadata.name);
        expect(cond(waiting, "Ready")?.status).not.toBe("True");
        await sleep(3000);
        await bao.unseal();
        await invariants(r);

        // A rotation after the outage: re-probed with the new token, audited.
        await bao.writeKv2(`connectors/${A}/hook`, { token: ROTATED_SECRET });
        const rotatedSeen = target.requests.length;
        await eventually(
          async () => target.requests.slice(rotatedSeen).some((q) => q.ns === A && q.owner === A),
          "a probe with the rotated token",
          60_000,
        );
        await eventually(
          async () =>
            (
              await sql.query(
                "select 1 from connector_audit_events where operation = 'credential_rotated' and namespace = $1",
                [A],
              )
            ).rowCount! > 0,
          "a credential_rotated audit row",
          60_000,
        );
        await invariants(r);
      });
    },
    SCENARIO_TIMEOUT,
  );

  it(
    "SIGKILLed, then restarted: the same, across a Vault restart",
    async () => {
      await tally.scenario("faults", "Vault killed, then restarted", async (r) => {
        const probe = world.live().find((e) => e.ns === B && e.want === "ready")!;
        await bao.kill();
        r.faults++;
        await create(
          Array.from({ length: size(2, 6) }, () => ({ c: secretConnector(B, `s${n++}`, "hook"), e: ready })),
        );
        await eventually(
          async () => cond(await kube.get(B, probe.name), "Synced")?.status === "False",
          "Synced=False while Vault is down",
          60_000,
        );
        const down = await kube.get(B, probe.name);
        world.messages.push(cond(down, "Synced")!.message);
        expect(cond(down, "Ready")?.status).toBe("True");
        expect(cond(down, "Synced")?.reason).toMatch(/VaultUnavailable|Vault/);
        await sleep(3000);
        await bao.restart();
        await invariants(r);
      });
    },
    SCENARIO_TIMEOUT,
  );
});

describe("tenancy: secrets", () => {
  it(
    "a Connector never resolves another namespace's secret, whatever path trick it tries (controller, end to end)",
    async () => {
      await tally.scenario("tenancy", "cross-namespace secret tricks (controller)", async (r) => {
        const stalled = (reason: string) => ({ want: "stalled" as const, reason });
        // Refused by the runtime (Vault, or the file provider's symlink check), after the
        // generation was applied: the row exists.
        const denied = (reason: string) => ({ want: "stalled" as const, reason, appliedGeneration: 1 });
        const tricks = [
          "../v-a/hook",
          "..%2fv-a%2fhook",
          "%2e%2e/v-a/hook",
          "/connectors/v-a/hook",
          "data/connectors/v-a/hook",
          "metadata/connectors/v-a/hook",
          "hook/../../v-a/hook",
          "x/../../../v-a/hook",
          "v-a\uFF0Fhook",
          "..\u2215v-a\u2215hook",
          "./hook",
          "hook/",
          "a//hook",
        ];
        const items = [
          ...tricks.map((t) => ({ c: secretConnector(B, `t${n++}`, t), e: stalled("InvalidSecretRef") })),
          // Inside B's own tree: a name that merely looks like A's path is just not found.
          {
            c: secretConnector(B, `t${n++}`, "connectors/v-a/hook"),
            e: { want: "failing" as const, reason: "SecretNotFound" },
          },
          // Not allowed to use the provider at all.
          // The controller's guard refuses it in validation, before any row is written.
          { c: secretConnector(OUTSIDE, `t${n++}`, "hook"), e: stalled("NamespaceNotAllowed") },
          // Allowed, but Vault knows no role for the namespace: its login answers 400 (invalid
          // role name), which is terminal until the role or the spec changes.
          { c: secretConnector(NOROLE, `t${n++}`, "hook"), e: denied("InvalidSecretRef") },
          // A provider that logs every namespace in with A's role: Vault refuses B's identity.
          { c: secretConnector(B, `t${n++}`, "hook", "rel-vault-onerole"), e: denied("PermissionDenied") },
          // The file provider: a symlink out of B's directory, and a parent path.
          { c: secretConnector(B, `t${n++}`, "evil", "rel-files"), e: denied("InvalidSecretRef") },
          { c: secretConnector(B, `t${n++}`, "../v-a/hook", "rel-files"), e: stalled("InvalidSecretRef") },
          // And the honest ones work.
          { c: secretConnector(B, `t${n++}`, "ok", "rel-files"), e: ready },
          { c: secretConnector(A, `t${n++}`, "hook", "rel-files"), e: ready },
          { c: secretConnector(B, `t${n++}`, "hook"), e: ready },
        ];
        const refusedByApi = await tryCreate(items);
        r.badInputs += items.length;
        r.note = `${items.length} Connectors, ${refusedByApi} refused by the API server`;
        // A working Connector whose secretRef is changed to a trick: Stalled, and its last valid
        // generation stays in force in the database.
        const [victim] = await create([{ c: secretConnector(B, `t${n++}`, "hook"), e: ready }]);
        await eventually(
          async () => cond(await kube.get(B, victim!.metadata.name), "Ready")?.status === "True",
          "the victim to work first",
          60_000,
        );
        await kube.update(B, victim!.metadata.name, (c) => {
          c.spec.credentials!.secretRef!.name = "../v-a/hook";
        });
        world.expect({
          ...world.get(victim!.metadata.uid!)!,
          want: "stalled",
          reason: "InvalidSecretRef",
          appliedGeneration: 1,
        });
        // The security property first: every trick is refused, B never presented A's token.
        await eventually(
          async () =>
            (await kube.listConnectors()).filter(
              (c) => c.metadata.namespace === B && cond(c, "Stalled")?.reason === "InvalidSecretRef",
            ).length >=
            tricks.length - refusedByApi + 3,
          "every trick to be refused",
          60_000,
        );
        for (const c of await kube.listConnectors()) {
          const s = cond(c, "Stalled");
          if (c.metadata.namespace === B && s?.reason === "InvalidSecretRef")
            expect(s.message, "a refusal names the field or the secret").toMatch(
              /spec\.credentials\.secretRef\.name|the secret /,
            );
        }
        expect(target.requests.filter((q) => q.ns === B && q.owner === A)).toEqual([]);
        // Then the bookkeeping (DESIGN §4 step 3: the secretRef path is part of validation, so a
        // refused generation never reaches the database and the last valid one stays in force).
        await invariants(r, 30_000);
      });
    },
    SCENARIO_TIMEOUT,
  );

  it(
    "a Connector never resolves another namespace's secret for any generated name (resolver against Vault)",
    async () => {
      await tally.scenario(
        "tenancy",
        "cross-namespace secret names (resolver, property-based)",
        async (r) => {
          const kc = new KubeConfig();
          kc.loadFromFile(cp.kubeconfigPath);
          const providers = new Map<string, SecretProvider>();
          for (const name of ["rel-vault", "rel-files"]) {
            const out = await cp.kubectl(["get", "secretprovider", name, "-o", "json"]);
            providers.set(name, JSON.parse(out.stdout) as SecretProvider);
          }
          const logLines: string[] = [];
          const resolver = new VaultSecretResolver({
            providers: { get: (name) => providers.get(name) },
            tokens: new KubeServiceAccountTokens(kc),
            kubeSecrets: new KubeSecretKeys(kc),
            namespaceLabels: () => ({}),
            hmacKey: await loadOrCreateFingerprintKey(kc, "default"),
            log: createLogger({
              level: "debug",
              destination: {
                write: (l: string) => void logLines.push(l),
              } as unknown as NodeJS.WritableStream,
            }),
          });
          const pieces = [
            "..",
            ".",
            "",
            "v-a",
            "hook",
            "connectors",
            "data",
            "metadata",
            "%2e%2e",
            "%2f",
            "..%2f",
            "\uFF0F",
            "\u2215",
            "\uFF0E\uFF0E",
            "\\",
            "\u0000",
            "\n",
            "kv",
            "v-b",
            "*",
            "{namespace}",
            "${name}",
            "{{.}}",
          ];
          const nameArb = fc.oneof(
            fc.array(fc.constantFrom(...pieces), { minLength: 1, maxLength: 8 }).map((p) => p.join("/")),
            fc.array(fc.constantFrom(...pieces, "/"), { minLength: 1, maxLength: 12 }).map((p) => p.join("")),
            fc.string({ unit: "grapheme", maxLength: 40 }),
            fc.constantFrom("hook", "../v-a/hook", "/v-a/hook", "v-a/hook", "../../connectors/v-a/hook"),
          );
          const errors: string[] = [];
          let tried = 0;
          let refused = 0;
          await fc.assert(
            fc.asyncProperty(nameArb, fc.constantFrom("rel-vault", "rel-files"), async (name, provider) => {
              tried++;
              try {
                const got = await resolver.resolve(B, { provider, name, keys: { token: "token" } });
                // Whatever B resolves is B's own.
                expect(
                  ownerOf(got.values.token ?? ""),
                  `B resolved ${JSON.stringify(name)} via ${provider}`,
                ).toBe(B);
              } catch (err) {
                expect(err, `a non-ConnectorError for ${JSON.stringify(name)}`).toBeInstanceOf(
                  ConnectorError,
                );
                const e = err as ConnectorError;
                refused++;
                errors.push(e.message);
                expect(e.message.length, "a refusal says why").toBeGreaterThan(10);
                expect(["transient", "quota_exceeded"]).not.toContain(e.errorClass);
              }
            }),
            { numRuns: size(300, 2000) },
          );
          await resolver.close();
          r.badInputs += tried;
          r.note = `${tried} names, ${refused} refused, none resolved A's secret`;
          const { hits, bytes } = scanForSecrets(
            new Map([
              ["resolver errors", errors],
              ["resolver logs", logLines],
            ]),
          );
          r.secretBytes += bytes;
          expect(hits).toEqual([]);
          expect(SECRETS.length).toBeGreaterThan(0);
        },
      );
    },
    SCENARIO_TIMEOUT,
  );
});
