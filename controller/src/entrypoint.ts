// A process's main, the same for the controller and the gateway: --help and --version
// answered (exit 0), the flags checked (exit 2 naming the flag, then the usage), start-up
// (exit 1 with the reason in the log), then a stop on the first SIGTERM or SIGINT.
import { stopOnSignals } from "./api/runnable.ts";
import { ConfigError, informationRequested } from "./config.ts";
import type { Logger } from "./observability/logger.ts";

export interface ProcessSpec<C> {
  program: string;
  usage: () => string;
  load: (argv: string[]) => C;
  logger: (config: C) => Logger;
  start: (config: C, log: Logger) => Promise<{ stop(): Promise<void> }>;
}

async function run<C>(spec: ProcessSpec<C>, argv: string[]): Promise<void> {
  const answer = informationRequested(argv, spec.program, spec.usage);
  if (answer !== undefined) {
    process.stdout.write(answer);
    return;
  }
  let config: C;
  try {
    config = spec.load(argv);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${spec.program}: ${err.message}\n\n${spec.usage()}`);
    process.exit(2);
  }
  const log = spec.logger(config);
  let running: { stop(): Promise<void> };
  try {
    running = await spec.start(config, log);
  } catch (err) {
    log.fatal({ err }, "start-up failed");
    process.exit(1);
  }
  stopOnSignals(log, () => running.stop());
}

/** Runs the process on this process's arguments; anything unexpected ends it with exit 1. */
export function runProcess<C>(spec: ProcessSpec<C>): void {
  run(spec, process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${spec.program}: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  });
}
