// The path guard: turns (provider, Connector namespace, secretRef.name) into the one path
// under the KV mount that this namespace may read (or, for a kubernetes provider, the one
// Secret name in the namespace itself), or refuses with a clear message.
//
// Whitelist, not blacklist: a path segment is [A-Za-z0-9_.-] (not "." or ".."), segments are
// joined by "/", so "..", "%2e%2e", leading "/", "//", "\", NUL and control characters,
// and unicode look-alike slashes are all refused. The named checks before the whitelist are
// only there to say *why*.
import { DEFAULT_PATH_TEMPLATE, type LabelSelector, type SecretProviderSpec } from "../api/types.ts";
import { ConnectorError } from "../api/errors.ts";

export const SECRET_NAME_FIELD = "spec.credentials.secretRef.name";
export const PATH_TEMPLATE_FIELD = "spec.vault.pathTemplate";
/** The file provider's fixed layout (fileProvider.ts). */
export const FILE_PATH_TEMPLATE = "{namespace}/{name}";

const SEGMENT = /^[A-Za-z0-9_.-]+$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** KV v2 API verbs: a user-controlled segment equal to one of these could re-route the request. */
const KV_VERBS = new Set(["data", "metadata", "delete", "undelete", "destroy", "subkeys", "config"]);
/** Segments refused anywhere in a secret name (DESIGN §6: no data/ or metadata/ injection). */
const NAME_FORBIDDEN = new Set(["data", "metadata"]);
/** Code points that render as a slash or a dot. */
const LOOKALIKES = /[\u2215\u2044\u29F8\uFF0F\u2024\uFF0E\u3002\uFE52\u2027\u00B7\u2236\\]/u;

function invalid(message: string): ConnectorError {
  return new ConnectorError("validation_error", "InvalidSecretRef", message);
}

function describeChar(ch: string): string {
  const cp = ch.codePointAt(0) ?? 0;
  return `U+${cp.toString(16).toUpperCase().padStart(4, "0")}`;
}

/**
 * Why `value` is not an acceptable relative path made of safe segments, or undefined.
 * `what` names the field in the message.
 */
function pathProblem(value: string, what: string, forbidden: Set<string>): string | undefined {
  if (value.length === 0) return `${what} is empty`;
  if (value.length > 512) return `${what} is longer than 512 characters`;
  // eslint-disable-next-line no-control-regex
  const ctrl = /[\u0000-\u001F\u007F-\u009F]/u.exec(value);
  if (ctrl) return `${what} contains the control character ${describeChar(ctrl[0])}`;
  if (value.startsWith("/")) return `${what} must be relative: it starts with "/"`;
  if (value.endsWith("/")) return `${what} must not end with "/"`;
  if (/%[0-9A-Fa-f]{2}/.test(value))
    return `${what} contains a percent-encoded sequence; use plain characters`;
  const look = LOOKALIKES.exec(value);
  if (look) return `${what} contains ${describeChar(look[0])}, which looks like a path separator or dot`;
  const segments = value.split("/");
  for (const seg of segments) {
    if (seg === "") return `${what} contains an empty path segment ("//")`;
    if (seg === "..") return `${what} contains ".." (a parent path)`;
    if (seg === ".") return `${what} contains "." as a path segment`;
    if (forbidden.has(seg.toLowerCase()))
      return `${what} contains the path segment "${seg}", which is reserved by the KV engine (no data/ or metadata/ injection)`;
    if (!SEGMENT.test(seg)) {
      const bad = [...seg].find((c) => !/[A-Za-z0-9_.-]/.test(c)) ?? "";
      return `${what} contains ${JSON.stringify(bad)} (${describeChar(bad)}); path segments may hold only A-Z, a-z, 0-9, "_", "." and "-"`;
    }
  }
  if (segments.length > 16) return `${what} has more than 16 path segments`;
  return undefined;
}

/** Checks a provider's path template; throws validation_error/InvalidSecretProvider. */
export function checkPathTemplate(template: string): void {
  const bad = (msg: string) =>
    new ConnectorError("validation_error", "InvalidSecretProvider", `${PATH_TEMPLATE_FIELD}: ${msg}`);
  const placeholders = [...template.matchAll(/\{([^}]*)\}/g)].map((m) => m[1]);
  for (const p of placeholders)
    if (p !== "namespace" && p !== "name")
      throw bad(`unknown placeholder {${p}} (only {namespace} and {name})`);
  const count = (p: string) => placeholders.filter((x) => x === p).length;
  if (count("namespace") !== 1 || count("name") !== 1)
    throw bad("must contain {namespace} and {name} exactly once each");
  if (template.indexOf("{namespace}") > template.indexOf("{name}"))
    throw bad("{namespace} must come before {name}");
  // {name} must be a whole trailing part: "x/{name}" (so a name can only add segments below it).
  if (!template.endsWith("{name}") || !/(^|\/)\{name\}$/.test(template)) throw bad('must end with "/{name}"');
  if (!/(^|\/)\{namespace\}(\/|$)/.test(template)) throw bad("{namespace} must be a whole path segment");
  const sample = template.replace("{namespace}", "ns").replace("{name}", "name");
  const problem = pathProblem(sample, "the template", new Set());
  if (problem) throw bad(problem);
  const first = sample.split("/")[0] ?? "";
  if (KV_VERBS.has(first.toLowerCase()))
    throw bad(`must not start with "${first}/", which is a KV engine API path`);
}

/** Checks a Kubernetes namespace name. */
export function checkNamespaceName(namespace: string): void {
  if (namespace.length > 63 || !NAMESPACE.test(namespace))
    throw invalid(`the Connector's namespace ${JSON.stringify(namespace)} is not a valid namespace name`);
}

/**
 * Renders the provider's path template for a Connector in `namespace` naming `name`, after
 * checking both. The result is relative to the KV mount and never leaves the namespace's
 * part of the tree.
 */
export function renderSecretPath(template: string | undefined, namespace: string, name: string): string {
  const tpl = template ?? DEFAULT_PATH_TEMPLATE;
  checkPathTemplate(tpl);
  checkNamespaceName(namespace);
  if (typeof name !== "string") throw invalid(`${SECRET_NAME_FIELD} must be a string`);
  const problem = pathProblem(name, SECRET_NAME_FIELD, NAME_FORBIDDEN);
  if (problem) throw invalid(`${problem} (got ${JSON.stringify(truncate(name))})`);
  const path = tpl.replace("{namespace}", namespace).replace("{name}", name);
  // Belt and braces: the rendered path starts with the namespace's prefix and adds only
  // safe segments to it.
  const prefix = tpl.slice(0, tpl.indexOf("{name}")).replace("{namespace}", namespace);
  if (!path.startsWith(prefix) || pathProblem(path, "the secret path", new Set()) !== undefined)
    throw invalid(`${SECRET_NAME_FIELD} escapes the namespace's secret path`);
  return path;
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * The name of the Secret a kubernetes provider reads for a Connector in `namespace`: the
 * path guard's checks (so "..", "/", look-alikes and encodings are refused with the same
 * words as for Vault), then one path segment only (a Secret's name never holds a
 * namespace) and a valid Secret name. The Secret is always read in `namespace` itself.
 */
export function kubernetesSecretName(namespace: string, name: string): string {
  checkNamespaceName(namespace);
  if (typeof name !== "string") throw invalid(`${SECRET_NAME_FIELD} must be a string`);
  const problem = pathProblem(name, SECRET_NAME_FIELD, new Set());
  if (problem) throw invalid(`${problem} (got ${JSON.stringify(truncate(name))})`);
  if (name.includes("/"))
    throw invalid(
      `${SECRET_NAME_FIELD} names a Secret in the Connector's own namespace (${namespace}): it cannot hold "/", ` +
        `so no other namespace can be named (got ${JSON.stringify(truncate(name))})`,
    );
  if (name.length > 253 || !DNS_SUBDOMAIN.test(name))
    throw invalid(
      `${SECRET_NAME_FIELD} is not a valid Secret name (lower-case letters, digits, "-" and "." between them; ` +
        `got ${JSON.stringify(truncate(name))})`,
    );
  return name;
}

function truncate(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** True when `labels` satisfy the selector (Kubernetes semantics; an empty selector matches all). */
export function selectorMatches(selector: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const val = labels[e.key];
    switch (e.operator) {
      case "In":
        if (!has || !(e.values ?? []).includes(val ?? "")) return false;
        break;
      case "NotIn":
        if (has && (e.values ?? []).includes(val ?? "")) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

/**
 * Whether Connectors in `namespace` may use the provider: listed in allowedNamespaces, or
 * its labels match namespaceSelector. With neither set, every namespace may. `labels` is
 * undefined when the namespace is unknown (then only allowedNamespaces can admit it).
 * Throws policy_denied/NamespaceNotAllowed.
 */
export function checkNamespaceAllowed(
  providerName: string,
  spec: Pick<SecretProviderSpec, "allowedNamespaces" | "namespaceSelector">,
  namespace: string,
  labels: Record<string, string> | undefined,
): void {
  const list = spec.allowedNamespaces;
  const selector = spec.namespaceSelector;
  if (list === undefined && selector === undefined) return;
  if (list?.includes(namespace)) return;
  if (selector !== undefined && labels !== undefined && selectorMatches(selector, labels)) return;
  throw new ConnectorError(
    "policy_denied",
    "NamespaceNotAllowed",
    `SecretProvider ${providerName} may not be used from namespace ${namespace} ` +
      `(not in its allowedNamespaces${selector ? " and not matching its namespaceSelector" : ""}); ` +
      `see spec.credentials.secretRef.provider`,
  );
}

/**
 * The path guard over the providers known now, for validation: throws when this namespace
 * could not read the reference. An unknown provider passes here (the resolver reports it).
 */
export function secretRefGuard(
  providers: { get(name: string): { metadata: { name: string }; spec: SecretProviderSpec } | undefined },
  namespaceLabels: (namespace: string) => Record<string, string> | undefined,
) {
  return {
    check(namespace: string, ref: { provider: string; name: string }): void {
      const p = providers.get(ref.provider);
      if (!p) return;
      checkNamespaceAllowed(p.metadata.name, p.spec, namespace, namespaceLabels(namespace));
      if (p.spec.kubernetes) kubernetesSecretName(namespace, ref.name);
      else
        renderSecretPath(p.spec.vault ? p.spec.vault.pathTemplate : FILE_PATH_TEMPLATE, namespace, ref.name);
    },
  };
}
