// The suite's numbers. Each test file records what it ran (scenarios, faults injected, bad
// inputs tried, invariant violations, secret bytes found) as one JSON file in a directory
// that globalSetup.ts provides; its teardown prints the summary table at the end of the run.
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inject } from "vitest";

export interface ScenarioRecord {
  area: string;
  scenario: string;
  /** "ran", or "not yet wired" (0 scenarios run) */
  status: "ran" | "not yet wired";
  faults: number;
  badInputs: number;
  violations: number;
  secretBytes: number;
  seconds: number;
  note?: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    reliabilityTallyDir: string;
  }
}

function tallyDir(): string {
  let dir: string | undefined;
  try {
    dir = inject("reliabilityTallyDir");
  } catch {
    dir = undefined;
  }
  // Run outside the reliability project (no globalSetup): keep the records somewhere anyway.
  dir ??= join(tmpdir(), "connector-reliability-tally");
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Records scenarios as they finish; `flush` writes this file's records for the summary. */
export class Tally {
  readonly file: string;
  readonly records: ScenarioRecord[] = [];

  constructor(file: string) {
    this.file = file;
  }

  add(r: ScenarioRecord): void {
    this.records.push(r);
    this.flush();
  }

  /** Times `fn` and records it as one scenario; the record is written even when `fn` throws. */
  async scenario<T>(area: string, scenario: string, fn: (r: ScenarioRecord) => Promise<T>): Promise<T> {
    const r: ScenarioRecord = {
      area,
      scenario,
      status: "ran",
      faults: 0,
      badInputs: 0,
      violations: 0,
      secretBytes: 0,
      seconds: 0,
    };
    const started = Date.now();
    try {
      return await fn(r);
    } catch (err) {
      r.note = `FAILED: ${(err as Error).message.split("\n")[0]!.slice(0, 120)}`;
      throw err;
    } finally {
      r.seconds = Math.round((Date.now() - started) / 100) / 10;
      this.add(r);
    }
  }

  flush(): void {
    writeFileSync(join(tallyDir(), `${this.file}.json`), JSON.stringify(this.records, null, 2));
  }
}
