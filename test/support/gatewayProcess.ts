// The gateway as a separate process (node controller/src/gateway.ts, or the compiled
// dist/controller/src/gateway.js), started the way an operator starts a replica: for the
// reliability suite, which SIGKILLs replicas, and for bench/gateway.ts, whose figures must be
// the gateway's own. Built on ControllerProcess (its log read as it comes); `api` is the
// address the replica logged in "gateway started".
import { join } from "node:path";
import { projectRoot } from "../../controller/src/api/paths.ts";
import { ControllerProcess, type ControllerProcessOptions } from "./controllerProcess.ts";
import { eventually } from "./wait.ts";

export interface GatewayProcessOptions extends Omit<ControllerProcessOptions, "entry" | "onLine"> {
  /** "ts" runs controller/src/gateway.ts; "dist" the compiled one (make build first). */
  build?: "ts" | "dist";
}

export class GatewayProcess extends ControllerProcess {
  /** Filled from its log by the line reader, which runs before `this` exists. */
  readonly #started: { api?: string };

  constructor(o: GatewayProcessOptions) {
    const entry =
      o.build === "dist"
        ? join(projectRoot, "dist/controller/src/gateway.js")
        : join(projectRoot, "controller/src/gateway.ts");
    const started: { api?: string } = {};
    super({
      ...o,
      name: o.name ?? "gateway",
      entry,
      args: ["--bind-address", "127.0.0.1:0", ...(o.args ?? [])],
      onLine: (line) => {
        if (line.msg === "gateway started" && typeof line.api === "string") started.api = line.api;
      },
    });
    this.#started = started;
  }

  /** http://host:port of the API, once the replica has started. */
  get url(): string {
    if (!this.#started.api) throw new Error(`${this.name} has not said where its API listens yet`);
    return `http://${this.#started.api}`;
  }

  /** Resolves once the replica serves its API (its informers synced, its worker running). */
  async ready(timeoutMs = 90_000): Promise<this> {
    await eventually(() => this.#started.api, `${this.name} to start (gateway started)`, {
      timeoutMs,
      intervalMs: 50,
      giveUpIf: () => (this.alive ? undefined : `it exited; its last lines:\n${this.tail()}`),
    });
    return this;
  }
}
