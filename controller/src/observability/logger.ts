import { pino, type Logger as PinoLogger } from "pino";

// Secret values never reach a log line: anything under these keys is censored, wherever
// a careless `log.info({ credentials })` puts it.
export const REDACT_PATHS = [
  "password",
  "token",
  "secret",
  "credentials.values",
  "*.password",
  "*.token",
  "*.secret",
  "*.values",
  "*.clientToken",
  "*.client_token",
  "*.authorization",
  "*.Authorization",
  "*.headers",
  "*.*.password",
  "*.*.token",
  "*.*.headers",
  'headers["x-vault-token"]',
];

export type Logger = PinoLogger;

export function createLogger(opts: { level?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  return pino(
    {
      name: "connector-controller",
      level: opts.level ?? "info",
      redact: { paths: REDACT_PATHS, censor: "[REDACTED]" },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    opts.destination ?? process.stdout,
  );
}
