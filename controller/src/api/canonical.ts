import { createHash } from "node:crypto";

/** JSON with object keys sorted, so equal values always print alike. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v && typeof v === "object" && !Array.isArray(v) && !(v instanceof Date)) {
      const sorted: Record<string, unknown> = {};
      for (const key of Object.keys(v).sort()) sorted[key] = (v as Record<string, unknown>)[key];
      return sorted;
    }
    return v;
  });
}

/**
 * Equal as canonicalJson would print them (key order ignored, a Date equal to its ISO
 * string, an undefined property equal to a missing one, an undefined array item to null),
 * without building the strings: the reconciler compares every desired field each pass.
 */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a instanceof Date) a = a.toJSON();
  if (b instanceof Date) b = b.toJSON();
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!deepEqual(a[i] ?? null, b[i] ?? null)) return false;
    return true;
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let keys = 0;
  for (const k of Object.keys(x)) {
    if (x[k] === undefined) continue;
    keys++;
    if (!deepEqual(x[k], y[k])) return false;
  }
  for (const k of Object.keys(y)) if (y[k] !== undefined) keys--;
  return keys === 0;
}

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}
