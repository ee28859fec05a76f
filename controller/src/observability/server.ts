// /metrics, /healthz and /readyz. Liveness means the event loop still turns; readiness
// means the caches synced and the database answers (a standby replica is ready too).
import { createServer, type Server } from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";
import type { Registry } from "prom-client";

export interface HealthChecks {
  ready(): Promise<{ ok: boolean; checks: Record<string, string> }>;
}

export interface ProbeServerOptions {
  host: string;
  port: number;
  registry?: Registry;
  health?: HealthChecks;
  /** Event-loop delay (p99 over the last window) past which /healthz fails. */
  maxEventLoopDelayMs?: number;
}

export async function startProbeServer(opts: ProbeServerOptions): Promise<Server> {
  const delay = monitorEventLoopDelay({ resolution: 20 });
  delay.enable();
  let lastP99 = 0;
  const window = setInterval(() => {
    lastP99 = delay.percentile(99) / 1e6;
    delay.reset();
  }, 5000);
  window.unref();
  const maxDelay = opts.maxEventLoopDelayMs ?? 5000;

  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const send = (code: number, body: string, type = "text/plain; charset=utf-8") => {
      res.writeHead(code, { "content-type": type });
      res.end(body);
    };
    if (path === "/metrics" && opts.registry) {
      opts.registry.metrics().then(
        (text) => send(200, text, opts.registry!.contentType),
        (err: unknown) => send(500, `metrics failed: ${(err as Error).message}\n`),
      );
    } else if (path === "/healthz" || path === "/livez") {
      if (lastP99 > maxDelay) send(500, `event loop delay p99 ${lastP99.toFixed(0)} ms\n`);
      else send(200, "ok\n");
    } else if (path === "/readyz" && opts.health) {
      opts.health.ready().then(
        (r) =>
          send(
            r.ok ? 200 : 503,
            Object.entries(r.checks)
              .map(([k, v]) => `[${v === "ok" ? "+" : "-"}]${k} ${v}`)
              .join("\n") + "\n",
          ),
        (err: unknown) => send(503, `readiness check failed: ${(err as Error).message}\n`),
      );
    } else {
      send(404, "not found\n");
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  server.on("close", () => {
    clearInterval(window);
    delay.disable();
  });
  return server;
}
