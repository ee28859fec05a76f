// The lifecycle contract every long-running part of a process follows (controller-runtime's
// Runnable): start until a signal aborts, say when ready. kube/runtime/manager.ts runs them.
import type { Server } from "node:net";

export interface Runnable {
  readonly name: string;
  /** Runs until `signal` aborts and resolves once everything it started has stopped. */
  start(signal: AbortSignal): Promise<void>;
  /** Resolves when the runnable is ready to be depended on (caches synced, lock held, listening). */
  ready?(): Promise<void>;
}

/** Resolves when `signal` aborts. */
export function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/** A network server as a Runnable: listening when ready, closed when stopped. */
export function serverRunnable(
  name: string,
  listen: () => Promise<Server>,
): Runnable & { address(): string | undefined } {
  let server: Server | undefined;
  let listening: Promise<void> | undefined;
  return {
    name,
    async start(signal) {
      listening = listen().then((s) => void (server = s));
      await listening;
      await aborted(signal);
      await new Promise((resolve) => server!.close(resolve));
    },
    ready: () => listening ?? Promise.reject(new Error(`${name} has not been started`)),
    address() {
      const a = server?.address();
      return a && typeof a === "object" ? `${a.address}:${a.port}` : undefined;
    },
  };
}

/** A process's end: on the first SIGTERM or SIGINT, stop, then exit 0 (1 when stopping failed). */
export function stopOnSignals(
  log: { info(o: object, m: string): void; error(o: object, m: string): void },
  stop: () => Promise<void>,
): void {
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}
