// Renders a results file (JSON, as bench/run.ts writes it) as the markdown report again,
// e.g. after the report's layout changed:  node bench/render.ts bench/results/latest.json
import { readFileSync } from "node:fs";
import { markdown, type Results } from "./lib/report.ts";

const file = process.argv[2];
if (!file) {
  process.stderr.write("usage: node bench/render.ts RESULTS.json\n");
  process.exit(2);
}
process.stdout.write(`${markdown(JSON.parse(readFileSync(file, "utf8")) as Results)}\n`);
