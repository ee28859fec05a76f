// The gateway's idempotency records (spec §2.3). Jobs and dead letters live in pg-boss's own
// schema, which pg-boss installs and migrates itself (see ../jobEngine.ts); this table holds
// what pg-boss does not: one row per (namespace, connector, operation, key) for the TTL.
import { sql } from "kysely";
import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

export const m004_gateway_jobs: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("gateway_idempotency")
      .addColumn("namespace", "text", (c) => c.notNull())
      .addColumn("name", "text", (c) => c.notNull())
      .addColumn("operation", "text", (c) => c.notNull())
      .addColumn("key", "text", (c) => c.notNull())
      .addColumn("request_hash", "text", (c) => c.notNull())
      .addColumn("state", "text", (c) => c.notNull())
      .addColumn("status", "integer")
      .addColumn("body", "jsonb")
      .addColumn("job_id", "text")
      // Until when an in-progress claim is its claimer's: past it, the claimer is taken for
      // dead and the same request may claim the key again.
      .addColumn("lease_until", "timestamptz")
      .addColumn("expires_at", "timestamptz", (c) => c.notNull())
      .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
      .addColumn("completed_at", "timestamptz")
      .addPrimaryKeyConstraint("gateway_idempotency_pkey", ["namespace", "name", "operation", "key"])
      .addCheckConstraint(
        "gateway_idempotency_state_check",
        sql`(state = 'in_progress' and lease_until is not null)
            or (state = 'completed' and status is not null and body is not null)`,
      )
      .execute();
    // The sweeper deletes by expiry.
    await db.schema
      .createIndex("gateway_idempotency_expires_at")
      .on("gateway_idempotency")
      .column("expires_at")
      .execute();
  },

  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable("gateway_idempotency").execute();
  },
};
