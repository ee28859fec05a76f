// The controller, in this process, against the test control plane and database: its log
// lines are kept (for assertions and secret scans), its probe servers listen on random
// loopback ports, and stopping it twice (the test, then its world) stops it once.
import { loadConfig } from "../../controller/src/config.ts";
import { startController, type Running } from "../../controller/src/main.ts";
import { createLogger } from "../../controller/src/observability/logger.ts";
import type { ControlPlane } from "./controlPlane.ts";

export interface TestController extends Running {
  logLines: string[];
}

export async function startTestController(
  cp: ControlPlane,
  databaseUrl: string,
  extraArgs: string[] = [],
  logLines: string[] = [],
): Promise<TestController> {
  const config = loadConfig([
    "--kubeconfig",
    cp.kubeconfigPath,
    "--database-url",
    databaseUrl,
    "--metrics-bind-address",
    "127.0.0.1:0",
    "--health-probe-bind-address",
    "127.0.0.1:0",
    "--log-level",
    "debug",
    ...extraArgs,
  ]);
  const destination = {
    write: (line: string) => void logLines.push(line),
  } as unknown as NodeJS.WritableStream;
  const log = createLogger({ level: config.logLevel, destination });
  // In a test process, losing leadership must not exit the test runner.
  const running = await startController(config, log, {
    onLostLeadership: () => log.error({}, "lost leadership"),
  });
  await running.leading;
  const stop = running.stop.bind(running);
  let stopped: Promise<void> | undefined;
  return Object.assign(running, { logLines, stop: () => (stopped ??= stop()) });
}
