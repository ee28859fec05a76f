// Who is calling and what they are calling: the bearer token through TokenReview, the
// Connector and its type from the informer caches, the operation from the catalog, the
// instance row the controller wrote, and Kubernetes RBAC (SubjectAccessReview) on the
// Connector. Each refusal is a classed ConnectorError that names what was missing.
import { ConnectorError } from "../api/errors.ts";
import type { Principal } from "../api/invocation.ts";
import type { InstanceRow } from "../api/model.ts";
import type { Connector, ConnectorType, Operation, TypeVersion } from "../api/types.ts";
import { typeVersionOf, type CatalogReader } from "../catalog/reader.ts";
import { invalidField, PolicyDenied } from "./problems.ts";
import type { Authenticator, Authorizer, InstanceSource } from "./ports.ts";

export interface CallerDeps {
  authn: Authenticator;
  authz: Authorizer;
  catalog: CatalogReader;
  connectors: { getConnector(key: string): Connector | undefined };
  instances: InstanceSource;
}

/** The Connector a call is about, resolved from the caches. */
export interface Resolved {
  connector: Connector;
  type: ConnectorType;
  version: TypeVersion;
}

/** `Authorization: Bearer <token>` => the principal, or 401. */
export async function authenticate(
  d: CallerDeps,
  authorization: string | undefined,
  signal?: AbortSignal,
): Promise<Principal> {
  const m = /^Bearer ([^\s]{1,8192})$/i.exec(authorization ?? "");
  if (!m?.[1])
    throw new PolicyDenied(
      "authentication",
      "a bearer token is required (Authorization: Bearer <token>)",
      "Unauthenticated",
    );
  const principal = await d.authn.authenticate(m[1], signal);
  if (!principal)
    throw new PolicyDenied(
      "authentication",
      "the bearer token was not accepted by the API server's TokenReview",
      "Unauthenticated",
    );
  return principal;
}

/** RBAC: the verb on `connectors` (by name) in the namespace, or 403 naming the verb. */
export async function authorize(
  d: CallerDeps,
  principal: Principal,
  verb: string,
  namespace: string,
  name: string | undefined,
  signal?: AbortSignal,
): Promise<void> {
  const { allowed } = await d.authz.allowed(
    principal,
    { verb, resource: "connectors", namespace, ...(name ? { name } : {}) },
    signal,
  );
  if (!allowed)
    throw new PolicyDenied(
      "rbac",
      `${principal.user} may not ${verb} connectors${name ? ` named ${JSON.stringify(name)}` : ""} in namespace ${namespace} (Kubernetes RBAC)`,
      "Forbidden",
    );
}

/** The Connector and its type version from the caches, or 404. */
export function resolveConnector(d: CallerDeps, namespace: string, name: string): Resolved {
  const connector = d.connectors.getConnector(`${namespace}/${name}`);
  if (!connector)
    throw invalidField(
      "ConnectorNotFound",
      "params.name",
      "names no Connector in the namespace",
      `connector ${namespace}/${name} does not exist`,
    );
  const type = d.catalog.getType(connector.spec.type);
  const version = type ? typeVersionOf(type, connector.spec.typeVersion) : undefined;
  if (!type || !version)
    throw new ConnectorError(
      "transient",
      "InstanceNotActive",
      `connector ${namespace}/${name} names type ${connector.spec.type} version ${connector.spec.typeVersion}, which the catalog does not have`,
      { retryAfterMs: 30_000 },
    );
  return { connector, type, version };
}

/**
 * resolveConnector for a caller: a refusal that would say whether the name exists (404) or how
 * it stands (503) is given only to a caller RBAC lets `get` it; to any other, 403.
 */
export async function resolveForCaller(
  d: CallerDeps,
  principal: Principal,
  namespace: string,
  name: string,
  signal?: AbortSignal,
): Promise<Resolved> {
  try {
    return resolveConnector(d, namespace, name);
  } catch (err) {
    await authorize(d, principal, "get", namespace, name, signal);
    throw err;
  }
}

export function findOperation(version: TypeVersion, name: string): Operation | undefined {
  return version.operations.find((o) => o.name === name);
}

/** The instance row the controller wrote for the applied generation, or 503 while there is none. */
export async function instanceOf(d: CallerDeps, r: Resolved, signal?: AbortSignal): Promise<InstanceRow> {
  const row = await d.instances.get(r.connector, signal);
  if (!row)
    throw new ConnectorError(
      "transient",
      "InstanceNotActive",
      `connector ${r.connector.metadata.namespace}/${r.connector.metadata.name} has no instance yet (being provisioned)`,
      { retryAfterMs: 5_000 },
    );
  return row;
}

/** Only an active connector runs operations. */
export function requireActive(r: Resolved, row: InstanceRow): InstanceRow {
  if (row.state === "active" && row.enabled) return row;
  const key = `${r.connector.metadata.namespace}/${r.connector.metadata.name}`;
  throw new ConnectorError(
    "transient",
    "InstanceNotActive",
    `connector ${key} is ${row.enabled ? row.state : "disabled"}, not active${row.lastError ? `: ${row.lastError}` : ""}`,
    { retryAfterMs: row.enabled ? 30_000 : 300_000 },
  );
}
