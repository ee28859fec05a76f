// A gateway job replica in a process of its own, for gateway-jobs.test.ts to SIGKILL while it
// runs a job. Its handler never returns. It prints one line per event on stdout:
//   enqueued <id>           (with --enqueue: it enqueued that spec itself)
//   ready                   (its worker is running)
//   started <id> <attempt>  (a job started; it will never finish here)
//
//   node test/support/jobReplica.ts (--url URL | --data-dir DIR) [--enqueue SPEC_JSON] [--options JSON]
import { parseArgs } from "node:util";
import { openDatabase } from "../../controller/src/store/database.ts";
import { PgBossJobQueue, type PgBossJobQueueOptions } from "../../controller/src/store/jobs.ts";
import type { JobSpec } from "../../controller/src/gateway/ports.ts";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    "data-dir": { type: "string" },
    enqueue: { type: "string" },
    options: { type: "string" },
  },
});

const database = await openDatabase(values.url ? { url: values.url } : { dataDir: values["data-dir"] });
const opts = JSON.parse(values.options ?? "{}") as PgBossJobQueueOptions;
const queue = await PgBossJobQueue.open(database, opts);
if (values.enqueue !== undefined) {
  const { id } = await queue.enqueue(JSON.parse(values.enqueue) as JobSpec);
  console.log(`enqueued ${id}`);
}
void queue.work(
  (_spec, ctx) => {
    console.log(`started ${ctx.jobId} ${ctx.attempt}`);
    return new Promise(() => undefined);
  },
  { concurrency: 1 },
  new AbortController().signal,
);
console.log("ready");
