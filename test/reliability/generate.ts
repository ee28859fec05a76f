// Bad input, generated with fast-check from the valid examples (examples/connectors/*.yaml):
// each spec is an example with one to three mutations — wrong types, missing and unknown
// fields, huge strings and arrays, deep nesting, unicode and control characters, injection
// strings (SQL, path traversal, templates, shell) in names, paths and config, and the suite's
// secret values in fields that must be refused. Plus the checks every refusal must pass: a
// non-empty message and a field path that is a real dotted path into the document.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import * as yaml from "js-yaml";
import { projectRoot } from "../../controller/src/api/paths.ts";
import type { Connector } from "../../controller/src/api/types.ts";
import { listYamlFiles } from "../../controller/src/catalog/fileCatalog.ts";
import { BEARER_SECRET, COOKIE_SECRET, FULL, PASSWORD_SECRET } from "./harness.ts";

export const SEEDS: Connector[] = listYamlFiles([join(projectRoot, "examples/connectors")]).map(
  (f) => yaml.load(readFileSync(f, "utf8")) as Connector,
);

export const INJECTIONS = [
  "'; DROP TABLE connector_instances;--",
  '" OR 1=1 --',
  "1; SELECT pg_sleep(10)",
  "../../../../etc/passwd",
  "..\\..\\windows\\system32\\config",
  "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
  "/etc/shadow",
  "file:///etc/passwd",
  "{{ .Values.secret }}",
  "{{7*7}}",
  "${7*7}",
  "${jndi:ldap://127.0.0.1/a}",
  "#{7*7}",
  "<%= 7*7 %>",
  "$(touch /tmp/pwned)",
  "`id`",
  "; rm -rf / ;",
  "| nc 127.0.0.1 4444",
  "&& curl http://127.0.0.1:1",
  "\r\nX-Injected: 1",
  "<script>alert(1)</script>",
  "__proto__",
  "constructor",
  "\u0000",
  "a\u0000b",
  "\u202efdp.exe",
  "\ufeffBOM",
  "\u200b",
  "\ud83d\ude00",
  "\ud800",
  "Ω≈ç√∫",
  "null",
  "~",
  "true",
  "0x10",
  "1e309",
  "-0",
  "",
  " ",
  "\t\n",
];

/** Paths worth aiming at: names, identities, paths and config fields. */
export const TARGETS = [
  "metadata.name",
  "metadata.namespace",
  "metadata.annotations",
  "metadata.labels",
  "spec.type",
  "spec.typeVersion",
  "spec.enabled",
  "spec.owner.id",
  "spec.owner.type",
  "spec.projectId",
  "spec.config",
  "spec.config.host",
  "spec.config.port",
  "spec.config.baseUrl",
  "spec.config.healthPath",
  "spec.config.mailbox",
  "spec.config.database",
  "spec.config.headers",
  "spec.credentials.mode",
  "spec.credentials.secretRef.name",
  "spec.credentials.secretRef.provider",
  "spec.credentials.secretRef.keys",
  "spec.policyTemplate",
  "spec.policy.allowOperations",
  "spec.policy.actionScope",
  "spec.limits.rateLimit.rps",
  "spec.healthCheck.intervalSeconds",
];

/** Secrets put where they must be refused (and so must never be echoed anywhere). */
const LEAKS: { path: string; value: unknown }[] = [
  { path: "spec.config.headers", value: { Authorization: `Bearer ${BEARER_SECRET}` } },
  { path: "spec.config.headers", value: { "X-Ok": "1", Cookie: `session=${COOKIE_SECRET}` } },
  { path: "spec.config.headers", value: { "Proxy-Authorization": `Basic ${PASSWORD_SECRET}` } },
  { path: "spec.config.password", value: PASSWORD_SECRET },
  { path: "spec.config.token", value: BEARER_SECRET },
  { path: "spec.credentials.password", value: PASSWORD_SECRET },
  { path: "spec.credentials.secretRef.value", value: PASSWORD_SECRET },
  { path: "spec.password", value: PASSWORD_SECRET },
];

const maxHuge = FULL ? 200_000 : 30_000;

const hugeString = fc
  .tuple(fc.constantFrom("a", "é", "😀", "\u0000", "../", "{{", "%"), fc.integer({ min: 4096, max: maxHuge }))
  .map(([s, n]) => s.repeat(Math.ceil(n / s.length)));
const hugeArray = fc
  .tuple(fc.constantFrom<unknown>("x", 1, {}, [], null), fc.integer({ min: 100, max: 5_000 }))
  .map(([v, n]) => Array.from({ length: n }, () => structuredClone(v)));
const deep = fc.tuple(fc.integer({ min: 10, max: FULL ? 800 : 300 }), fc.boolean()).map(([d, arr]) => {
  let v: unknown = "bottom";
  for (let i = 0; i < d; i++) v = arr ? [v] : { n: v };
  return v;
});

export const weirdValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...INJECTIONS) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 48 }) },
  { weight: 2, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 4 }) },
  {
    weight: 1,
    arbitrary: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
  },
  { weight: 1, arbitrary: hugeString },
  { weight: 1, arbitrary: hugeArray },
  { weight: 1, arbitrary: deep },
);

const keyArb = fc.oneof(
  fc.constantFrom(
    "unknownField",
    "__proto__",
    "constructor",
    "$ref",
    "a.b",
    "a b",
    "",
    "ü",
    "../x",
    "{{x}}",
    "0",
  ),
  fc.string({ unit: "binary", maxLength: 12 }),
);

export type Op =
  | { kind: "set"; at: number; value: unknown }
  | { kind: "delete"; at: number }
  | { kind: "add"; at: number; key: string; value: unknown }
  | { kind: "target"; path: string; value: unknown }
  | { kind: "leak"; leak: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: weirdValue }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("delete" as const), at: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("add" as const), at: fc.nat(), key: keyArb, value: weirdValue }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("target" as const),
      path: fc.constantFrom(...TARGETS),
      value: weirdValue,
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("leak" as const), leak: fc.nat(LEAKS.length - 1) }) },
);

export interface Generated {
  seed: number;
  ops: Op[];
  doc: Record<string, unknown>;
}

export const specArb: fc.Arbitrary<Generated> = fc
  .record({ seed: fc.nat(SEEDS.length - 1), ops: fc.array(opArb, { minLength: 1, maxLength: 3 }) })
  .map(({ seed, ops }) => {
    const doc = structuredClone(SEEDS[seed]) as unknown as Record<string, unknown>;
    for (const op of ops) apply(doc, op);
    return { seed, ops, doc };
  });

// ---------------------------------------------------------------------------------------
// Mutating a document
// ---------------------------------------------------------------------------------------
type Seg = string | number;
type Container = Record<string, unknown> | unknown[];

const isContainer = (v: unknown): v is Container => typeof v === "object" && v !== null;

/** Every path in the document below the root (containers included), in a stable order. */
export function allPaths(doc: unknown, max = 400): Seg[][] {
  const out: Seg[][] = [];
  const walk = (v: unknown, at: Seg[]) => {
    if (out.length >= max || !isContainer(v)) return;
    const entries: [Seg, unknown][] = Array.isArray(v)
      ? v.slice(0, 20).map((x, i) => [i, x])
      : Object.entries(v);
    for (const [k, x] of entries) {
      out.push([...at, k]);
      if (at.length < 12) walk(x, [...at, k]);
    }
  };
  walk(doc, []);
  return out;
}

/** Sets an own property (also for keys like __proto__). */
function put(obj: Container, key: Seg, value: unknown): void {
  if (Array.isArray(obj) && typeof key === "number") obj[key] = value;
  else Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function parentOf(doc: Container, path: Seg[]): Container | undefined {
  let cur: unknown = doc;
  for (const seg of path.slice(0, -1)) {
    if (!isContainer(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[seg as string];
  }
  return isContainer(cur) ? cur : undefined;
}

function ensureParent(doc: Container, path: Seg[]): Container {
  let cur: Container = doc;
  for (const seg of path.slice(0, -1)) {
    const next = (cur as Record<string, unknown>)[seg as string];
    if (isContainer(next)) cur = next;
    else {
      const fresh = {};
      put(cur, seg, fresh);
      cur = fresh;
    }
  }
  return cur;
}

export function apply(doc: Record<string, unknown>, original: Op): void {
  // A copy: fast-check hands out the same constant objects to many specs, and a later
  // mutation must not reach into another spec (or into an earlier part of this one).
  const op = structuredClone(original);
  switch (op.kind) {
    case "set":
    case "delete":
    case "add": {
      const paths = allPaths(doc);
      if (!paths.length) return;
      const path = paths[op.at % paths.length]!;
      const parent = parentOf(doc, path);
      if (!parent) return;
      const last = path.at(-1)!;
      if (op.kind === "set") put(parent, last, op.value);
      else if (op.kind === "delete") {
        if (Array.isArray(parent)) parent.splice(last as number, 1);
        else delete (parent as Record<string, unknown>)[last as string];
      } else {
        const target = (parent as Record<string, unknown>)[last as string];
        if (isContainer(target) && !Array.isArray(target)) put(target, op.key, op.value);
        else put(parent, Array.isArray(parent) ? parent.length : op.key, op.value);
      }
      return;
    }
    case "target": {
      const path = op.path.split(".");
      put(ensureParent(doc, path), path.at(-1)!, op.value);
      return;
    }
    case "leak": {
      const { path, value } = LEAKS[op.leak]!;
      const segs = path.split(".");
      put(ensureParent(doc, segs), segs.at(-1)!, structuredClone(value));
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Checking a refusal's field path
// ---------------------------------------------------------------------------------------
const IDENT = /^[A-Za-z_$][\w$-]*/;

/** `spec.config["a b"].x[0]` => ["spec", "config", "a b", "x", 0]; undefined if not a path. */
export function parsePath(p: string): Seg[] | undefined {
  const segs: Seg[] = [];
  let rest = p;
  const first = IDENT.exec(rest);
  if (first) {
    segs.push(first[0]);
    rest = rest.slice(first[0].length);
  } else if (!rest.startsWith("[")) return undefined;
  while (rest.length) {
    if (rest.startsWith(".")) {
      const m = IDENT.exec(rest.slice(1));
      if (!m) return undefined;
      segs.push(m[0]);
      rest = rest.slice(1 + m[0].length);
      continue;
    }
    const idx = /^\[(\d+)\]/.exec(rest);
    if (idx) {
      segs.push(Number(idx[1]));
      rest = rest.slice(idx[0].length);
      continue;
    }
    const str = /^\[("(?:[^"\\]|\\.)*")\]/.exec(rest);
    if (str) {
      segs.push(JSON.parse(str[1]!) as string);
      rest = rest.slice(str[0].length);
      continue;
    }
    return undefined;
  }
  return segs;
}

/**
 * Why `path` is not a real field path into `doc`, or undefined when it is: it must parse,
 * and everything but its last segment must exist in the document (the last may be the
 * missing field a "required" names).
 */
export function pathProblem(doc: unknown, path: string, message = ""): string | undefined {
  if (path === "(root)" || path === "(yaml)" || path === "(document)") return undefined;
  const segs = parsePath(path);
  if (!segs || segs.length === 0) return `"${path.slice(0, 80)}" is not a dotted field path`;
  // "x.y.z is required" may name a field whose parents are missing too.
  if (/is required|required when/.test(message)) return undefined;
  let cur: unknown = doc;
  for (const [i, seg] of segs.slice(0, -1).entries()) {
    if (!isContainer(cur) || !Object.prototype.hasOwnProperty.call(cur, seg))
      return `"${path.slice(0, 120)}": ${segs.slice(0, i + 1).join(".")} does not exist in the document`;
    cur = (cur as Record<string, unknown>)[seg as string];
  }
  return undefined;
}

/** Nesting depth of a value (containers only), stopping at `limit`. */
export function depthOf(v: unknown, limit = 200): number {
  if (!isContainer(v) || limit <= 0) return 0;
  let max = 0;
  for (const x of Array.isArray(v) ? v : Object.values(v)) {
    if (!isContainer(x)) continue;
    max = Math.max(max, depthOf(x, limit - 1));
    if (max >= limit) break;
  }
  return 1 + max;
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const stringMap = (v: unknown) =>
  v === undefined ||
  (isContainer(v) && !Array.isArray(v) && Object.values(v).every((x) => typeof x === "string"));

/**
 * What the API server checks itself, outside the CRD's schema: a metadata object with a
 * DNS-subdomain name, and string maps for labels and annotations. (The CRD check covers
 * the rest; together they say whether the API server would store the object.)
 */
export function metadataProblem(doc: Record<string, unknown>): string | undefined {
  const m = doc.metadata as Record<string, unknown> | undefined;
  if (!isContainer(m) || Array.isArray(m)) return "metadata is not an object";
  if (typeof m.name !== "string" || m.name.length > 253 || !DNS_SUBDOMAIN.test(m.name))
    return "metadata.name is not a DNS subdomain";
  if (m.namespace !== undefined && (typeof m.namespace !== "string" || !DNS_SUBDOMAIN.test(m.namespace)))
    return "metadata.namespace is not a DNS label";
  if (!stringMap(m.labels) || !stringMap(m.annotations)) return "labels or annotations are not string maps";
  return undefined;
}

/** Human-readable summary of what was done to a seed. */
export function describeOps(g: Generated): string {
  const short = (v: unknown): string => {
    if (typeof v === "string") {
      const s = JSON.stringify(v.slice(0, 40));
      return v.length > 40 ? `${s}...(${v.length} chars)` : s;
    }
    if (Array.isArray(v)) return `[array of ${v.length}]`;
    if (v && typeof v === "object") return `{object with ${Object.keys(v).length} keys}`;
    return String(v);
  };
  return `${SEEDS[g.seed]!.metadata.name}: ${g.ops
    .map((o) =>
      o.kind === "target"
        ? `set ${o.path}=${short(o.value)}`
        : o.kind === "leak"
          ? `leak #${o.leak}`
          : o.kind === "add"
            ? `add key ${short(o.key)}`
            : `${o.kind} @${o.at}`,
    )
    .join(", ")}`;
}

/** Strings PostgreSQL's jsonb cannot hold (U+0000, lone surrogates) anywhere in the value. */
export function hasUnstorableString(v: unknown): boolean {
  // eslint-disable-next-line no-control-regex
  const bad = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
  const seen = (x: unknown, depth: number): boolean => {
    if (depth > 1000) return false;
    if (typeof x === "string") return bad.test(x);
    if (Array.isArray(x)) return x.some((y) => seen(y, depth + 1));
    if (x && typeof x === "object")
      return Object.entries(x).some(([k, y]) => bad.test(k) || seen(y, depth + 1));
    return false;
  };
  return seen(v, 0);
}
