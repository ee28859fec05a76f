// Step 3 of the loop: is this generation of the spec allowed? Type and version exist and
// may be used, config matches the version's schema, policy stays inside the type's
// operations and the action taxonomy, limits stay under the type's caps.
import type { ConditionInput } from "../api/conditions.ts";
import { ajvProblems, formatProblems, joinPath, quote, type Problem } from "../api/problems.ts";
import type {
  Action,
  Connector,
  ConnectorType,
  JsonObject,
  Limits,
  LimitsCap,
  OperationClass,
  SecretRef,
  TypeVersion,
} from "../api/types.ts";
import type { ConfigSchemaCache } from "../catalog/configSchemas.ts";
import { ConnectorError } from "../api/errors.ts";
import type { CatalogReader } from "../catalog/reader.ts";
import type { DesiredInstance, StoredPolicy } from "../api/model.ts";

export interface ValidationContext {
  catalog: CatalogReader;
  schemas: ConfigSchemaCache;
  /** Feature flags the cluster administrator enabled in the controller's configuration. */
  enabledFeatures: ReadonlySet<string>;
  /**
   * The secret path guard, when providers are known: throws a ConnectorError when the
   * reference could not be read by this namespace (path tricks, a namespace the provider
   * does not allow). Checked here, so such a spec never reaches the instance row.
   */
  secretRefs?: { check(namespace: string, ref: SecretRef): void };
  /** The driver's own refusals of a config the schema allows, each naming its field (drivers/run.ts). */
  configProblems?: (type: ConnectorType, version: TypeVersion, config: JsonObject) => Problem[];
}

export interface ValidSpec {
  desired: DesiredInstance;
  type: ConnectorType;
  version: TypeVersion;
  /** Conditions that warn without failing (a deprecated version). */
  warnings: ConditionInput[];
}

function invalid(
  reason: string,
  problems: Problem[],
  errorClass: "validation_error" | "policy_denied" = "validation_error",
) {
  return new ConnectorError(errorClass, reason, formatProblems(problems), { problems });
}

/** An operation class we do not recognise is never treated as auto. */
function classOf(c: string): OperationClass {
  return c === "auto" || c === "forbidden" ? c : "approval_required";
}

export function resolveTypeVersion(
  c: Connector,
  ctx: ValidationContext,
): { type: ConnectorType; version: TypeVersion; warnings: ConditionInput[] } {
  const { type: typeName, typeVersion } = c.spec;
  const type = ctx.catalog.getType(typeName);
  if (!type)
    throw invalid("UnknownType", [
      { path: "spec.type", message: `connector type "${typeName}" does not exist` },
    ]);
  const version = type.spec.versions.find((v) => v.version === typeVersion);
  if (!version)
    throw invalid("UnknownTypeVersion", [
      {
        path: "spec.typeVersion",
        message: `connector type "${typeName}" has no version ${typeVersion} (has ${type.spec.versions.map((v) => v.version).join(", ")})`,
      },
    ]);
  for (const flag of [type.spec.featureFlag, version.featureFlag]) {
    if (flag && !ctx.enabledFeatures.has(flag))
      throw invalid("FeatureDisabled", [
        {
          path: "spec.typeVersion",
          message: `connector type "${typeName}" version ${typeVersion} needs feature flag "${flag}", which is not enabled`,
        },
      ]);
  }
  const warnings: ConditionInput[] = [];
  if (version.lifecycle === "retired")
    throw invalid("RetiredTypeVersion", [
      { path: "spec.typeVersion", message: `connector type "${typeName}" version ${typeVersion} is retired` },
    ]);
  if (version.lifecycle === "deprecated") {
    const newer = type.spec.versions
      .filter((v) => v.lifecycle === "approved" && v.version > typeVersion)
      .map((v) => v.version);
    warnings.push({
      type: "Deprecated",
      status: "True",
      reason: "TypeVersionDeprecated",
      message: `connector type "${typeName}" version ${typeVersion} is deprecated${newer.length ? `; move to version ${Math.max(...newer)}` : ""}`,
    });
  }
  return { type, version, warnings };
}

function validateConfig(
  c: Connector,
  type: ConnectorType,
  version: TypeVersion,
  ctx: ValidationContext,
): JsonObject {
  const check = ctx.schemas.get(type, version);
  if (check instanceof Error)
    throw new ConnectorError(
      "permanent",
      "InvalidTypeSchema",
      `connector type "${type.metadata.name}" version ${version.version} has a config schema that does not compile: ${check.message}`,
    );
  const config = structuredClone(c.spec.config ?? {}); // defaults are applied to the copy
  if (!check(config)) throw invalid("InvalidConfig", ajvProblems(check.errors, "spec.config"));
  // What the schema allows but the type's driver could never use (a URL without a host).
  const unusable = ctx.configProblems?.(type, version, config) ?? [];
  if (unusable.length) throw invalid("InvalidConfig", unusable);
  return config;
}

function resolvePolicy(c: Connector, version: TypeVersion, ctx: ValidationContext): StoredPolicy {
  let allow: string[];
  let scope: Action[] | undefined;
  let template: string | undefined;
  let base: string;
  if (c.spec.policyTemplate) {
    template = c.spec.policyTemplate;
    const tpl = ctx.catalog.getPolicyTemplate(template);
    if (!tpl)
      throw invalid(
        "UnknownPolicyTemplate",
        [{ path: "spec.policyTemplate", message: `policy template "${template}" does not exist` }],
        "policy_denied",
      );
    allow = tpl.spec.allowOperations;
    scope = tpl.spec.actionScope;
    base = "spec.policyTemplate";
  } else {
    allow = c.spec.policy?.allowOperations ?? [];
    scope = c.spec.policy?.actionScope;
    base = "spec.policy.allowOperations";
  }
  const problems: Problem[] = [];
  const operations: StoredPolicy["operations"] = [];
  allow.forEach((name, i) => {
    const path = template ? base : `${base}[${i}]`;
    const op = version.operations.find((o) => o.name === name);
    if (!op) {
      problems.push({
        path,
        message: `operation "${name}" is not an operation of connector type "${c.spec.type}" version ${version.version} (has ${version.operations.map((o) => o.name).join(", ") || "none"})`,
      });
      return;
    }
    const cls = classOf(op.class);
    if (cls === "forbidden") {
      problems.push({ path, message: `operation "${name}" is forbidden (class C) and can never be allowed` });
      return;
    }
    if (scope && !scope.includes(op.action)) {
      problems.push({
        path: template ? base : "spec.policy.actionScope",
        message: `operation "${name}" needs action "${op.action}", which the action scope does not grant`,
      });
      return;
    }
    operations.push({ name, class: cls, action: op.action });
  });
  if (problems.length) throw invalid("PolicyDenied", problems, "policy_denied");
  const actionScope = scope ? [...scope] : [...new Set(operations.map((o) => o.action))];
  return { ...(template ? { template } : {}), actionScope: actionScope.sort(), operations };
}

function validateLimits(limits: Limits | undefined, cap: LimitsCap | undefined): void {
  if (!limits || !cap) return;
  const problems: Problem[] = [];
  const over = (path: string, value: number | undefined, max: number | undefined) => {
    if (value !== undefined && max !== undefined && value > max)
      problems.push({ path, message: `${value} is over the connector type's cap of ${max}` });
  };
  over("spec.limits.maxParallelInvocations", limits.maxParallelInvocations, cap.maxParallelInvocations);
  over("spec.limits.queueDepth", limits.queueDepth, cap.queueDepth);
  over("spec.limits.rateLimit.rps", limits.rateLimit?.rps, cap.rateLimit?.rps);
  over("spec.limits.rateLimit.burst", limits.rateLimit?.burst, cap.rateLimit?.burst);
  if (problems.length) throw invalid("LimitsExceeded", problems);
}

/** The secret's key mapping may only name keys the type's version defines. */
function validateCredentialKeys(c: Connector, version: TypeVersion): void {
  const keys = c.spec.credentials?.secretRef?.keys;
  if (!keys || !version.credentialKeys) return;
  const known = new Set(version.credentialKeys);
  const problems: Problem[] = Object.keys(keys)
    .filter((k) => !known.has(k))
    .map((k) => ({
      path: joinPath("spec.credentials.secretRef.keys", k),
      message: `${quote(k)} is not a credential key of connector type "${c.spec.type}" version ${version.version} (expected one of ${version.credentialKeys!.join(", ")})`,
    }));
  if (problems.length) throw invalid("InvalidSecretRef", problems);
}

// U+0000 and unpaired surrogates pass the API server but not PostgreSQL's jsonb: refused here
// with their path, rather than failing every write for ever.
// eslint-disable-next-line no-control-regex
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
// A URL that carries a user or password: credentials belong in a secretRef, never in config.
const URL_WITH_USERINFO = /^[a-z][a-z0-9+.-]*:\/\/[^/?#@]*@/i;

function checkStrings(value: unknown, path: string, problems: Problem[], inConfig: boolean): void {
  if (problems.length >= 20) return;
  if (typeof value === "string") {
    if (UNSTORABLE.test(value))
      problems.push({ path, message: "must not contain U+0000 or unpaired UTF-16 surrogates" });
    else if (inConfig && URL_WITH_USERINFO.test(value))
      problems.push({
        path,
        message: "must not carry a user or password in the URL (use credentials.secretRef)",
      });
    return;
  }
  if (Array.isArray(value)) value.forEach((v, i) => checkStrings(v, `${path}[${i}]`, problems, inConfig));
  else if (value && typeof value === "object")
    for (const [k, v] of Object.entries(value)) {
      const at = joinPath(path, k);
      if (UNSTORABLE.test(k))
        problems.push({
          path: at,
          message: "field name must not contain U+0000 or unpaired UTF-16 surrogates",
        });
      else checkStrings(v, at, problems, inConfig);
    }
}

function validateStrings(c: Connector): void {
  const problems: Problem[] = [];
  for (const [k, v] of Object.entries(c.spec)) checkStrings(v, `spec.${k}`, problems, k === "config");
  if (problems.length) throw invalid("InvalidSpec", problems);
}

function validateSecretRef(c: Connector, ctx: ValidationContext): void {
  const ref = c.spec.credentials?.mode === "secretRef" ? c.spec.credentials.secretRef : undefined;
  if (!ref || !ctx.secretRefs) return;
  try {
    ctx.secretRefs.check(c.metadata.namespace ?? "", ref);
  } catch (err) {
    if (!(err instanceof ConnectorError)) throw err;
    const denied = err.errorClass === "policy_denied";
    const path = denied ? "spec.credentials.secretRef.provider" : "spec.credentials.secretRef.name";
    throw invalid(
      err.reason,
      [{ path, message: err.message }],
      denied ? "policy_denied" : "validation_error",
    );
  }
}

/** Throws a ConnectorError (validation_error, policy_denied or permanent) when the spec cannot be applied. */
export function validateConnector(c: Connector, ctx: ValidationContext): ValidSpec {
  validateStrings(c);
  const { type, version, warnings } = resolveTypeVersion(c, ctx);
  const config = validateConfig(c, type, version, ctx);
  const policy = resolvePolicy(c, version, ctx);
  validateLimits(c.spec.limits, version.limitsCap);
  validateCredentialKeys(c, version);
  validateSecretRef(c, ctx);
  const spec = c.spec;
  return {
    type,
    version,
    warnings,
    desired: {
      owner: spec.owner,
      projectId: spec.projectId ?? null,
      type: spec.type,
      typeVersion: spec.typeVersion,
      config,
      configSchemaVersion: version.schemaVersion,
      credentialsRef: spec.credentials ?? null,
      policy,
      limits: spec.limits ?? null,
      rateLimitPolicy: spec.limits?.rateLimit ?? null,
      enabled: spec.enabled ?? true,
    },
  };
}

/** The spec with more warnings (conditions that warn without failing) added. */
export function withWarnings(valid: ValidSpec, warnings: ValidSpec["warnings"]): ValidSpec {
  return warnings.length ? { ...valid, warnings: [...valid.warnings, ...warnings] } : valid;
}
