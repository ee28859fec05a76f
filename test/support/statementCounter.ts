// Counts the SQL statements a Kysely instance executes (one result per statement).
import type { Kysely, KyselyPlugin } from "kysely";

export function countStatements<DB>(db: Kysely<DB>): {
  db: Kysely<DB>;
  readonly count: number;
  reset(): void;
} {
  let count = 0;
  const plugin: KyselyPlugin = {
    transformQuery: (args) => args.node,
    transformResult: async (args) => {
      count++;
      return args.result;
    },
  };
  return {
    db: db.withPlugin(plugin),
    get count() {
      return count;
    },
    reset() {
      count = 0;
    },
  };
}
