// Types of the cynodeai.io/v1alpha1 resources. The CRDs in crds/ are the source of truth;
// test/unit/api-types.test.ts keeps these in agreement with them.

export const GROUP = "cynodeai.io";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;
export const FINALIZER = "cynodeai.io/instance-cleanup";
export const ANNOTATION_DELETION_POLICY = "cynodeai.io/deletion-policy";
export const ANNOTATION_MANAGEMENT_POLICY = "cynodeai.io/management-policy";
export const ANNOTATION_APPLIED_BY = "cynodeai.io/applied-by";

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  managedFields?: { manager?: string; operation?: string; time?: string; subresource?: string }[];
}

export const ACTION_TAXONOMY = [
  "connector.catalog.read",
  "connector.instance.manage",
  "connector.operation.invoke",
  "connector.operation.read",
  "connector.credential.manage",
] as const;
export type Action = (typeof ACTION_TAXONOMY)[number];

export const CONNECTOR_STATES = [
  "provisioning",
  "active",
  "degraded",
  "credential_expired",
  "error",
  "disabled",
] as const;
export type ConnectorState = (typeof CONNECTOR_STATES)[number];

export const ERROR_CLASSES = [
  "transient",
  "permanent",
  "validation_error",
  "policy_denied",
  "quota_exceeded",
] as const;
export type ErrorClass = (typeof ERROR_CLASSES)[number];

export interface Owner {
  type: "user" | "group";
  id: string;
}

export interface SecretRef {
  provider: string;
  name: string;
  version?: number;
  keys?: Record<string, string>;
}

export interface Credentials {
  mode: "secretRef" | "oauth";
  secretRef?: SecretRef;
  oauth?: { provider: string; scopes?: string[] };
}

export interface InlinePolicy {
  allowOperations: string[];
  actionScope?: Action[];
}

export interface RateLimit {
  rps: number;
  burst: number;
}

export interface Limits {
  maxParallelInvocations?: number;
  queueDepth?: number;
  backpressure?: "reject" | "queue";
  rateLimit?: RateLimit;
}

export interface HealthCheck {
  intervalSeconds?: number;
  timeoutSeconds?: number;
}

/** What deleting a Connector does to its instance row (spec.deletionPolicy; CRD default Delete). */
export const DELETION_POLICIES = ["Delete", "Orphan"] as const;
export type DeletionPolicy = (typeof DELETION_POLICIES)[number];
/** How far the controller acts on the instance row (spec.managementPolicy; CRD default Full). */
export const MANAGEMENT_POLICIES = ["Full", "Observe"] as const;
export type ManagementPolicy = (typeof MANAGEMENT_POLICIES)[number];

export interface ConnectorSpec {
  type: string;
  typeVersion: number;
  enabled?: boolean;
  /** Delete (default): disable and soft-delete the row; Orphan: keep it. */
  deletionPolicy?: "Delete" | "Orphan";
  /** Full (default): converge and overwrite drift; Observe: report drift only. */
  managementPolicy?: "Full" | "Observe";
  owner: Owner;
  projectId?: string;
  config?: JsonObject;
  credentials?: Credentials;
  policy?: InlinePolicy;
  policyTemplate?: string;
  limits?: Limits;
  healthCheck?: HealthCheck;
}

export type ConditionStatus = "True" | "False" | "Unknown";

export interface Condition {
  type: string;
  status: ConditionStatus;
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface ConnectorStatus {
  observedGeneration?: number;
  appliedGeneration?: number;
  state?: ConnectorState;
  instanceId?: string;
  typeVersion?: number;
  configSchemaVersion?: string;
  lastSuccessAt?: string;
  lastError?: { class: ErrorClass; reason?: string; message: string };
  drift?: { detected: boolean; fields?: string[]; lastCorrectedAt?: string; corrections?: number };
  auth?: { state: string; url?: string };
  conditions?: Condition[];
}

export interface Connector {
  apiVersion: typeof API_VERSION;
  kind: "Connector";
  metadata: ObjectMeta;
  spec: ConnectorSpec;
  status?: ConnectorStatus;
}

export type Lifecycle = "approved" | "deprecated" | "retired";
export type OperationClass = "auto" | "approval_required" | "forbidden";

export interface RetryPolicy {
  maxRetries?: number;
  backoff?: "exponential";
  initialDelayMs?: number;
  maxDelayMs?: number;
  retryableStatusCodes?: number[];
}

export interface Operation {
  name: string;
  mode: "sync" | "async";
  class: OperationClass;
  action: Action;
  maxTimeoutMs: number;
  supportsIdempotency?: boolean;
  maxPayloadBytes?: number;
  retryPolicy?: RetryPolicy;
  /** JSON Schema of the input; absent: an empty object. */
  inputSchema?: JsonObject;
  /** JSON Schema of the result, checked before it leaves the gateway. */
  outputSchema?: JsonObject;
  /** JSON pointers (with * for any item or key) or bare field names, replaced before a result leaves. */
  redact?: string[];
  /** A result over maxPayloadBytes: truncate (default) or refuse. */
  onOversize?: "truncate" | "refuse";
}

export type ProbeKind = "imap" | "smtp" | "http" | "postgres" | "mattermost" | "discord" | "none";

export interface HealthProbe {
  kind: ProbeKind;
  path?: string;
  expectStatus?: number;
}

export interface LimitsCap {
  maxParallelInvocations?: number;
  queueDepth?: number;
  rateLimit?: Partial<RateLimit>;
}

export interface TypeVersion {
  version: number;
  schemaVersion: string;
  lifecycle: Lifecycle;
  featureFlag?: string;
  configSchema: JsonObject;
  credentialKeys?: string[];
  operations: Operation[];
  healthProbe: HealthProbe;
  limitsCap?: LimitsCap;
  egressAllowlist?: string[];
  oauth?: { authorizeUrl: string; tokenUrl: string; scopes?: string[] };
}

export interface ConnectorTypeSpec {
  displayName: string;
  displayNameAr: string;
  description?: string;
  dataClassification: "public" | "internal" | "confidential" | "restricted";
  approvalPolicy: "auto" | "approval_required";
  featureFlag?: string;
  versions: TypeVersion[];
}

export interface ConnectorType {
  apiVersion: typeof API_VERSION;
  kind: "ConnectorType";
  metadata: ObjectMeta;
  spec: ConnectorTypeSpec;
}

export interface PolicyTemplate {
  apiVersion: typeof API_VERSION;
  kind: "ConnectorPolicyTemplate";
  metadata: ObjectMeta;
  spec: { description?: string; allowOperations: string[]; actionScope?: Action[] };
}

export function connectorKey(c: { metadata: ObjectMeta }): string {
  return `${c.metadata.namespace ?? ""}/${c.metadata.name}`;
}

// ---------------------------------------------------------------------------------------
// SecretProvider (cluster-scoped): where Connectors' secretRefs are resolved.
// ---------------------------------------------------------------------------------------

/** A key of a Kubernetes Secret (for the platform identities: AppRole SecretID, static token). */
export interface SecretKeySelector {
  namespace: string;
  name: string;
  key: string;
}

export interface VaultKv {
  mount: string;
  /** Defaults to 2. */
  version?: 1 | 2;
}

/** Tenant identity: the service account lives in the Connector's namespace. */
export interface VaultKubernetesAuth {
  /** Defaults to "kubernetes". */
  mountPath?: string;
  role: string;
  serviceAccountName: string;
  /** Defaults to ["vault"]. */
  audiences?: string[];
}

export interface VaultAppRoleAuth {
  /** Defaults to "approle". */
  mountPath?: string;
  roleId: string;
  secretIdRef: SecretKeySelector;
}

export interface VaultTokenAuth {
  secretRef: SecretKeySelector;
}

/** Exactly one is set. */
export interface VaultAuth {
  kubernetes?: VaultKubernetesAuth;
  appRole?: VaultAppRoleAuth;
  token?: VaultTokenAuth;
}

/**
 * A CA bundle kept in a ConfigMap or Secret of the controller's own namespace (never a
 * tenant's): the controller reads it, and reads it again while it runs, so a rotated CA is
 * trusted without editing the SecretProvider.
 */
export interface CaBundleRef {
  kind: "ConfigMap" | "Secret";
  name: string;
  /** Defaults to ca.crt. */
  key?: string;
}

export interface VaultProviderSpec {
  address: string;
  caBundle?: string;
  /** Instead of caBundle (not both). */
  caBundleRef?: CaBundleRef;
  /** Vault Enterprise / OpenBao namespace. */
  namespace?: string;
  kv: VaultKv;
  /** Defaults to DEFAULT_PATH_TEMPLATE. */
  pathTemplate?: string;
  auth: VaultAuth;
}

export interface FileProviderSpec {
  directory: string;
}

/**
 * Secrets of the Connector's own namespace, read AS the namespace's service account
 * serviceAccountName (impersonation), so the API server's RBAC is the second wall.
 */
export interface KubernetesProviderSpec {
  /** Defaults to "connector-reader". */
  serviceAccountName?: string;
}

export const DEFAULT_READER_SERVICE_ACCOUNT = "connector-reader";

export interface LabelSelectorRequirement {
  key: string;
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface OAuthClient {
  clientId: string;
  redirectUri?: string;
}

/** Exactly one of vault, kubernetes and file is set. */
export interface SecretProviderSpec {
  vault?: VaultProviderSpec;
  kubernetes?: KubernetesProviderSpec;
  file?: FileProviderSpec;
  oauthClients?: Record<string, OAuthClient>;
  allowedNamespaces?: string[];
  namespaceSelector?: LabelSelector;
}

export interface SecretProviderStatus {
  observedGeneration?: number;
  type?: "vault" | "kubernetes" | "file";
  conditions?: Condition[];
}

export interface SecretProvider {
  apiVersion: typeof API_VERSION;
  kind: "SecretProvider";
  metadata: ObjectMeta;
  spec: SecretProviderSpec;
  status?: SecretProviderStatus;
}

export const DEFAULT_PATH_TEMPLATE = "connectors/{namespace}/{name}";

/** Reasons of a SecretProvider's Ready condition. */
export const SECRET_PROVIDER_REASONS = [
  "Ready",
  "InvalidConfig",
  "Unreachable",
  "Sealed",
  "Unauthenticated",
] as const;
export type SecretProviderReason = (typeof SECRET_PROVIDER_REASONS)[number];
