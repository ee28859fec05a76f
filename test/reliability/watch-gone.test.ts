// etcd compaction so that watch resumption gets 410 Gone. The API server runs without its
// watch cache (--watch-cache=false), so a resumed watch reads etcd itself: after a physical
// compaction past the informer's resourceVersion, the resumption is refused with 410, and
// the informer must relist. The controller's watch is made to resume by its stall timeout
// (3 s of silence). Proof: connector_controller_watch_restarts_total{reason="gone"} and
// connector_controller_relists_total go up, and Connectors applied, changed and deleted
// afterwards are reconciled. (With the watch cache on, 410 after a compaction and an API
// server restart is part of faults.test.ts.)
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Connector } from "../../controller/src/api/types.ts";
import type { ControlPlane } from "../support/controlPlane.ts";
import type { ControllerProcess } from "../support/controllerProcess.ts";
import { eventually } from "../support/wait.ts";
import { startWorld, type World as TestWorld } from "../support/world.ts";
import {
  churn,
  compactEtcd,
  createAll,
  httpConnector,
  kindFor,
  Kube,
  size,
  World,
  SCENARIO_TIMEOUT,
} from "./harness.ts";
import { checkInvariants, describeReport } from "./invariants.ts";
import { Tally } from "./tally.ts";

let testWorld: TestWorld;
let cp: ControlPlane;
let kube: Kube;
let sql: pg.Pool;
const tally = new Tally("watch-gone");
const NS = "f-gone";

beforeAll(async () => {
  testWorld = await startWorld({ target: true, controlPlane: { apiServerArgs: ["--watch-cache=false"] } });
  ({ cp, sql } = testWorld);
  kube = new Kube(cp.kubeconfigPath);
}, 300_000);

afterAll(async () => {
  await testWorld?.stop();
});

describe("etcd compacted past the controller's resourceVersion", () => {
  it(
    "gets 410 Gone on watch resumption, relists, and reconciles what comes after",
    async () => {
      await tally.scenario("faults", "etcd compaction => 410 Gone => relist", async (r) => {
        const world = new World();
        world.namespaces.add(NS);
        await kube.ensureNamespace(NS);
        const ctl: ControllerProcess = testWorld.spawnController({
          name: "gone-ctl",
          namespaces: [NS],
          args: ["--watch-stall-timeout", "3s"],
        });
        await ctl.started();
        const informer = `connectors/${NS}`;
        const gone = () =>
          ctl.metric(`connector_controller_watch_restarts_total{informer="${informer}",reason="gone"}`);
        const relists = () => ctl.metric(`connector_controller_relists_total{informer="${informer}"}`);

        let n = 0;
        const batch = async (count: number) => {
          const kinds = Array.from({ length: count }, () => kindFor(n));
          const docs = kinds.map((k) => httpConnector(NS, `g${n++}`, testWorld.target.url, k));
          const created = await createAll(kube, docs);
          created.forEach((c, i) => world.expectKind(c, kinds[i]!));
          return created;
        };
        let all: Connector[] = await batch(size(6, 16));

        const invariants = async () => {
          const report = await checkInvariants(
            { kube, sql, world, logs: () => ctl.raw },
            { timeoutMs: 90_000 },
          );
          r.violations += report.violations.length;
          r.secretBytes += report.secretBytes;
          expect(report.violations.length + report.secretBytes, describeReport(report)).toBe(0);
        };
        const rounds = size(2, 5);
        for (let round = 0; round < rounds; round++) {
          // Quiet first: a Connector event after the compaction would move the informer's
          // resourceVersion past it, and the resumption would (rightly) succeed.
          await invariants();
          const [gone0, relists0] = [await gone(), await relists()];
          await churn(kube, "f-gone-churn", 20);
          const revision = await compactEtcd(cp.etcdUrl);
          r.faults++;
          await eventually(
            async () => (await gone()) > gone0,
            `a 410 Gone after compacting to ${revision}`,
            60_000,
          );
          await eventually(async () => (await relists()) > relists0, "a relist", 30_000);
          expect(ctl.said("resourceVersion too old (410 Gone); relisting")).toBe(true);
          // What comes after the relist is reconciled: new, changed and deleted Connectors.
          const fresh = await batch(size(4, 8));
          const victim = all.find((c) => world.get(c.metadata.uid!)?.want === "ready");
          if (victim) {
            await eventually(
              async () =>
                (await kube.get(NS, victim.metadata.name))?.status?.conditions?.some(
                  (c) => c.type === "Ready" && c.status === "True",
                ) ?? false,
              `${victim.metadata.name} Ready`,
              60_000,
            );
            await kube.delete(NS, victim.metadata.name);
            world.deleted(victim.metadata.uid!, true);
          }
          const changed = all.find((c) => world.get(c.metadata.uid!)?.want === "ready");
          if (changed)
            await kube.update(NS, changed.metadata.name, (c) => {
              c.spec.config = { ...c.spec.config, method: round % 2 ? "PUT" : "PATCH" };
            });
          all = [...all, ...fresh];
        }
        r.note = `${await gone()} x 410, ${await relists()} lists`;
        await invariants();
      });
    },
    SCENARIO_TIMEOUT,
  );
});
