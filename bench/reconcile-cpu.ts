// The reconciler's own CPU per Connector, without the servers: N http Connectors reconciled
// in-process against the project's in-memory ports (store, writer, events, a prober that
// answers at once), first cold (insert, probe, status) and then quiet (nothing changed).
// What is left when the API server, PostgreSQL and the network are taken away.
//
//   node bench/reconcile-cpu.ts [--n 10000] [--cpu-prof]   (with node --cpu-prof for a profile)
import { parseArgs } from "node:util";
import { join } from "node:path";
import type { Connector } from "../controller/src/api/types.ts";
import { projectRoot } from "../controller/src/api/paths.ts";
import { ConfigSchemaCache } from "../controller/src/catalog/configSchemas.ts";
import { loadFileCatalog } from "../controller/src/catalog/fileCatalog.ts";
import { Reconciler } from "../controller/src/reconcile/reconciler.ts";
import { httpConnector } from "../test/support/connectors.ts";
import {
  MemoryBreakerStore,
  MemoryEvents,
  MemoryStore,
  MemoryWriter,
  silentLogger,
} from "../test/support/memory.ts";
import { CircuitBreakers } from "../controller/src/reconcile/breaker.ts";

const { values } = parseArgs({ options: { n: { type: "string", default: "10000" } } });
const n = Number(values.n);

/** The test store snapshots every row for rollback, O(N) a transaction; nothing rolls back here. */
class BenchStore extends MemoryStore {
  override async transaction<T>(fn: (tx: MemoryStore) => Promise<T>): Promise<T> {
    return fn(this);
  }
}

const store = new BenchStore();
const writer = new MemoryWriter();
const reconciler = new Reconciler({
  catalog: loadFileCatalog([
    join(projectRoot, "examples/types"),
    join(projectRoot, "examples/policy-templates"),
  ]),
  schemas: new ConfigSchemaCache(),
  store,
  writer,
  events: new MemoryEvents(),
  clock: { now: () => new Date() },
  breakers: new CircuitBreakers(new MemoryBreakerStore()),
  enabledFeatures: new Set(),
  prober: { probe: async () => ({ ok: true, latencyMs: 1 }) },
});

const connectors: Connector[] = Array.from({ length: n }, (_, i) => {
  const c = httpConnector(`team-${i % 20}`, `hook-${i}`, "http://127.0.0.1:1");
  c.metadata.uid = `uid-${i}`;
  c.metadata.generation = 1;
  c.metadata.resourceVersion = "1";
  return c;
});

async function pass(label: string): Promise<void> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    // As the controller hands the reconciler a copy of the cached object; the memory writer
    // applies status and finalizer to it, as the API server's answer would to the cache.
    const c = structuredClone(connectors[i]!);
    await reconciler.reconcile({ connector: c, reconcileId: "r", log: silentLogger });
    connectors[i] = c;
  }
  const cpu = process.cpuUsage(cpu0);
  const ms = performance.now() - t0;
  const cpuMs = (cpu.user + cpu.system) / 1000;
  console.log(
    `| ${label} | ${n.toLocaleString("en")} | ${ms.toFixed(0)} ms | ${((cpuMs * 1000) / n).toFixed(0)} µs |`,
  );
}

console.log("| pass | Connectors | wall | CPU per Connector |\n| --- | --- | --- | --- |");
await pass("cold");
await pass("quiet");
console.log(
  `\nstatus writes ${writer.statusWrites.length}, finalizers added ${writer.finalizerAdds}, instance rows ${store.rows.length}`,
);
