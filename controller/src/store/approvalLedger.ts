// The ApprovalLedger of gateway/ports.ts: an approval id is accepted once, on every replica.
// Ids of approvals past their expiry are swept (a replay of an expired token is refused
// for its expiry anyway).
import { sql, type Kysely } from "kysely";
import type { Database } from "./schema.ts";

export class PgApprovalLedger {
  readonly #db: Kysely<Database>;
  #sweptAt = 0;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async use(id: string, expiresAt: Date): Promise<boolean> {
    if (Date.now() - this.#sweptAt > 60_000) {
      this.#sweptAt = Date.now();
      await this.#db
        .deleteFrom("gateway_approvals_used")
        .where("expires_at", "<", sql<Date>`now()`)
        .execute();
    }
    const inserted = await this.#db
      .insertInto("gateway_approvals_used")
      .values({ id, expires_at: expiresAt })
      .onConflict((oc) => oc.column("id").doNothing())
      .executeTakeFirst();
    return Number(inserted.numInsertedOrUpdatedRows ?? 0) === 1;
  }
}
