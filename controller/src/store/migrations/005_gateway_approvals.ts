import { sql, type Kysely } from "kysely";
import type { Migration } from "kysely/migration";

/** Approvals used once: a replayed approval token finds its id here. Rows outlive the token, then go. */
export const m005_gateway_approvals: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("gateway_approvals_used")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("used_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
      .addColumn("expires_at", "timestamptz", (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex("gateway_approvals_used_expiry")
      .on("gateway_approvals_used")
      .column("expires_at")
      .execute();
  },
};
