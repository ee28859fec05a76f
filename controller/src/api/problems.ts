import type { ErrorObject } from "ajv";

/** One thing wrong with an input, located by a dotted field path (`spec.config.port`). */
export interface Problem {
  path: string;
  message: string;
}

export const MAX_PROBLEMS = 20;

/** `/spec/policy/allowOperations/0` => `spec.policy.allowOperations[0]` */
export function pointerToPath(pointer: string, prefix = ""): string {
  let out = prefix;
  for (const raw of pointer.split("/").slice(1)) {
    const seg = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (/^\d+$/.test(seg)) out += `[${seg}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** Appends a key: `.key` when it reads as a name, `["a.b"]` otherwise (never ambiguous). */
export function joinPath(base: string, key: string): string {
  if (/^[A-Za-z_$][\w$-]*$/.test(key)) return base ? `${base}.${key}` : key;
  return `${base}[${JSON.stringify(key)}]`;
}

function describe(e: ErrorObject): { extra?: string; message: string } {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case "required":
      return { extra: String(p.missingProperty), message: "is required" };
    case "additionalProperties":
      return { extra: String(p.additionalProperty), message: "is not allowed (unknown field)" };
    case "enum":
      return {
        message: `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`,
      };
    case "type":
      return { message: `must be of type ${String(p.type)}` };
    default:
      return { message: e.message ?? `fails ${e.keyword}` };
  }
}

export function ajvProblems(errors: ErrorObject[] | null | undefined, prefix = ""): Problem[] {
  const seen = new Set<string>();
  const out: Problem[] = [];
  for (const e of errors ?? []) {
    const { extra, message } = describe(e);
    let path = pointerToPath(e.instancePath, prefix);
    if (extra !== undefined) path = joinPath(path, extra);
    const key = `${path}\u0000${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ path: path || "(root)", message });
    if (out.length >= MAX_PROBLEMS) break;
  }
  return out;
}

export function formatProblems(problems: Problem[]): string {
  return problems.map((p) => `${p.path}: ${p.message}`).join("; ");
}

/** A user-supplied value quoted for a message, cut short so a hostile input cannot flood it. */
export function quote(value: unknown, max = 64): string {
  const text = typeof value === "string" ? value : String(value);
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
}
