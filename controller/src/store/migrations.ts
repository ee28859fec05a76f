// Schema migrations, compiled into the controller (no file-system scanning). They run at
// start-up and from `connectorctl migrate`. A migration, once released, never changes:
// later schema changes are new entries. Migrations take Kysely<unknown> on purpose: they
// describe the schema as it was at that point, not today's `Database` type.
import { sql } from "kysely";
import type { Kysely } from "kysely";
import { Migrator } from "kysely/migration";
import type { Migration, MigrationProvider, MigrationResult } from "kysely/migration";
import { m003_gateway_limits } from "./migrations/003_gateway_limits.ts";
import { m005_gateway_approvals } from "./migrations/005_gateway_approvals.ts";
import { m004_gateway_jobs } from "./migrations/004_gateway_jobs.ts";

/** Setting that lets a session UPDATE/DELETE audit rows (the retention janitor only). */
export const AUDIT_PURGE_SETTING = "connector.audit_purge";

const m001_initial: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    // The state and error class lists are frozen here as of this migration; a new state is
    // a new migration that replaces the CHECK.
    await db.schema
      .createTable("connector_instances")
      .addColumn("id", "uuid", (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
      .addColumn("namespace", "text", (c) => c.notNull())
      .addColumn("name", "text", (c) => c.notNull())
      .addColumn("uid", "text", (c) => c.notNull())
      .addColumn("owner", "jsonb", (c) => c.notNull())
      .addColumn("project_id", "text")
      .addColumn("type", "text", (c) => c.notNull())
      .addColumn("type_version", "integer", (c) => c.notNull())
      .addColumn("config", "jsonb", (c) => c.notNull())
      .addColumn("config_schema_version", "text", (c) => c.notNull())
      .addColumn("credentials_ref", "jsonb")
      .addColumn("secret_version", "integer")
      .addColumn("secret_fingerprint", "text")
      .addColumn("policy", "jsonb", (c) => c.notNull())
      .addColumn("limits", "jsonb")
      .addColumn("rate_limit_policy", "jsonb")
      .addColumn("enabled", "boolean", (c) => c.notNull())
      .addColumn("state", "text", (c) => c.notNull())
      .addColumn("last_success_at", "timestamptz")
      .addColumn("last_error", "text")
      .addColumn("last_error_class", "text")
      .addColumn("health_checked_at", "timestamptz")
      .addColumn("applied_generation", "bigint", (c) => c.notNull())
      .addColumn("spec_hash", "text", (c) => c.notNull())
      .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
      .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
      .addColumn("deleted_at", "timestamptz")
      .addCheckConstraint(
        "connector_instances_state_check",
        sql`state in ('provisioning', 'active', 'degraded', 'credential_expired', 'error', 'disabled')`,
      )
      .addCheckConstraint(
        "connector_instances_last_error_class_check",
        sql`last_error_class is null or last_error_class in
            ('transient', 'permanent', 'validation_error', 'policy_denied', 'quota_exceeded')`,
      )
      .execute();

    // One live row per Kubernetes object; soft-deleted rows keep their uid for history.
    await db.schema
      .createIndex("connector_instances_live_uid")
      .on("connector_instances")
      .column("uid")
      .unique()
      .where(sql.ref("deleted_at"), "is", null)
      .execute();
    await db.schema
      .createIndex("connector_instances_namespace_name")
      .on("connector_instances")
      .columns(["namespace", "name"])
      .execute();

    await db.schema
      .createTable("connector_audit_events")
      .addColumn("id", "bigserial", (c) => c.primaryKey())
      .addColumn("request_id", "text", (c) => c.notNull())
      .addColumn("correlation_id", "text")
      .addColumn("actor", "text")
      .addColumn("project_id", "text")
      .addColumn("connector_instance_id", "uuid")
      .addColumn("namespace", "text", (c) => c.notNull())
      .addColumn("name", "text", (c) => c.notNull())
      .addColumn("operation", "text", (c) => c.notNull())
      .addColumn("execution_mode", "text")
      .addColumn("outcome", "text", (c) => c.notNull())
      .addColumn("duration_ms", "integer")
      .addColumn("provider_status_code", "integer")
      .addColumn("retry_count", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("details", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
      .addColumn("at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
      .execute();
    await db.schema
      .createIndex("connector_audit_events_namespace_name_at")
      .on("connector_audit_events")
      .columns(["namespace", "name", "at"])
      .execute();

    // Append-only: UPDATE, DELETE and TRUNCATE are refused unless the session (or the
    // transaction, via set_config(..., true)) has connector.audit_purge = 'on'.
    await sql`
      create function connector_audit_events_append_only() returns trigger
      language plpgsql as $$
      begin
        if coalesce(current_setting('connector.audit_purge', true), '') <> 'on' then
          raise exception 'connector_audit_events is append-only: % refused', tg_op
            using hint = 'only the retention janitor may purge audit rows (connector.audit_purge = on)';
        end if;
        if tg_level = 'STATEMENT' then
          return null;
        elsif tg_op = 'DELETE' then
          return old;
        end if;
        return new;
      end
      $$`.execute(db);
    await sql`
      create trigger connector_audit_events_no_update_delete
      before update or delete on connector_audit_events
      for each row execute function connector_audit_events_append_only()`.execute(db);
    await sql`
      create trigger connector_audit_events_no_truncate
      before truncate on connector_audit_events
      for each statement execute function connector_audit_events_append_only()`.execute(db);
  },

  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable("connector_audit_events").execute();
    await sql`drop function connector_audit_events_append_only()`.execute(db);
    await db.schema.dropTable("connector_instances").execute();
  },
};

/** Set (transaction-local) by the controller on its own writes; the trigger ignores those. */
export const WRITER_SETTING = "connector.writer";
export const CHANGE_CHANNEL = "connector_instance_changed";

const m002_notify_external_changes: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    // A change made by anyone but the controller (a DBA's UPDATE, a script) is announced
    // with the row's namespace/name, so the controller corrects drift within seconds.
    await sql`
      create function connector_instances_notify_external() returns trigger
      language plpgsql as $$
      declare
        r record;
      begin
        if coalesce(current_setting('connector.writer', true), '') = 'controller' then
          return null;
        end if;
        if tg_op = 'DELETE' then r := old; else r := new; end if;
        perform pg_notify('connector_instance_changed', r.namespace || '/' || r.name);
        return null;
      end
      $$`.execute(db);
    await sql`
      create trigger connector_instances_notify_external
      after insert or update or delete on connector_instances
      for each row execute function connector_instances_notify_external()`.execute(db);
  },

  async down(db: Kysely<unknown>): Promise<void> {
    await sql`drop trigger connector_instances_notify_external on connector_instances`.execute(db);
    await sql`drop function connector_instances_notify_external()`.execute(db);
  },
};

/** All migrations, by name; they run in name order. */
export const migrations: Readonly<Record<string, Migration>> = {
  "001_initial": m001_initial,
  "002_notify_external_changes": m002_notify_external_changes,
  "003_gateway_limits": m003_gateway_limits,
  "004_gateway_jobs": m004_gateway_jobs,
  "005_gateway_approvals": m005_gateway_approvals,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: () => Promise.resolve({ ...migrations }),
};

export function createMigrator(db: Kysely<unknown>): Migrator {
  return new Migrator({ db, provider: migrationProvider });
}

/**
 * Brings the schema up to date. Returns the migrations that ran in this call (empty when
 * the schema was already current); throws if one failed (that migration is rolled back).
 */
export async function migrateToLatest<DB>(db: Kysely<DB>): Promise<MigrationResult[]> {
  const { error, results } = await createMigrator(db as unknown as Kysely<unknown>).migrateToLatest();
  if (error !== undefined) {
    const failed = results?.find((r) => r.status === "Error")?.migrationName;
    throw new Error(`database migration ${failed ?? "(before any migration ran)"} failed: ${String(error)}`, {
      cause: error,
    });
  }
  return results ?? [];
}
