import { describe, expect, it } from "vitest";
import { mergePatch } from "../../controller/src/kube/resources.ts";

/** RFC 7386 applied, to check that a patch really turns `from` into `to`. */
function applyPatch(target: unknown, patch: unknown): unknown {
  if (!patch || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    target && typeof target === "object" && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = applyPatch(out[k], v);
  }
  return out;
}

describe("mergePatch", () => {
  it("clears keys that went away at every depth, so the stored status equals the computed one", () => {
    const from = {
      state: "provisioning",
      auth: { state: "Pending", url: "https://example.com/authorize?state=abc" },
      lastError: { class: "transient", reason: "VaultUnavailable", message: "sealed" },
      conditions: [{ type: "Ready", status: "False" }],
    };
    const to = {
      state: "active",
      auth: { state: "Authorized" },
      lastError: { class: "permanent", message: "gone" },
      conditions: [{ type: "Ready", status: "True" }],
    };
    const patch = mergePatch(from, to);
    expect(patch.auth).toEqual({ state: "Authorized", url: null });
    expect(patch.lastError).toEqual({ class: "permanent", message: "gone", reason: null });
    expect(applyPatch(from, patch)).toEqual(to);
  });

  it("drops top-level keys and replaces arrays whole", () => {
    const from = { drift: { detected: true, fields: ["config.a", "config.b"] }, instanceId: "x" };
    const to = { drift: { detected: true, fields: ["config.a"] } };
    expect(applyPatch(from, mergePatch(from, to))).toEqual(to);
  });
});
