// caBundleRef: the CA a Vault provider trusts, read from the controller's namespace through
// a port, cached for refreshMs, read again after it (single-flight), the last good one kept
// when a re-read fails, and a fresh read (the provider check) that fails loudly.
import { describe, expect, it } from "vitest";
import { ConnectorError } from "../../controller/src/api/errors.ts";
import type { CaBundleRef, SecretProvider } from "../../controller/src/api/types.ts";
import { CaBundles } from "../../controller/src/secrets/caBundles.ts";
import { recordingLogger } from "../support/memory.ts";

function provider(
  spec: NonNullable<SecretProvider["spec"]["vault"]>["caBundleRef"] | string,
): SecretProvider {
  return {
    apiVersion: "cynodeai.io/v1alpha1",
    kind: "SecretProvider",
    metadata: { name: "v" },
    spec: {
      vault: {
        address: "https://vault:8200",
        kv: { mount: "kv" },
        auth: { kubernetes: { role: "r", serviceAccountName: "sa" } },
        ...(typeof spec === "string" ? { caBundle: spec } : { caBundleRef: spec! }),
      },
    },
  };
}

function world() {
  let now = 0;
  const reads: CaBundleRef[] = [];
  let pem: string | Error = "PEM-1";
  let gate: Promise<void> | undefined;
  const source = {
    async read(ref: CaBundleRef) {
      reads.push(ref);
      if (gate) await gate;
      if (pem instanceof Error) throw pem;
      return pem;
    },
  };
  const { log } = recordingLogger();
  const cas = new CaBundles({ source, log, clock: { now: () => new Date(now) }, refreshMs: 30_000 });
  return {
    cas,
    reads,
    set: (p: string | Error) => (pem = p),
    advance: (ms: number) => (now += ms),
    hold: () => {
      let release!: () => void;
      gate = new Promise((r) => (release = r));
      return () => {
        gate = undefined;
        release();
      };
    },
  };
}

const ref = { kind: "ConfigMap" as const, name: "vault-ca" };

describe("CaBundles", () => {
  it("passes an inline caBundle through without reading anything", async () => {
    const w = world();
    expect(await w.cas.get(provider("INLINE"))).toBe("INLINE");
    expect(w.reads).toEqual([]);
  });

  it("reads a caBundleRef once, shares concurrent reads, and reads it again after refreshMs", async () => {
    const w = world();
    const release = w.hold();
    const both = Promise.all([w.cas.get(provider(ref)), w.cas.get(provider(ref))]);
    release();
    expect(await both).toEqual(["PEM-1", "PEM-1"]);
    expect(w.reads).toHaveLength(1);
    w.advance(29_000);
    expect(await w.cas.get(provider(ref))).toBe("PEM-1");
    expect(w.reads).toHaveLength(1);
    w.set("PEM-2");
    w.advance(2_000);
    expect(await w.cas.get(provider(ref))).toBe("PEM-2");
    expect(w.reads).toHaveLength(2);
    // A changed reference is read at once, whatever the age of the last read.
    w.set("PEM-3");
    expect(await w.cas.get(provider({ ...ref, key: "other.crt" }))).toBe("PEM-3");
    expect(w.reads.at(-1)).toEqual({ ...ref, key: "other.crt" });
  });

  it("keeps the last CA when a re-read fails, but a fresh read (the provider check) fails", async () => {
    const w = world();
    expect(await w.cas.get(provider(ref))).toBe("PEM-1");
    w.set(new ConnectorError("transient", "CaBundleUnavailable", "ConfigMap x/vault-ca: 404"));
    w.advance(60_000);
    expect(await w.cas.get(provider(ref))).toBe("PEM-1");
    await expect(w.cas.get(provider(ref), { fresh: true })).rejects.toMatchObject({
      reason: "CaBundleUnavailable",
    });
    // Never read: nothing to fall back to.
    w.cas.forget("v");
    await expect(w.cas.get(provider(ref))).rejects.toMatchObject({ reason: "CaBundleUnavailable" });
  });

  it("digests a CA for session keys (none: empty)", () => {
    expect(CaBundles.digest(undefined)).toBe("");
    expect(CaBundles.digest("A")).not.toBe(CaBundles.digest("B"));
    expect(CaBundles.digest("A")).toHaveLength(16);
  });
});
