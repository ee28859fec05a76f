// A test's world in one line: a control plane with the CRDs and the example catalog, a
// database (and a pool for the test's own queries), and on request a loopback HTTP target,
// a Vault-API server and the controller, in this process or as separate processes. One
// stop() takes it all down in the reverse order of its start, so the controllers go before
// the database and the API server they use, and kube-apiserver before etcd.
//
//   const world = await startWorld({ target: true, controller: ["--concurrency", "4"] });
//   ...
//   await world.stop();
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type pg from "pg";
import { applyCatalog, ensureNamespace } from "./cluster.ts";
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from "./controlPlane.ts";
import { startTestController, type TestController } from "./controller.ts";
import { ControllerProcess, type ControllerProcessOptions } from "./controllerProcess.ts";
import { startHttpTarget, type HttpTarget } from "./httpTarget.ts";
import { startOpenBao, type OpenBao } from "./openbao.ts";
import { openPool, startPostgres, type PersistentPostgres, type TestPostgres } from "./postgres.ts";

export interface WorldOptions {
  controlPlane?: ControlPlaneOptions;
  /** The database is a server of the world's own that the test can stop and start again. */
  persistentDatabase?: boolean;
  /** Apply the example ConnectorTypes and policy templates (default true). */
  catalog?: boolean;
  namespaces?: string[];
  /** A loopback HTTP target for http Connectors to probe. */
  target?: boolean;
  /** A Vault-API server with Kubernetes auth against the control plane. */
  vault?: boolean;
  /** Start the controller in this process, with these extra flags (true: none). */
  controller?: boolean | string[];
}

export interface World<DB extends TestPostgres = TestPostgres> {
  cp: ControlPlane;
  db: DB;
  /** A small pool on the database for the test's own queries. */
  sql: pg.Pool;
  readonly target: HttpTarget;
  readonly bao: OpenBao;
  /** The in-process controller started last. */
  readonly controller: TestController;
  /** Starts a controller in this process (extra flags on top of the test defaults). */
  startController(args?: string[]): Promise<TestController>;
  /** Stops the in-process controller started last. */
  stopController(): Promise<void>;
  /** Starts the controller as a separate process (against this world's cluster and database unless told otherwise). */
  spawnController(o?: Partial<ControllerProcessOptions>): ControllerProcess;
  /** A temp directory, removed at stop(). */
  tempDir(prefix: string): string;
  /** Runs `fn` at stop(), before whatever was started earlier is stopped. */
  defer(what: string, fn: () => Promise<unknown> | unknown): void;
  stop(): Promise<void>;
}

export function startWorld(
  o: WorldOptions & { persistentDatabase: true },
): Promise<World<PersistentPostgres>>;
export function startWorld(o?: WorldOptions): Promise<World>;
export async function startWorld(o: WorldOptions = {}): Promise<World> {
  const stops = new Stops();
  try {
    // Side by side; each one that started is stopped at the end even when another failed.
    const started = await Promise.allSettled([
      startControlPlane(o.controlPlane),
      startPostgres({ persistent: o.persistentDatabase === true }),
      o.target ? startHttpTarget() : undefined,
    ]);
    const cp = stops.adopt("control plane", started[0], (x) => x.stop());
    const db = stops.adopt("database", started[1], (x) => x.stop());
    const target = stops.adopt("target", started[2], (x) => x?.stop());
    if (stops.failures.length) throw stops.failures[0];
    const sql = openPool(db.url, 2);
    stops.defer("pool", () => sql.end());
    const bao = o.vault ? await startOpenBao(cp) : undefined;
    if (bao) stops.defer("vault", () => bao.stop());
    if (o.catalog !== false) await applyCatalog(cp);
    for (const ns of o.namespaces ?? []) await ensureNamespace(cp, ns);

    const inProcess: TestController[] = [];
    const world: World = {
      cp,
      db,
      sql,
      get target() {
        return required(target, "target");
      },
      get bao() {
        return required(bao, "vault");
      },
      get controller() {
        return required(inProcess.at(-1), "controller");
      },
      async startController(args = []) {
        const c = await startTestController(cp, db.url, args);
        inProcess.push(c);
        stops.defer("controller", () => c.stop());
        return c;
      },
      async stopController() {
        await inProcess.at(-1)?.stop();
      },
      spawnController(p = {}) {
        const c = new ControllerProcess({ kubeconfig: cp.kubeconfigPath, databaseUrl: db.url, ...p });
        stops.defer(`controller process ${c.name}`, () => c.kill("SIGKILL"));
        return c;
      },
      tempDir(prefix) {
        const dir = mkdtempSync(join(tmpdir(), prefix));
        stops.defer(dir, () => rmSync(dir, { recursive: true, force: true }));
        return dir;
      },
      defer: (what, fn) => stops.defer(what, fn),
      async stop() {
        const logFile = process.env.CONTROLLER_LOG_FILE;
        if (logFile && inProcess.length)
          writeFileSync(logFile, inProcess.flatMap((c) => c.logLines).join(""));
        await stops.run();
      },
    };
    if (o.controller) await world.startController(o.controller === true ? [] : o.controller);
    return world;
  } catch (err) {
    await stops.run().catch(() => undefined);
    throw err;
  }
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`this world has no ${what}: ask startWorld for one`);
  return value;
}

/** What to stop, in start order; stopped last first, every one even when some fail. */
class Stops {
  readonly #stack: { what: string; fn: () => Promise<unknown> | unknown }[] = [];

  defer(what: string, fn: () => Promise<unknown> | unknown): void {
    this.#stack.push({ what, fn });
  }

  /** Why the starts given to adopt() failed. */
  readonly failures: unknown[] = [];

  /**
   * The value of a start that ran side by side with others, to be stopped with `stop`; a
   * failed one is kept in `failures` (the caller throws once every start is adopted).
   */
  adopt<T>(what: string, r: PromiseSettledResult<T>, stop: (x: T) => unknown): T {
    if (r.status === "fulfilled") {
      this.defer(what, () => stop(r.value));
      return r.value;
    }
    this.failures.push(r.reason);
    return undefined as T;
  }

  async run(): Promise<void> {
    const errors: Error[] = [];
    for (let s = this.#stack.pop(); s; s = this.#stack.pop()) {
      try {
        await s.fn();
      } catch (err) {
        errors.push(new Error(`stopping ${s.what}: ${(err as Error).message}`, { cause: err }));
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, errors.map((e) => e.message).join("; "));
  }
}
