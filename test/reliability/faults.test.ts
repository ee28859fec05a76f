// Faults survived: kube-apiserver restarted mid-batch, PostgreSQL stopped during a batch
// and started again, the controller SIGKILLed mid-reconcile and restarted, and the leader
// of two replicas killed. The controller runs as a real separate process against a real
// kube-apiserver + etcd and a real PostgreSQL server; every scenario ends with the same
// invariants (invariants.ts). (etcd compaction with the watch cache off, so that a resumed
// watch meets the compaction in etcd itself: watch-gone.test.ts.)
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Connector } from "../../controller/src/api/types.ts";
import type { ControlPlane } from "../support/controlPlane.ts";
import type { ControllerProcess } from "../support/controllerProcess.ts";
import { startHttpTarget, type HttpTarget } from "../support/httpTarget.ts";
import { untilRefused } from "../support/net.ts";
import type { PersistentPostgres } from "../support/postgres.ts";
import { eventually, sleep } from "../support/wait.ts";
import { startWorld, type World as TestWorld } from "../support/world.ts";
import {
  compactEtcd,
  createAll,
  FULL,
  httpConnector,
  Kube,
  kindFor,
  size,
  World,
  type Kind,
  SCENARIO_TIMEOUT,
} from "./harness.ts";
import { checkInvariants, describeReport } from "./invariants.ts";
import { Tally, type ScenarioRecord } from "./tally.ts";

let testWorld: TestWorld<PersistentPostgres>;
let cp: ControlPlane;
let db: PersistentPostgres;
let target: HttpTarget;
/** Answers after 1.5 s: a reconcile killed during its probe has its row but not its status. */
let slow: HttpTarget;
let kube: Kube;
let sql: pg.Pool;
const tally = new Tally("faults");

beforeAll(async () => {
  testWorld = await startWorld({ target: true, persistentDatabase: true });
  ({ cp, db, sql, target } = testWorld);
  slow = await startHttpTarget({ delayMs: 1500 });
  testWorld.defer("the slow target", () => slow.stop());
  kube = new Kube(cp.kubeconfigPath);
}, 300_000);

afterAll(async () => {
  await testWorld?.stop();
});

/** One scenario's world and processes. */
class Scenario {
  readonly world = new World();
  readonly procs: ControllerProcess[] = [];
  readonly ns: string;
  readonly record: ScenarioRecord;
  readonly targetUrl: string;
  #next = 0;

  constructor(ns: string, record: ScenarioRecord, targetUrl = target.url) {
    this.ns = ns;
    this.record = record;
    this.targetUrl = targetUrl;
    this.world.namespaces.add(ns);
  }

  controller(name: string, args: string[] = []): ControllerProcess {
    const p = testWorld.spawnController({
      name,
      namespaces: [this.ns],
      args: ["--failure-retry", "2s", ...args],
    });
    this.procs.push(p);
    return p;
  }

  docs(n: number, kind?: Kind): { doc: Connector; kind: Kind }[] {
    return Array.from({ length: n }, () => {
      const i = this.#next++;
      const k = kind ?? kindFor(i);
      return { doc: httpConnector(this.ns, `c${i}`, this.targetUrl, k), kind: k };
    });
  }

  async create(items: { doc: Connector; kind: Kind }[], parallel = 4): Promise<Connector[]> {
    const created = await createAll(
      kube,
      items.map((x) => x.doc),
      parallel,
    );
    created.forEach((c, i) => this.world.expectKind(c, items[i]!.kind));
    return created;
  }

  /** Until each of these Connectors shows what the world expects of it. */
  async converged(cs: Connector[], timeoutMs = 60_000): Promise<void> {
    await eventually(
      async () => {
        for (const c of cs) {
          const now = await kube.get(c.metadata.namespace!, c.metadata.name);
          const e = this.world.get(c.metadata.uid!);
          if (!now || !e || now.status?.observedGeneration !== now.metadata.generation) return false;
          const want = e.want === "stalled" ? "Stalled" : "Ready";
          if (now.status?.conditions?.find((x) => x.type === want)?.status !== "True") return false;
        }
        return true;
      },
      `${cs.length} Connectors to converge`,
      timeoutMs,
    );
  }

  async delete(c: Connector, hadRow: boolean): Promise<void> {
    await kube.delete(c.metadata.namespace!, c.metadata.name);
    this.world.deleted(c.metadata.uid!, hadRow);
  }

  /** Changes a header value: a new generation that must be applied. */
  async touch(c: Connector, value: string): Promise<Connector> {
    return kube.update(c.metadata.namespace!, c.metadata.name, (x) => {
      x.spec.config = {
        ...x.spec.config,
        headers: { ...(x.spec.config?.headers as Record<string, string>), "X-Source": value },
      };
    });
  }

  /** Connectors whose row is written but whose status does not name it yet: cut mid-reconcile. */
  async cutMidReconcile(): Promise<number> {
    const live = await sql.query<{ uid: string; id: string }>(
      "select uid, id from connector_instances where namespace = $1 and deleted_at is null",
      [this.ns],
    );
    const cs = (await kube.listConnectors()).filter((c) => c.metadata.namespace === this.ns);
    const rowOf = new Map(live.rows.map((r) => [r.uid, r.id]));
    return cs.filter((c) => rowOf.has(c.metadata.uid!) && c.status?.instanceId !== rowOf.get(c.metadata.uid!))
      .length;
  }

  /** The invariants; records violations and secret bytes, fails the test on any. */
  async invariants(timeoutMs = 120_000): Promise<void> {
    const report = await checkInvariants(
      { kube, sql, world: this.world, logs: () => this.procs.flatMap((p) => p.raw) },
      { timeoutMs },
    );
    this.record.violations += report.violations.length;
    this.record.secretBytes += report.secretBytes;
    console.log(
      `[${this.record.scenario}] settled in ${report.settledMs} ms; checked ${JSON.stringify(report.checked)}`,
    );
    expect(report.violations.length + report.secretBytes, describeReport(report)).toBe(0);
  }
}

const ready = (p: ControllerProcess) => p.started();

describe("kube-apiserver restarted mid-batch", () => {
  it(
    "keeps every Connector and converges after each restart",
    async () => {
      await tally.scenario("faults", "kube-apiserver restart mid-batch", async (r) => {
        const s = new Scenario("f-apiserver", r);
        await kube.ensureNamespace(s.ns);
        const ctl = s.controller("apiserver-ctl");
        await ready(ctl);
        // Working Connectors first; then each round kills and restarts the API server while a
        // batch is being applied and the earlier Connectors are changed and deleted.
        const all: Connector[] = await s.create(s.docs(size(8, 20)));
        const rounds = size(1, 4);
        const perRound = size(12, 40);
        for (let round = 0; round < rounds; round++) {
          const live = all.filter((c) => s.world.get(c.metadata.uid!)?.want !== "deleted");
          await s.converged(live);
          const batch = s.docs(perRound);
          const first = await s.create(batch.slice(0, perRound / 4));
          // The API server killed and started again; while it is down, etcd's history is
          // compacted past the controller's resourceVersion, so its watch resumes with 410.
          const restart = cp.restartApiServer();
          await untilRefused(cp.server);
          await sleep(1000); // requests still in flight in the old process finish first
          await compactEtcd(cp.etcdUrl);
          r.faults += 2;
          const changes = (async () => {
            for (const [i, c] of live.entries()) {
              const e = s.world.get(c.metadata.uid!)!;
              if (i % 3 === round % 3) await s.delete(c, e.want !== "stalled");
              else if (i % 3 === (round + 1) % 3 && e.want === "ready") await s.touch(c, `round-${round}`);
            }
          })();
          const rest = await s.create(batch.slice(perRound / 4));
          await Promise.all([restart, changes]);
          all.push(...first, ...rest);
        }
        expect(ctl.alive, "the controller kept running").toBe(true);
        await s.invariants();
        const gone = await ctl.metric(
          `connector_controller_watch_restarts_total{informer="connectors/${s.ns}",reason="gone"}`,
        );
        const lists = await ctl.metric(`connector_controller_relists_total{informer="connectors/${s.ns}"}`);
        r.note = `${gone} x 410 Gone, ${lists} lists`;
        expect(gone, "a 410 Gone after compaction + restart").toBeGreaterThanOrEqual(1);
        expect(lists).toBeGreaterThan(gone > 0 ? 1 : 0);
      });
    },
    SCENARIO_TIMEOUT,
  );
});

describe("PostgreSQL stopped during a batch and started again", () => {
  it(
    "retries with backoff, shows Synced=False while the database is away, converges after, without a controller restart",
    async () => {
      await tally.scenario("faults", "PostgreSQL stopped mid-batch", async (r) => {
        const s = new Scenario("f-postgres", r);
        await kube.ensureNamespace(s.ns);
        const ctl = s.controller("postgres-ctl");
        await ready(ctl);
        const before = await s.create(s.docs(size(8, 20)));
        await s.converged(before);

        const rounds = size(1, 3);
        for (let round = 0; round < rounds; round++) {
          await db.stopServer(round % 2 === 0 ? "immediate" : "fast");
          r.faults++;
          const during = await s.create(s.docs(size(10, 30), "ready"));
          // And changes to Connectors that were working: deletions, new generations.
          const working = before.filter((c) => s.world.get(c.metadata.uid!)?.want === "ready");
          const [gone, changed] = [
            working.slice(round * 2, round * 2 + 1),
            working.slice(-1 - round, working.length - round),
          ];
          for (const c of gone) await s.delete(c, true);
          for (const c of changed) await s.touch(c, `outage-${round}`);
          // While the database is away: the controller stays up and says so in status.
          await eventually(
            async () => {
              const c = await kube.get(s.ns, during[0]!.metadata.name);
              return c?.status?.conditions?.some((x) => x.type === "Synced" && x.status === "False") ?? false;
            },
            "Synced=False while PostgreSQL is down",
            60_000,
          );
          const stale = await kube.get(s.ns, during[0]!.metadata.name);
          const synced = stale!.status!.conditions!.find((x) => x.type === "Synced")!;
          expect(synced.message).toMatch(/ECONNREFUSED|connect|terminat|database|Connection/i);
          // A working connector keeps its Ready while the database is briefly away.
          const old = working.find((c) => !gone.includes(c) && !changed.includes(c))!;
          const oldNow = await kube.get(s.ns, old.metadata.name);
          expect(oldNow?.status?.conditions?.find((x) => x.type === "Ready")?.status).toBe("True");
          await sleep(size(4000, 8000));
          expect(ctl.alive, "the controller survives the outage").toBe(true);
          await db.startServer();
          await s.converged(during, 120_000);
        }
        expect(ctl.alive).toBe(true);
        expect(ctl.count("reconcile will be retried")).toBeGreaterThan(0);
        await s.invariants();
      });
    },
    SCENARIO_TIMEOUT,
  );
});

describe("the controller SIGKILLed mid-reconcile", () => {
  it(
    "loses nothing and duplicates nothing across a kill and a restart",
    async () => {
      await tally.scenario("faults", "controller SIGKILL mid-reconcile", async (r) => {
        const s = new Scenario("f-sigkill", r, slow.url);
        let cut = 0;
        await kube.ensureNamespace(s.ns);
        const rounds = size(1, 5);
        for (let round = 0; round < rounds; round++) {
          const ctl = s.controller(`sigkill-ctl-${round}`, ["--concurrency", "4"]);
          await ready(ctl);
          const batch = s.docs(size(16, 50));
          const created = s.create(batch, 8);
          // Kill it once a few instances exist and the rest are in flight.
          await eventually(() => ctl.count("instance created") >= 3, "the first instances", 60_000);
          await ctl.kill("SIGKILL");
          r.faults++;
          cut += await s.cutMidReconcile();
          const docs = await created;
          const again = s.controller(`sigkill-ctl-${round}-again`, ["--concurrency", "4"]);
          await ready(again);
          await s.converged(docs, 90_000);
          // Deletions in flight when it is killed again.
          const victims = docs.filter((_, i) => i % 2 === 0);
          await Promise.all(
            victims.map((c) => s.delete(c, s.world.get(c.metadata.uid!)!.want !== "stalled")),
          );
          await eventually(
            () => again.count("instance soft-deleted") + again.count("instance orphaned") >= 1,
            "the first deletion",
            60_000,
          );
          await again.kill("SIGKILL");
          r.faults++;
        }
        const last = s.controller("sigkill-ctl-final");
        await ready(last);
        r.note = `${cut} reconciles cut between row and status`;
        // Evidence that the kills landed mid-reconcile, not between reconciles.
        expect(cut).toBeGreaterThan(0);
        await s.invariants();
      });
    },
    SCENARIO_TIMEOUT,
  );
});

describe("two replicas with leader election, the leader killed", () => {
  it(
    "hands over to the standby, which finishes the batch",
    async () => {
      await tally.scenario("faults", "leader SIGKILL, standby takes over", async (r) => {
        const s = new Scenario("f-leader", r, slow.url);
        await kube.ensureNamespace(s.ns);
        const le = [
          "--leader-elect",
          "--leader-election-namespace",
          s.ns,
          "--leader-election-id",
          "rel-leader",
        ];
        const a = s.controller("replica-a", le);
        await ready(a);
        const b = s.controller("replica-b", le);
        await eventually(() => b.said("waiting to lead"), "replica-b to stand by", 60_000);
        const batch = s.docs(size(16, 50));
        const created = s.create(batch, 8);
        await eventually(() => a.count("instance created") >= 3, "the leader's first instances", 60_000);
        const killedAt = Date.now();
        await a.kill("SIGKILL");
        r.faults++;
        const cut = await s.cutMidReconcile();
        const docs = await created;
        await eventually(() => b.said("controller started"), "replica-b to take over", 60_000);
        r.note = `handover ${Math.round((Date.now() - killedAt) / 100) / 10} s, ${cut} reconciles cut`;
        await s.converged(docs, 90_000);
        for (const c of docs.filter((_, i) => i % 4 === 0))
          await s.delete(c, s.world.get(c.metadata.uid!)!.want !== "stalled");
        await s.create(s.docs(size(4, 10)));
        if (FULL) {
          // And back: a new standby, the second leader killed too.
          const c = s.controller("replica-c", le);
          await eventually(() => c.said("waiting to lead"), "replica-c to stand by", 60_000);
          await b.kill("SIGKILL");
          r.faults++;
          await eventually(() => c.said("controller started"), "replica-c to take over", 60_000);
          await s.create(s.docs(10));
        }
        await s.invariants();
      });
    },
    SCENARIO_TIMEOUT,
  );
});
