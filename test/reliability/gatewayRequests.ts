// Bad invocation requests for the gateway, generated with fast-check: malformed JSON, wrong
// types in the body, inputs that break the operation's inputSchema (the mutations of
// generate.ts: injections, unicode and NUL, huge strings and arrays, deep nesting), bodies
// over the limits, path tricks in the names of the URL, forged, expired and misbound approval
// tokens, and bearer tokens that are missing, malformed, forged, expired or revoked.
//
// Each request comes with what its answer must say, worked out here from the request alone
// (the route's and the operation's JSON Schemas, the nesting and size limits): the status, and
// the field a validation error must name or the rule a denial must name.
import { createHmac, createSign, generateKeyPairSync, randomUUID } from "node:crypto";
import fc from "fast-check";
import type { ValidateFunction } from "ajv";
import { createAjv } from "../../controller/src/api/ajv.ts";
import { canonicalJson, sha256 } from "../../controller/src/api/canonical.ts";
import { ajvProblems } from "../../controller/src/api/problems.ts";
import type { ConnectorType, JsonObject, Operation, TypeVersion } from "../../controller/src/api/types.ts";
import { nestingDepth } from "../../controller/src/gateway/http.ts";
import * as S from "../../controller/src/gateway/schemas.ts";
import { SECRETS } from "./harness.ts";
import { INJECTIONS, weirdValue } from "./generate.ts";

/** What the answer to a request must be. */
export interface Expect {
  /** Statuses that are right for it. */
  status: number[];
  /** A validation error must name one of these fields (a problem's path equal to one, or under one). */
  fields?: string[];
  /** A policy denial must name this rule. */
  rule?: string;
  /** The reason the answer must carry (when the status alone does not say it). */
  reasons?: string[];
  /** What its detail must say. */
  detail?: RegExp;
}

export interface BadCall {
  kind: string;
  method: "POST";
  /** The raw request target, sent as is (no URL normalisation). */
  path: string;
  headers: Record<string, string>;
  body: Buffer;
  expect: Expect;
  /** Valid as far as the schemas can tell: it may succeed (it is then not counted as bad input). */
  mayPass?: boolean;
}

export interface GatewayFixture {
  ns: string;
  /** The http Connector every generated call is about (it allows fetch, mutate and deliverEvent). */
  connector: string;
  uid: string;
  type: ConnectorType;
  version: TypeVersion;
  /** A token RBAC lets get and invoke the Connector, and its username. */
  token: string;
  user: string;
  /** A token RBAC lets do nothing. */
  strangerToken: string;
  /** Tokens the API server must refuse, by what is wrong with them. */
  badTokens: { label: string; token: string }[];
  /** The gateway's approval HMAC key (the suite signs expired and misbound approvals with it). */
  approvalKey: Buffer;
  approver: string;
  maxBodyBytes: number;
  maxDepth: number;
}

const MUTATING_PATH = "/effects/generated";

function op(f: GatewayFixture, name: string): Operation {
  const o = f.version.operations.find((x) => x.name === name);
  if (!o) throw new Error(`the http type has no operation ${name}`);
  return o;
}

/** The operation's inputSchema as the gateway compiles it (defaults applied, formats on). */
class InputOracle {
  readonly #ajv = createAjv({ useDefaults: true });
  readonly #body = createAjv({ coerceTypes: false, removeAdditional: false }).compile(S.invokeBody);
  readonly #params = createAjv().compile(S.operationParams);
  readonly #ops = new Map<string, ValidateFunction>();

  input(o: Operation, input: unknown): string[] {
    let check = this.#ops.get(o.name);
    if (!check) {
      const { $id: _id, ...schema } = (o.inputSchema ?? { type: "object" }) as { $id?: string };
      check = this.#ajv.compile(schema);
      this.#ops.set(o.name, check);
    }
    return check(structuredClone(input)) ? [] : ajvProblems(check.errors, "input").map((p) => p.path);
  }

  body(body: unknown): string[] {
    return this.#body(body) ? [] : ajvProblems(this.#body.errors, "").map((p) => p.path);
  }

  params(p: { ns: string; name: string; op: string }): string[] {
    return this.#params(p) ? [] : ajvProblems(this.#params.errors, "params").map((x) => x.path);
  }
}

const oracle = new InputOracle();

const validInput: Record<string, JsonObject> = {
  fetch: { path: "/items/1", query: { q: "x" } },
  deliverEvent: { type: "com.example.generated", data: { n: 1 } },
  mutate: { method: "POST", path: MUTATING_PATH, body: { n: 1 } },
};

function invokePath(f: GatewayFixture, operation: string, ns = f.ns, name = f.connector): string {
  return `/v1/namespaces/${ns}/connectors/${name}/operations/${operation}`;
}

function jsonHeaders(token: string | undefined): Record<string, string> {
  return {
    "content-type": "application/json",
    ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
  };
}

/**
 * What a well-routed, authenticated call with this body must be answered with, from the
 * schemas alone: the first check of the gateway's pipeline it fails.
 */
function expectFor(
  f: GatewayFixture,
  operation: string,
  text: string,
): { expect: Expect; mayPass?: boolean } {
  if (Buffer.byteLength(text) > f.maxBodyBytes)
    return { expect: { status: [413], reasons: ["PayloadTooLarge"] } };
  if (nestingDepth(text) > f.maxDepth) return { expect: { status: [400], reasons: ["InvalidJson"] } };
  let body: unknown;
  try {
    body = text.length === 0 ? {} : JSON.parse(text);
  } catch {
    return { expect: { status: [400], reasons: ["InvalidJson"] } };
  }
  const bodyFields = oracle.body(body);
  if (bodyFields.length) return { expect: { status: [400], fields: bodyFields } };
  const b = body as { input?: JsonObject; mode?: string; approval?: string };
  const o = op(f, operation);
  const inputFields = oracle.input(o, b.input ?? {});
  if (inputFields.length) return { expect: { status: [400], fields: inputFields } };
  if (o.maxPayloadBytes !== undefined && Buffer.byteLength(JSON.stringify(b.input ?? {})) > o.maxPayloadBytes)
    return { expect: { status: [413], fields: ["input"] } };
  if (o.class !== "auto" && b.approval === undefined)
    return { expect: { status: [403], rule: "approval-required" } };
  if (b.mode !== undefined && b.mode !== o.mode) return { expect: { status: [400], fields: ["mode"] } };
  // Valid to the schemas: the driver may still refuse a path trick (a field under input), or it runs.
  return { expect: { status: [200, 202, 400, 403], fields: ["input"] }, mayPass: true };
}

function call(
  f: GatewayFixture,
  kind: string,
  operation: string,
  text: string,
  token: string | undefined = f.token,
): BadCall {
  const { expect, mayPass } = expectFor(f, operation, text);
  return {
    kind,
    method: "POST",
    path: invokePath(f, operation),
    headers: jsonHeaders(token),
    body: Buffer.from(text),
    expect,
    ...(mayPass ? { mayPass } : {}),
  };
}

const operationArb = fc.constantFrom("fetch", "deliverEvent", "mutate");
const secretArb = fc.constantFrom(...SECRETS);
/** Weird values, the suite's secrets among them (they must never come back). */
const valueArb = fc.oneof({ weight: 9, arbitrary: weirdValue }, { weight: 1, arbitrary: secretArb });

// --- malformed JSON ---------------------------------------------------------------------
const MALFORMED = [
  "{'input':{}}",
  '{"input":{},}',
  '{"input":NaN}',
  "{input:{}}",
  "/* c */{}",
  "\ufeff{}",
  '{"a":1}{"b":2}',
  "[",
  "{",
  '{"input":{"path":"/\u0000"}}',
  '{"input":{"path":"/x\n"}}',
  '{"input":"\\x41"}',
  '{"input":{"path":"\\ud83d"',
  "undefined",
  "nul",
  '{"input":{"path":\'/x\'}}',
  '{"input":01}',
  '{"input":{"maxBytes":1e}}',
  '{"input":{"path":"/x"}}garbage',
  "\u0000",
  '{"input":{"path":"/x"},"idempotencyKey":"\\u00"}',
];

const malformedArb: fc.Arbitrary<(f: GatewayFixture) => BadCall> = fc
  .tuple(
    operationArb,
    fc.oneof(
      fc.constantFrom(...MALFORMED),
      // A valid body cut short.
      fc
        .tuple(
          fc.constantFrom(...Object.values(validInput)),
          fc.double({ min: 0.05, max: 0.95, noNaN: true }),
        )
        .map(([input, at]) => {
          const text = JSON.stringify({ input });
          return text.slice(0, Math.max(1, Math.floor(text.length * at)));
        }),
      // Random bytes after a brace.
      fc.string({ unit: "binary", minLength: 1, maxLength: 64 }).map((s) => `{${s}`),
    ),
  )
  .map(
    ([operation, text]) =>
      (f) =>
        call(f, "malformed JSON", operation, text),
  );

// --- wrong types in the body envelope ---------------------------------------------------
const envelopeKeyArb = fc.oneof(
  fc.constantFrom("input", "idempotencyKey", "mode", "approval"),
  fc.constantFrom("inputs", "__proto__", "constructor", "Input", "mode ", "", "\u0000", "x".repeat(300)),
);

const envelopeArb: fc.Arbitrary<(f: GatewayFixture) => BadCall> = fc
  .tuple(operationArb, fc.array(fc.tuple(envelopeKeyArb, valueArb), { minLength: 1, maxLength: 3 }))
  .map(([operation, sets]) => (f) => {
    const body: Record<string, unknown> = { input: structuredClone(validInput[operation]) };
    for (const [k, v] of sets)
      Object.defineProperty(body, k, { value: v, enumerable: true, writable: true, configurable: true });
    return call(f, "wrong types in the body", operation, JSON.stringify(body));
  });

// --- inputs that break the operation's schema --------------------------------------------
const FIELDS: Record<string, string[]> = {
  fetch: ["path", "method", "query", "accept", "maxBytes", "query.q", "extra"],
  deliverEvent: ["type", "data", "id", "source", "subject", "time", "idempotencyKey", "maxBytes", "extra"],
  mutate: ["method", "path", "query", "body", "idempotencyKey", "maxBytes", "extra"],
};

const inputArb: fc.Arbitrary<(f: GatewayFixture) => BadCall> = fc
  .tuple(
    operationArb,
    fc.array(
      fc.record({
        field: fc.nat(),
        action: fc.constantFrom("set", "set", "set", "delete", "key"),
        key: fc.oneof(
          fc.constantFrom("__proto__", "constructor", "$ref", "a\u0000b", "\ud800", "é", "../x", ""),
          fc.string({ unit: "binary", maxLength: 12 }),
        ),
        value: valueArb,
      }),
      { minLength: 1, maxLength: 3 },
    ),
  )
  .map(([operation, changes]) => (f) => {
    const input = structuredClone(validInput[operation]!) as Record<string, unknown>;
    for (const c of changes) {
      const field = FIELDS[operation]![c.field % FIELDS[operation]!.length]!;
      const [head, tail] = field.split(".") as [string, string | undefined];
      if (tail && (typeof input[head] !== "object" || input[head] === null)) input[head] = {};
      const parent = (tail ? input[head] : input) as Record<string, unknown>;
      const key = tail ?? head;
      if (c.action === "delete") delete parent[key];
      else
        Object.defineProperty(parent, c.action === "key" ? c.key : key, {
          value: c.value,
          enumerable: true,
          writable: true,
          configurable: true,
        });
    }
    return call(f, "input against the schema", operation, JSON.stringify({ input }));
  });

// --- over the limits -----------------------------------------------------------------------
const hugeArb: fc.Arbitrary<(f: GatewayFixture) => BadCall> = fc
  .tuple(
    fc.boolean(),
    fc.double({ min: 1.02, max: 1.9, noNaN: true }),
    fc.constantFrom("a", "é", "\u0000", "😀"),
  )
  .map(([overBody, factor, unit]) => (f) => {
    if (overBody) {
      // Over the body limit: refused before it is parsed.
      const n = Math.ceil(f.maxBodyBytes * factor);
      const text = JSON.stringify({ input: { path: "/x", query: { q: "a".repeat(n) } } });
      return call(f, "body over the limit", "fetch", text);
    }
    // Under the body limit, over deliverEvent's maxPayloadBytes.
    const cap = op(f, "deliverEvent").maxPayloadBytes!;
    const bytes = Math.min(Math.ceil(cap * factor), f.maxBodyBytes - 1024);
    const chars = Math.floor(bytes / Buffer.byteLength(JSON.stringify(unit).slice(1, -1)));
    const text = JSON.stringify({ input: { type: "t", data: unit.repeat(chars) } });
    return call(f, "input over maxPayloadBytes", "deliverEvent", text);
  });

const deepArb: fc.Arbitrary<(f: GatewayFixture) => BadCall> = fc
  .tuple(fc.integer({ min: 1, max: 400 }), fc.boolean(), fc.boolean())
  .map(([depth, arrays, raw]) => (f) => {
    if (raw) {
      // Text only, never built: deep enough to break a recursive parser.
      const text = `{"input":{"path":"/x","query":{"a":${"[".repeat(depth * 250)}${"]".repeat(depth * 250)}}}}`;
      return call(f, "deep nesting", "fetch", text);
    }
    let v: unknown = "bottom";
    for (let i = 0; i < depth; i++) v = arrays ? [v] : { n: v };
    return call(f, "deep nesting", "fetch", JSON.stringify({ input: { path: "/x", query: { a: v } } }));
  });

// --- path tricks in the names of the URL -------------------------------------------------
/** Percent-encodes every byte of the UTF-8 (lone surrogates as U+FFFD, as fetch would). */
function encodeAll(s: string): string {
  return [...Buffer.from(s, "utf8")].map((b) => `%${b.toString(16).padStart(2, "0").toUpperCase()}`).join("");
}

const RAW_SEGMENTS = [
  "..",
  ".",
  "%2e%2e",
  "%2E",
  "a%2Fb",
  "%2F",
  "%5C",
  "%00",
  "a%00b",
  "%ZZ",
  "%",
  "Web",
  "web%20",
  "web.",
  "-web",
  "x".repeat(300),
  "%C0%AE%C0%AE",
  "%E2%80%AE",
  "%F0%9F%98%80",
  "constructor",
  "__proto__",
  "toString",
  "hasOwnProperty",
];

const segmentArb = fc.oneof(
  fc.constantFrom(...RAW_SEGMENTS),
  fc.constantFrom(...INJECTIONS).map(encodeAll),
  fc.string({ unit: "binary", minLength: 1, maxLength: 24 }).map(encodeAll),
);

function decodeParam(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

const namesArb: fc.Arbitrary<(f: GatewayFixture) => BadCall> = fc
  .record({ which: fc.constantFrom("ns", "name", "op"), segment: segmentArb, extraSlash: fc.boolean() })
  .map(({ which, segment, extraSlash }) => (f) => {
    const parts = { ns: f.ns, name: f.connector, op: "fetch", [which]: segment };
    const path = `/v1/namespaces/${parts.ns}/connectors/${parts.name}/operations/${parts.op}${extraSlash && which === "op" ? "/x" : ""}`;
    const decoded = { ns: decodeParam(parts.ns), name: decodeParam(parts.name), op: decodeParam(parts.op) };
    const fields =
      decoded.ns === undefined || decoded.name === undefined || decoded.op === undefined
        ? undefined
        : oracle.params(decoded as { ns: string; name: string; op: string });
    const body = Buffer.from(JSON.stringify({ input: validInput.fetch }));
    const routed = !(extraSlash && which === "op") && !/%2f|%5c/i.test(segment);
    const expect: Expect =
      // A name that fits the patterns is looked up: no such Connector or operation, or (in a
      // namespace where the caller may not get Connectors) a refusal that says neither.
      routed && fields !== undefined && fields.length === 0
        ? { status: [403, 404], reasons: ["ConnectorNotFound", "UnknownOperation", "Forbidden"] }
        : routed && fields?.length
          ? { status: [400], fields }
          : { status: [400, 404] };
    return {
      kind: "path tricks in names",
      method: "POST",
      path,
      headers: jsonHeaders(f.token),
      body,
      expect,
    };
  });

// --- approvals -----------------------------------------------------------------------------
function b64(o: unknown): string {
  return Buffer.from(JSON.stringify(o)).toString("base64url");
}

function signApproval(key: Buffer, claims: Record<string, unknown>): string {
  const body = b64(claims);
  return `${body}.${createHmac("sha256", key).update(body).digest("base64url")}`;
}

const approvalArb: fc.Arbitrary<(f: GatewayFixture) => BadCall> = fc
  .record({
    how: fc.constantFrom(
      "garbage",
      "random mac",
      "tampered",
      "another key",
      "expired",
      "another connector",
      "another operation",
      "another input",
      "another requester",
      "unknown version",
      "self-approved",
      "not printable",
    ),
    garbage: fc.string({
      unit: fc.constantFrom(..."abcXYZ0189-_.~!*".split("")),
      minLength: 1,
      maxLength: 200,
    }),
    n: fc.nat(1000),
  })
  .map(({ how, garbage, n }) => (f) => {
    // As the gateway hashes it: with the schema's defaults.
    const input = { ...validInput.mutate!, body: { n }, maxBytes: 262_144 } as JsonObject;
    const now = Date.now();
    const claims: Record<string, unknown> = {
      v: 1,
      jti: randomUUID(),
      uid: f.uid,
      namespace: f.ns,
      name: f.connector,
      operation: "mutate",
      inputHash: sha256(canonicalJson(input)),
      requester: f.user,
      approver: f.approver,
      issuedAt: now - 1000,
      expiresAt: now + 600_000,
    };
    let approval: string;
    let rule = "approval-invalid";
    const because: Record<string, RegExp> = {
      garbage: /malformed|signature/,
      "random mac": /signature/,
      tampered: /signature/,
      "another key": /signature/,
      expired: /expired/,
      "another connector": /another Connector/,
      "another operation": /another operation/,
      "another input": /another input/,
      "another requester": /another requester/,
      "unknown version": /unknown version/,
      "self-approved": /different principal/,
    };
    switch (how) {
      case "garbage":
        approval = garbage;
        break;
      case "random mac":
        approval = `${b64(claims)}.${Buffer.from(garbage).toString("base64url")}`;
        break;
      case "tampered": {
        const [body, mac] = signApproval(f.approvalKey, claims).split(".");
        approval = `${b64({ ...(JSON.parse(Buffer.from(body!, "base64url").toString()) as object), requester: f.user, approver: "x" })}.${mac}`;
        break;
      }
      case "another key":
        approval = signApproval(Buffer.from(garbage.padEnd(32, "k")), claims);
        break;
      case "expired":
        approval = signApproval(f.approvalKey, {
          ...claims,
          issuedAt: now - 7_200_000,
          expiresAt: now - 1 - n,
        });
        break;
      case "another connector":
        approval = signApproval(f.approvalKey, { ...claims, uid: randomUUID() });
        break;
      case "another operation":
        approval = signApproval(f.approvalKey, { ...claims, operation: "fetch" });
        break;
      case "another input":
        approval = signApproval(f.approvalKey, { ...claims, inputHash: sha256(`${n}`) });
        break;
      case "another requester":
        approval = signApproval(f.approvalKey, { ...claims, requester: `${f.user}-other` });
        break;
      case "unknown version":
        approval = signApproval(f.approvalKey, { ...claims, v: 2 });
        break;
      case "self-approved":
        approval = signApproval(f.approvalKey, { ...claims, approver: f.user });
        rule = "self-approval";
        break;
      default:
        approval = `${garbage}\u0000\u202e`;
    }
    const text = JSON.stringify({ input, approval });
    const c = call(f, "forged or misbound approval", "mutate", text);
    if (how !== "not printable" && approval.length <= 4096)
      c.expect = { status: [403], rule, ...(because[how] ? { detail: because[how] } : {}) };
    return c;
  });

// --- bearer tokens -------------------------------------------------------------------------
const tokenArb: fc.Arbitrary<(f: GatewayFixture) => BadCall> = fc
  .record({
    how: fc.constantFrom(
      "none",
      "scheme",
      "empty",
      "garbage",
      "listed",
      "listed",
      "listed",
      "stranger",
      "spaces",
    ),
    garbage: fc.string({
      unit: fc
        .oneof(fc.integer({ min: 0x21, max: 0x7e }), fc.integer({ min: 0xa0, max: 0xff }))
        .map((c) => String.fromCharCode(c)),
      minLength: 1,
      maxLength: 300,
    }),
    pick: fc.nat(),
  })
  .map(({ how, garbage, pick }) => (f) => {
    const listed = f.badTokens[pick % f.badTokens.length]!;
    const authorization: string | undefined = {
      none: undefined,
      scheme: `Basic ${garbage}`,
      empty: "Bearer ",
      garbage: `Bearer ${garbage}`,
      listed: `Bearer ${listed.token}`,
      stranger: `Bearer ${f.strangerToken}`,
      spaces: `Bearer ${f.token} ${garbage}`,
    }[how];
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (authorization !== undefined) headers.authorization = authorization;
    return {
      kind:
        how === "listed"
          ? `token: ${listed.label}`
          : how === "stranger"
            ? "token RBAC refuses"
            : "malformed token",
      method: "POST",
      path: invokePath(f, "fetch"),
      headers,
      body: Buffer.from(JSON.stringify({ input: validInput.fetch })),
      expect:
        how === "stranger"
          ? { status: [403], rule: "rbac" }
          : { status: [401], reasons: ["Unauthenticated"] },
    };
  });

const mediaTypeArb: fc.Arbitrary<(f: GatewayFixture) => BadCall> = fc
  .constantFrom(
    "text/plain",
    "application/x-www-form-urlencoded",
    "application/xml",
    "multipart/form-data; boundary=x",
  )
  .map((type) => (f) => ({
    kind: "wrong media type",
    method: "POST",
    path: invokePath(f, "fetch"),
    headers: { "content-type": type, authorization: `Bearer ${f.token}` },
    body: Buffer.from(JSON.stringify({ input: validInput.fetch })),
    expect: { status: [415], reasons: ["UnsupportedMediaType"] },
  }));

export const badCallArb: fc.Arbitrary<(f: GatewayFixture) => BadCall> = fc.oneof(
  { weight: 14, arbitrary: malformedArb },
  { weight: 16, arbitrary: envelopeArb },
  { weight: 26, arbitrary: inputArb },
  { weight: 1, arbitrary: hugeArb },
  { weight: 6, arbitrary: deepArb },
  { weight: 12, arbitrary: namesArb },
  { weight: 12, arbitrary: approvalArb },
  { weight: 10, arbitrary: tokenArb },
  { weight: 2, arbitrary: mediaTypeArb },
);

// --- tokens the API server must refuse -----------------------------------------------------
function jwt(header: object, payload: object, sign: (data: string) => string): string {
  const data = `${b64(header)}.${b64(payload)}`;
  return `${data}.${sign(data)}`;
}

/**
 * From a genuine service-account token and the key that signs them: the same claims expired
 * (signed with the real key), the same claims signed with another key, and with alg none.
 */
export function forgedTokens(genuine: string, signingKeyPem: string): { label: string; token: string }[] {
  const [h, p] = genuine.split(".");
  const header = JSON.parse(Buffer.from(h!, "base64url").toString()) as Record<string, unknown>;
  const payload = JSON.parse(Buffer.from(p!, "base64url").toString()) as Record<string, number>;
  const rs256 = (pem: string) => (data: string) =>
    createSign("RSA-SHA256").update(data).sign(pem).toString("base64url");
  const past = Math.floor(Date.now() / 1000) - 7200;
  const other = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({
    type: "pkcs8",
    format: "pem",
  }) as string;
  return [
    {
      label: "expired",
      token: jwt(header, { ...payload, iat: past - 3600, nbf: past - 3600, exp: past }, rs256(signingKeyPem)),
    },
    { label: "signed with another key", token: jwt(header, payload, rs256(other)) },
    { label: "alg none", token: jwt({ ...header, alg: "none" }, payload, () => "") },
    {
      label: "payload swapped",
      token: `${h}.${b64({ ...payload, sub: "system:serviceaccount:kube-system:admin" })}.${genuine.split(".")[2]}`,
    },
  ];
}
