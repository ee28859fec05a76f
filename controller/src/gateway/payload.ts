// What goes in and what comes out of an operation (spec §3.3, §16): input checked against
// the operation's inputSchema before anything is called, the result checked against its
// outputSchema before it is returned, then redacted by its rules and cut to its size.
import type { ValidateFunction } from "ajv";
import { createAjv } from "../api/ajv.ts";
import { ConnectorError } from "../api/errors.ts";
import { ajvProblems, formatProblems, joinPath } from "../api/problems.ts";
import type { ConnectorType, JsonObject, JsonValue, Operation, TypeVersion } from "../api/types.ts";

export const REDACTED = "[REDACTED]";
/** Input of an operation that declares no inputSchema: an empty object. */
const NO_INPUT = { type: "object", additionalProperties: false };

/** Compiled schemas per (type, resourceVersion, version, operation); an edited type replaces them. */
export class OperationSchemas {
  readonly #inputAjv = createAjv({ useDefaults: true });
  readonly #outputAjv = createAjv();
  readonly #cache = new Map<string, ValidateFunction>();

  /** The input with the schema's defaults applied, or a validation_error naming each field. */
  checkInput(type: ConnectorType, version: TypeVersion, op: Operation, input: unknown): JsonObject {
    const check = this.#compile("in", type, version, op, op.inputSchema ?? NO_INPUT);
    const copy = structuredClone(input);
    if (!check(copy)) {
      const problems = ajvProblems(check.errors, "input");
      throw new ConnectorError("validation_error", "InvalidInput", formatProblems(problems), { problems });
    }
    return copy as JsonObject;
  }

  /** A result that breaks the outputSchema never leaves: the provider answered something unexpected. */
  checkOutput(type: ConnectorType, version: TypeVersion, op: Operation, data: JsonValue): void {
    if (!op.outputSchema) return;
    const check = this.#compile("out", type, version, op, op.outputSchema);
    if (check(data)) return;
    const problems = ajvProblems(check.errors, "data");
    throw new ConnectorError(
      "permanent",
      "InvalidProviderResponse",
      `the result of ${op.name} does not match the operation's outputSchema: ${formatProblems(problems)}`,
      { problems },
    );
  }

  #compile(dir: "in" | "out", type: ConnectorType, version: TypeVersion, op: Operation, schema: object) {
    const key = `${dir}\u0000${type.metadata.name}\u0000${type.metadata.resourceVersion ?? ""}\u0000${version.version}\u0000${op.name}`;
    let fn = this.#cache.get(key);
    if (!fn) {
      const { $id: _id, ...rest } = schema as { $id?: string };
      try {
        fn = (dir === "in" ? this.#inputAjv : this.#outputAjv).compile(rest);
      } catch (err) {
        throw new ConnectorError(
          "permanent",
          "InvalidTypeSchema",
          `the ${dir === "in" ? "inputSchema" : "outputSchema"} of ${type.metadata.name} ${op.name} does not compile: ${(err as Error).message}`,
        );
      }
      this.#cache.set(key, fn);
    }
    return fn;
  }
}

function escapePointer(segment: string): string {
  return segment.replace(/~/g, "~0").replace(/\//g, "~1");
}

function unescapePointer(segment: string): string {
  return segment.replace(/~1/g, "/").replace(/~0/g, "~");
}

/**
 * Replaces every value the rules name with "[REDACTED]". A rule starting with "/" is a JSON
 * pointer in which "*" matches every array item or object key; any other rule is a field
 * name matched at any depth. Returns the redacted copy and the pointers it replaced.
 */
export function redact(
  data: JsonValue,
  rules: readonly string[] | undefined,
): { data: JsonValue; applied: string[] } {
  if (!rules?.length) return { data, applied: [] };
  const out = structuredClone(data);
  const applied = new Set<string>();
  const names = new Set(rules.filter((r) => !r.startsWith("/")));
  const pointers = rules
    .filter((r) => r.startsWith("/"))
    .map((r) => r.split("/").slice(1).map(unescapePointer));

  const replaceByPointer = (node: JsonValue, path: string[], at: string) => {
    if (node === null || typeof node !== "object") return;
    const [head, ...rest] = path;
    if (head === undefined) return;
    const keys = head === "*" ? Object.keys(node) : Object.hasOwn(node, head) ? [head] : [];
    for (const k of keys) {
      const where = `${at}/${escapePointer(k)}`;
      const child = (node as Record<string, JsonValue>)[k];
      if (child === undefined) continue;
      if (rest.length) replaceByPointer(child, rest, where);
      else {
        (node as Record<string, JsonValue>)[k] = REDACTED;
        applied.add(where);
      }
    }
  };
  const replaceByName = (node: JsonValue, at: string) => {
    if (node === null || typeof node !== "object") return;
    for (const [k, child] of Object.entries(node)) {
      const where = `${at}/${escapePointer(k)}`;
      if (!Array.isArray(node) && names.has(k)) {
        (node as Record<string, JsonValue>)[k] = REDACTED;
        applied.add(where);
      } else replaceByName(child, where);
    }
  };
  for (const p of pointers) replaceByPointer(out, p, "");
  if (names.size) replaceByName(out, "");
  return { data: out, applied: [...applied].sort() };
}

export function byteSize(value: JsonValue): number {
  return Buffer.byteLength(JSON.stringify(value));
}

/** The biggest array or string in the value, by serialized size, with a way to halve it. */
function largest(value: JsonValue): { size: number; halve(): void } | undefined {
  let best: { size: number; halve(): void } | undefined;
  const visit = (node: JsonValue, set: (v: JsonValue) => void) => {
    if (typeof node === "string") {
      const size = Buffer.byteLength(node);
      if (size > 16 && (!best || size > best.size))
        best = { size, halve: () => set(`${node.slice(0, Math.floor(node.length / 2))}…`) };
      return;
    }
    if (node === null || typeof node !== "object") return;
    if (Array.isArray(node)) {
      const size = byteSize(node);
      if (node.length > 0 && (!best || size > best.size))
        best = { size, halve: () => (node.length = Math.floor(node.length / 2)) };
      node.forEach((child, i) => visit(child, (v) => (node[i] = v)));
      return;
    }
    for (const [k, child] of Object.entries(node)) visit(child, (v) => (node[k] = v));
  };
  visit(value, () => undefined);
  return best;
}

/**
 * Cuts the largest arrays and strings of the value in half until it fits `maxBytes`.
 * undefined when it cannot be made to fit (its skeleton alone is larger).
 */
export function truncate(
  value: JsonValue,
  maxBytes: number,
): { data: JsonValue; truncated: boolean } | undefined {
  if (byteSize(value) <= maxBytes) return { data: value, truncated: false };
  const out = structuredClone(value);
  for (let round = 0; round < 256 && byteSize(out) > maxBytes; round++) {
    const target = largest(out);
    if (!target) break;
    target.halve();
  }
  return byteSize(out) <= maxBytes ? { data: out, truncated: true } : undefined;
}

/** Field paths of a JSON pointer, for messages: /messages/0/from => data.messages[0].from */
export function pointerPath(pointer: string): string {
  return pointer
    .split("/")
    .slice(1)
    .map(unescapePointer)
    .reduce((path, seg) => (/^\d+$/.test(seg) ? `${path}[${seg}]` : joinPath(path, seg)), "data");
}
