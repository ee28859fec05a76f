// Kysely table types for the controller's PostgreSQL schema (see migrations.ts).
// Column names are snake_case as in the database; instanceStore.ts maps them to the
// camelCase rows of reconcile/ports.ts.
//
// JSON columns are written as JSON text (JSON.stringify) and read back as parsed values:
// node-postgres would serialise a JS array as a Postgres array literal, not as JSON.
import type { ColumnType, Generated } from "kysely";
import type {
  ConnectorState,
  Credentials,
  ErrorClass,
  JsonObject,
  JsonValue,
  Limits,
  Owner,
  RateLimit,
} from "../api/types.ts";
import type { StoredPolicy } from "../api/model.ts";

/** A jsonb column: selected as T, inserted/updated as JSON text. */
export type Json<T> = ColumnType<T, string, string>;
/** A nullable jsonb column. */
export type NullableJson<T> = ColumnType<T | null, string | null, string | null>;
/** A timestamptz column: selected as Date, written as Date. */
export type Timestamp = ColumnType<Date, Date, Date>;
export type NullableTimestamp = ColumnType<Date | null, Date | null, Date | null>;
/** A timestamptz column with a `default now()`. */
export type DefaultTimestamp = ColumnType<Date, Date | undefined, Date>;

export interface ConnectorInstancesTable {
  id: Generated<string>;
  namespace: string;
  name: string;
  uid: string;
  owner: Json<Owner>;
  project_id: string | null;
  type: string;
  type_version: number;
  config: Json<JsonObject>;
  config_schema_version: string;
  /** References only (secretRef / oauth provider), never secret values. */
  credentials_ref: NullableJson<Credentials>;
  secret_version: number | null;
  secret_fingerprint: string | null;
  policy: Json<StoredPolicy>;
  limits: NullableJson<Limits>;
  rate_limit_policy: NullableJson<RateLimit>;
  enabled: boolean;
  state: ConnectorState;
  last_success_at: NullableTimestamp;
  last_error: string | null;
  last_error_class: ErrorClass | null;
  health_checked_at: NullableTimestamp;
  /** bigint; read back as a JS number (see database.ts). */
  applied_generation: number;
  spec_hash: string;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
  deleted_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

export interface ConnectorAuditEventsTable {
  /** bigserial; read back as a JS number (see database.ts), exposed as a string. */
  id: Generated<number>;
  request_id: string;
  correlation_id: string | null;
  actor: string | null;
  project_id: string | null;
  connector_instance_id: string | null;
  namespace: string;
  name: string;
  operation: string;
  execution_mode: string | null;
  outcome: string;
  duration_ms: number | null;
  provider_status_code: number | null;
  retry_count: ColumnType<number, number | undefined, number>;
  details: ColumnType<JsonObject, string | undefined, string>;
  at: DefaultTimestamp;
}

/** The gateway's limits and breakers (migrations/003_gateway_limits.ts); written only by its functions. */
export interface GatewayRateBucketsTable {
  key: string;
  /** numeric epoch ms, read back as a string. */
  tat: string;
}

export interface GatewaySlotsTable {
  instance_id: string;
  n: number;
  holder: string | null;
  expires_at: NullableTimestamp;
}

export interface GatewayWaitersTable {
  id: Generated<string>;
  seq: Generated<number>;
  instance_id: string;
  deadline: Timestamp;
  expires_at: Timestamp;
}

export interface GatewayBreakersTable {
  instance_id: string;
  failures: number;
  opened_until: NullableTimestamp;
  trial_until: NullableTimestamp;
}

export interface GatewayApprovalsUsedTable {
  id: string;
  used_at: DefaultTimestamp;
  expires_at: Date;
}

/** Idempotency records of the gateway (migrations/004_gateway_jobs.ts, store/idempotency.ts). */
export interface GatewayIdempotencyTable {
  namespace: string;
  name: string;
  operation: string;
  key: string;
  request_hash: string;
  state: "in_progress" | "completed";
  status: number | null;
  body: NullableJson<JsonValue>;
  job_id: string | null;
  lease_until: NullableTimestamp;
  expires_at: Timestamp;
  created_at: DefaultTimestamp;
  completed_at: NullableTimestamp;
}

export interface Database {
  connector_instances: ConnectorInstancesTable;
  connector_audit_events: ConnectorAuditEventsTable;
  gateway_rate_buckets: GatewayRateBucketsTable;
  gateway_slots: GatewaySlotsTable;
  gateway_waiters: GatewayWaitersTable;
  gateway_breakers: GatewayBreakersTable;
  gateway_approvals_used: GatewayApprovalsUsedTable;
  gateway_idempotency: GatewayIdempotencyTable;
}
