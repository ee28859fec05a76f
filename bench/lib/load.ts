// A small HTTP load generator (undici), run as a process of its own so that its CPU is not the
// gateway's: `concurrency` callers in a closed loop for `seconds`, or, with --rate, requests
// started at a fixed rate (open loop: a slow answer does not slow the sending down). Requests
// go round-robin to the --urls. Prints one JSON line: counts by status, the rate achieved and
// latency percentiles in milliseconds.
//
//   node bench/lib/load.ts --urls http://a,http://b --path /v1/... [--method POST] [--body JSON]
//        [--header 'authorization: Bearer x'] [--concurrency 16] [--seconds 10] [--warmup 2] [--rate 500]
import { parseArgs } from "node:util";
import { Agent, request } from "undici";

const { values } = parseArgs({
  options: {
    urls: { type: "string" },
    path: { type: "string", default: "/" },
    method: { type: "string", default: "GET" },
    body: { type: "string" },
    header: { type: "string", multiple: true, default: [] },
    concurrency: { type: "string", default: "16" },
    seconds: { type: "string", default: "10" },
    warmup: { type: "string", default: "2" },
    rate: { type: "string" },
  },
});

const urls = (values.urls ?? "").split(",").filter(Boolean);
if (!urls.length) throw new Error("--urls: at least one");
const concurrency = Number(values.concurrency);
const headers: Record<string, string> = {};
for (const h of values.header!) {
  const i = h.indexOf(":");
  headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
}
if (values.body !== undefined) headers["content-type"] ??= "application/json";
const dispatcher = new Agent({
  connections: Math.max(concurrency, 1),
  pipelining: 1,
  keepAliveTimeout: 60_000,
});

let next = 0;
async function once(): Promise<{ status: number; ms: number }> {
  const origin = urls[next++ % urls.length]!;
  const start = performance.now();
  try {
    const res = await request(`${origin}${values.path}`, {
      method: values.method as "GET",
      headers,
      ...(values.body !== undefined ? { body: values.body } : {}),
      dispatcher,
    });
    await res.body.dump();
    return { status: res.statusCode, ms: performance.now() - start };
  } catch {
    return { status: 0, ms: performance.now() - start };
  }
}

interface Tally {
  statuses: Record<string, number>;
  ms: number[];
}

async function closedLoop(seconds: number, t?: Tally): Promise<void> {
  const until = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const r = await once();
        if (t) {
          t.statuses[r.status] = (t.statuses[r.status] ?? 0) + 1;
          t.ms.push(r.ms);
        }
      }
    }),
  );
}

async function openLoop(seconds: number, rate: number, t?: Tally): Promise<void> {
  const start = performance.now();
  const total = Math.floor(seconds * rate);
  const pending: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    pending.push(
      once().then((r) => {
        if (t) {
          t.statuses[r.status] = (t.statuses[r.status] ?? 0) + 1;
          t.ms.push(r.ms);
        }
      }),
    );
  }
  await Promise.all(pending);
}

function pct(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const seconds = Number(values.seconds);
const rate = values.rate === undefined ? undefined : Number(values.rate);
const run = (s: number, t?: Tally) => (rate ? openLoop(s, rate, t) : closedLoop(s, t));
await run(Number(values.warmup));
const t: Tally = { statuses: {}, ms: [] };
const started = performance.now();
await run(seconds, t);
const elapsed = (performance.now() - started) / 1000;
const sorted = t.ms.sort((a, b) => a - b);
process.stdout.write(
  JSON.stringify({
    requests: sorted.length,
    statuses: t.statuses,
    seconds: elapsed,
    perSecond: sorted.length / elapsed,
    p50: pct(sorted, 50),
    p99: pct(sorted, 99),
    max: sorted.at(-1) ?? NaN,
  }) + "\n",
);
await dispatcher.close();
