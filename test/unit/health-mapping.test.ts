// What Argo CD and kstatus (Flux, kubectl wait) make of a Connector, read from the status
// the reconciler really builds: the Reconciler (with in-memory ports, the shipped catalog,
// a probe and a secret backend the test steers) is driven into every state, and its status
// is read by the shipped Lua as Argo CD runs it and by kstatus's rules for custom
// resources. The README's table is this test's table.
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { ConnectorError, TerminalError } from "../../controller/src/api/errors.ts";
import { projectRoot, defaultCatalogDirs } from "../../controller/src/api/paths.ts";
import type { ProbeResult, ResolvedSecret } from "../../controller/src/api/model.ts";
import type { Connector } from "../../controller/src/api/types.ts";
import { ConfigSchemaCache } from "../../controller/src/catalog/configSchemas.ts";
import { loadFileCatalog } from "../../controller/src/catalog/fileCatalog.ts";
import { CircuitBreakers } from "../../controller/src/reconcile/breaker.ts";
import { Reconciler } from "../../controller/src/reconcile/reconciler.ts";
import { runHealth } from "../support/argoLua.ts";
import { ManualClock, MemoryEvents, MemoryStore, MemoryWriter, silentLogger } from "../support/memory.ts";

/** kstatus's rules for a custom resource that follows the conditions convention. */
function kstatus(c: Connector): "Current" | "InProgress" | "Failed" {
  const s = c.status;
  const cond = (type: string) => s?.conditions?.find((x) => x.type === type);
  if (!s || s.observedGeneration !== c.metadata.generation) return "InProgress";
  if (cond("Stalled")?.status === "True") return "Failed";
  if (cond("Reconciling")?.status === "True") return "InProgress";
  if (cond("Ready")?.status === "False") return "InProgress";
  return "Current";
}

type Probe = () => ProbeResult;
const ok: Probe = () => ({ ok: true, latencyMs: 1 });
const refused: Probe = () => ({
  ok: false,
  latencyMs: 1,
  error: new ConnectorError("transient", "ConnectionFailed", "connect ECONNREFUSED"),
});
const authRefused: Probe = () => ({
  ok: false,
  latencyMs: 1,
  error: new ConnectorError("permanent", "AuthenticationFailed", "HTTP 401 (credentials rejected)"),
});

function world() {
  const clock = new ManualClock();
  const state = {
    probe: ok,
    secret: (): ResolvedSecret => ({ values: { token: "t0k3n-value" }, version: 1, fingerprint: "f1" }),
  };
  const reconciler = new Reconciler({
    catalog: loadFileCatalog(defaultCatalogDirs),
    schemas: new ConfigSchemaCache(),
    store: new MemoryStore(),
    writer: new MemoryWriter(),
    events: new MemoryEvents(),
    clock,
    enabledFeatures: new Set(),
    prober: { probe: async () => state.probe() },
    secrets: { resolve: async () => state.secret() },
    breakers: new CircuitBreakers({ failureThreshold: 3, cooldownMs: 60_000, retryMs: 5_000 }),
    random: () => 0.5,
  });
  const connector: Connector = {
    apiVersion: "cynodeai.io/v1alpha1",
    kind: "Connector",
    metadata: { name: "web", namespace: "team-a", uid: "uid-web", generation: 1 },
    spec: {
      type: "http",
      typeVersion: 2,
      owner: { type: "group", id: "g" },
      config: { baseUrl: "https://api.example.com", auth: { scheme: "bearer" } },
      credentials: { mode: "secretRef", secretRef: { provider: "vault", name: "web" } },
      policy: { allowOperations: ["fetch"] },
    },
  };
  const run = async (times = 1) => {
    for (let i = 0; i < times; i++) {
      await reconciler
        .reconcile({ connector, reconcileId: `r${i}`, log: silentLogger })
        .catch((err: unknown) => {
          if (!(err instanceof TerminalError) && !(err instanceof ConnectorError)) throw err;
        });
      clock.advance(6_000);
    }
  };
  return { connector, state, run, clock };
}

/** Each row of the README's table: the situation, then what the reconciler, Argo CD and kstatus say. */
const SCENARIOS: [string, (w: ReturnType<typeof world>) => Promise<void>][] = [
  ["active and reachable", async (w) => w.run()],
  [
    "disabled",
    async (w) => {
      w.connector.spec.enabled = false;
      await w.run();
    },
  ],
  [
    "provisioning: the first probe has not run",
    async (w) => {
      w.state.secret = () => {
        throw new ConnectorError("transient", "VaultUnavailable", "Vault is sealed");
      };
      await w.run();
    },
  ],
  [
    "degraded: one probe failed, breaker closed",
    async (w) => {
      await w.run();
      w.clock.advance(600_000);
      w.state.probe = refused;
      await w.run();
    },
  ],
  [
    "breaker open: probes failed 3 times in a row",
    async (w) => {
      await w.run();
      w.clock.advance(600_000);
      w.state.probe = refused;
      await w.run(3);
    },
  ],
  [
    "credentials refused by the provider",
    async (w) => {
      w.state.probe = authRefused;
      await w.run();
    },
  ],
  [
    "secret deleted in Vault",
    async (w) => {
      w.state.secret = () => {
        throw new ConnectorError("permanent", "SecretDeleted", "the secret was deleted");
      };
      await w.run();
    },
  ],
  [
    "secret not (yet) in Vault",
    async (w) => {
      w.state.secret = () => {
        throw new ConnectorError("permanent", "SecretNotFound", "secret not found");
      };
      await w.run();
    },
  ],
  [
    "Vault sealed while active (last good state holds)",
    async (w) => {
      await w.run();
      w.clock.advance(600_000);
      w.state.secret = () => {
        throw new ConnectorError("transient", "VaultUnavailable", "Vault is sealed");
      };
      await w.run();
    },
  ],
  [
    "invalid spec (config fails the type's schema)",
    async (w) => {
      w.connector.spec.config = { baseUrl: 42 } as never;
      await w.run();
    },
  ],
  [
    "a new generation not yet observed",
    async (w) => {
      await w.run();
      w.connector.metadata.generation = 2;
    },
  ],
];

function readmeTable(): string[][] {
  const readme = fs.readFileSync(path.join(projectRoot, "README.md"), "utf8");
  const start = readme.search(
    /^\|\s*situation\s*\|\s*state\s*\|\s*Ready\s*\|\s*Stalled\s*\|\s*Argo CD\s*\|\s*kstatus\s*\|$/m,
  );
  expect(start, "README has the health mapping table").toBeGreaterThan(0);
  return readme
    .slice(start)
    .split("\n\n")[0]!
    .split("\n")
    .slice(2)
    .filter((l) => l.startsWith("|"))
    .map((l) =>
      l
        .split("|")
        .slice(1, -1)
        .map((c) => c.trim()),
    );
}

describe("health as Argo CD and kstatus read the status the reconciler builds", () => {
  const rows: string[][] = [];
  for (const [situation, setup] of SCENARIOS)
    it(situation, async () => {
      const w = world();
      await setup(w);
      const c = w.connector;
      const cond = (type: string) => c.status?.conditions?.find((x) => x.type === type);
      const stalled = cond("Stalled");
      const row = [
        situation,
        c.status?.state ?? "-",
        `${cond("Ready")?.status ?? "-"} (${cond("Ready")?.reason ?? "-"})`,
        stalled ? `True (${stalled.reason})` : "-",
        runHealth(c).status,
        kstatus(c),
      ];
      rows.push(row);
      // The secret's value never reaches status.
      expect(JSON.stringify(c.status ?? {})).not.toContain("t0k3n-value");
    });

  it("hard failures are Degraded and Failed; passing trouble is neither; the README says so", () => {
    const by = Object.fromEntries(rows.map((r) => [r[0], r]));
    for (const hard of [
      "breaker open: probes failed 3 times in a row",
      "credentials refused by the provider",
      "secret deleted in Vault",
      "invalid spec (config fails the type's schema)",
    ]) {
      expect(by[hard]![4], hard).toBe("Degraded");
      expect(by[hard]![5], hard).toBe("Failed");
    }
    for (const blip of [
      "degraded: one probe failed, breaker closed",
      "Vault sealed while active (last good state holds)",
    ]) {
      expect(by[blip]![4], blip).toBe("Healthy");
      expect(by[blip]![5], blip).toBe("Current");
    }
    expect(by["disabled"]![4]).toBe("Suspended");
    expect(by["a new generation not yet observed"]![4]).toBe("Progressing");
    expect(readmeTable()).toEqual(rows.map((r) => r.map((c) => c.replace(/\|/g, "\\|"))));
  });
});
