// The AuditSink of gateway/ports.ts: audit rows leave the hot path. They are written in
// multi-row INSERTs (at most `maxBatch` rows, at least every `flushMs`), a failed write is
// retried with backoff without dropping a row, and flush() (called on SIGTERM) waits until
// everything recorded so far is in the database.
import type { Kysely } from "kysely";
import { jitter, sleep } from "../api/clock.ts";
import type { Logger } from "../api/logger.ts";
import type { AuditEvent } from "../api/model.ts";
import { toAuditColumns } from "./instanceStore.ts";
import type { Database } from "./schema.ts";

export interface AuditBatchOptions {
  maxBatch?: number;
  flushMs?: number;
  onWritten?: (rows: number) => void;
}

export class PgAuditSink {
  readonly #db: Kysely<Database>;
  readonly #log: Logger;
  readonly #maxBatch: number;
  readonly #flushMs: number;
  readonly #onWritten: (rows: number) => void;
  #pending: AuditEvent[] = [];
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> = Promise.resolve();

  constructor(db: Kysely<Database>, log: Logger, opts: AuditBatchOptions = {}) {
    this.#db = db;
    this.#log = log;
    this.#maxBatch = opts.maxBatch ?? 500;
    this.#flushMs = opts.flushMs ?? 50;
    this.#onWritten = opts.onWritten ?? (() => {});
  }

  get pending(): number {
    return this.#pending.length;
  }

  record(event: AuditEvent): void {
    this.#pending.push(event);
    if (this.#pending.length >= this.#maxBatch) void this.flush();
    else this.#timer ??= setTimeout(() => void this.flush(), this.#flushMs);
  }

  /** Writes everything recorded so far; resolves once it is in the database. */
  flush(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = this.#pending;
    this.#pending = [];
    // Batches are written one after the other, in the order they were recorded.
    this.#writing = this.#writing.then(() => (batch.length ? this.#write(batch) : undefined));
    return this.#writing;
  }

  async #write(batch: AuditEvent[]): Promise<void> {
    for (let attempt = 0, backoff = 100; ; attempt++) {
      try {
        for (let i = 0; i < batch.length; i += this.#maxBatch)
          await this.#db
            .insertInto("connector_audit_events")
            .values(batch.slice(i, i + this.#maxBatch).map(toAuditColumns))
            .execute();
        this.#onWritten(batch.length);
        return;
      } catch (err) {
        // Never dropped: the rows wait (and the caller of flush() with them) until the database is back.
        if (attempt % 10 === 0)
          this.#log.warn({ err, rows: batch.length, attempt }, "audit write failed; retrying");
        await sleep(jitter(backoff, 0.2));
        backoff = Math.min(backoff * 2, 5_000);
      }
    }
  }
}
