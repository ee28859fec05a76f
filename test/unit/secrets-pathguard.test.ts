// The path guard: every trick for leaving the namespace's part of the secret tree is refused
// with validation_error/InvalidSecretRef and a message naming the field; namespaces are
// admitted by allowedNamespaces or namespaceSelector (policy_denied/NamespaceNotAllowed).
import { describe, expect, it } from "vitest";
import { ConnectorError } from "../../controller/src/api/errors.ts";
import {
  SECRET_NAME_FIELD,
  checkNamespaceAllowed,
  checkPathTemplate,
  kubernetesSecretName,
  renderSecretPath,
  secretRefGuard,
  selectorMatches,
} from "../../controller/src/secrets/pathGuard.ts";
import { fingerprint, mapSecretKeys, requireKeys } from "../../controller/src/secrets/values.ts";
import { checkProviderSpec } from "../../controller/src/secrets/providerCheck.ts";
import { scrub, wrapVaultError } from "../../controller/src/secrets/vaultErrors.ts";
import type { SecretProvider } from "../../controller/src/api/types.ts";

function refusal(fn: () => unknown): ConnectorError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectorError);
    return err as ConnectorError;
  }
  throw new Error("expected a refusal");
}

const T = "connectors/{namespace}/{name}";

describe("renderSecretPath", () => {
  it("renders the default and custom templates", () => {
    expect(renderSecretPath(undefined, "team-a", "imap-creds")).toBe("connectors/team-a/imap-creds");
    expect(renderSecretPath(T, "team-a", "mail/imap.ops_1")).toBe("connectors/team-a/mail/imap.ops_1");
    expect(renderSecretPath("tenants/{namespace}/apps/{name}", "b", "x")).toBe("tenants/b/apps/x");
    expect(renderSecretPath("{namespace}/{name}", "b", "x")).toBe("b/x");
  });

  const tricks: [string, string, RegExp][] = [
    ["parent", "../team-b/creds", /"\.\." \(a parent path\)/],
    ["parent in the middle", "a/../../team-b/creds", /"\.\."/],
    ["bare parent", "..", /"\.\."/],
    ["dot segment", "./creds", /"\." as a path segment/],
    ["percent-encoded dots", "%2e%2e/team-b/creds", /percent-encoded/],
    ["percent-encoded slash", "..%2fteam-b", /percent-encoded/],
    ["double-encoded", "%252e%252e/x", /percent-encoded/],
    ["leading slash", "/connectors/team-b/creds", /must be relative: it starts with "\/"/],
    ["trailing slash", "creds/", /must not end with/],
    ["empty segment", "a//b", /empty path segment/],
    ["data injection", "data/creds", /"data", which is reserved/],
    ["metadata injection", "metadata/creds", /"metadata", which is reserved/],
    ["data in the middle", "x/data/y", /"data", which is reserved/],
    ["DATA upper case", "DATA/creds", /"DATA", which is reserved/],
    ["fullwidth solidus", "..\uFF0Fteam-b", /U\+FF0F/],
    ["division slash", "a\u2215b", /U\+2215/],
    ["fraction slash", "a\u2044b", /U\+2044/],
    ["fullwidth dots", "\uFF0E\uFF0E/x", /U\+FF0E/],
    ["one-dot leader", "\u2024\u2024/x", /U\+2024/],
    ["backslash", "..\\team-b", /U\+005C/],
    ["NUL", "creds\u0000.json", /control character U\+0000/],
    ["newline", "creds\nx", /control character U\+000A/],
    ["DEL", "creds\u007f", /control character U\+007F/],
    ["C1 control", "creds\u0085", /control character U\+0085/],
    ["query string", "creds?version=1", /"\?"/],
    ["fragment", "creds#x", /"#"/],
    ["space", "my creds", /" "/],
    ["colon", "a:b", /":"/],
    ["non-ascii letter", "cr\u00e9ds", /U\+00E9/],
    ["empty", "", /is empty/],
    ["too long", "a".repeat(600), /longer than 512/],
    ["too deep", Array.from({ length: 20 }, () => "a").join("/"), /more than 16/],
  ];

  it.each(tricks)("refuses %s", (_what, name, message) => {
    const err = refusal(() => renderSecretPath(T, "team-a", name));
    expect(err.errorClass).toBe("validation_error");
    expect(err.reason).toBe("InvalidSecretRef");
    expect(err.message).toContain(SECRET_NAME_FIELD);
    expect(err.message).toMatch(message);
  });

  it("never renders outside the namespace's prefix, whatever the name", () => {
    const alphabet = ["a", ".", "/", "%", "2", "e", "\\", "\uFF0F", "d", "t", "\u0000", "-", "_"];
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let i = 0; i < 5000; i++) {
      const name = Array.from({ length: 1 + rand(12) }, () => alphabet[rand(alphabet.length)]).join("");
      let path: string | undefined;
      try {
        path = renderSecretPath(T, "team-a", name);
      } catch (err) {
        expect((err as ConnectorError).reason).toBe("InvalidSecretRef");
        continue;
      }
      expect(path.startsWith("connectors/team-a/")).toBe(true);
      expect(path.split("/")).not.toContain("..");
      expect(path.split("/")).not.toContain(".");
      expect(path).not.toContain("//");
    }
  });

  it("refuses a namespace that is not a namespace name", () => {
    for (const ns of ["..", "a/b", "A", "", "a".repeat(64), "team-a/../b"]) {
      const err = refusal(() => renderSecretPath(T, ns, "x"));
      expect(err.reason).toBe("InvalidSecretRef");
    }
  });
});

describe("kubernetesSecretName (the kubernetes provider)", () => {
  it("accepts a Secret name of the Connector's own namespace, as it is", () => {
    expect(kubernetesSecretName("team-a", "imap-creds")).toBe("imap-creds");
    expect(kubernetesSecretName("team-a", "ops.mail-1")).toBe("ops.mail-1");
  });

  const tricks: [string, string, RegExp][] = [
    ["another namespace's secret", "team-b/creds", /cannot hold "\/", so no other namespace can be named/],
    ["a Vault-like path", "connectors/team-b/creds", /cannot hold "\/"/],
    ["parent", "../team-b/creds", /"\.\." \(a parent path\)/],
    ["bare parent", "..", /"\.\."/],
    ["dot", ".", /"\." as a path segment/],
    ["double dots inside", "a..b", /not a valid Secret name/],
    ["leading slash", "/team-b/creds", /must be relative/],
    ["percent-encoded slash", "team-b%2fcreds", /percent-encoded/],
    ["fullwidth solidus", "team-b\uFF0Fcreds", /U\+FF0F/],
    ["division slash", "team-b\u2215creds", /U\+2215/],
    ["backslash", "team-b\\creds", /U\+005C/],
    ["NUL", "creds\u0000", /control character/],
    ["upper case", "Creds", /not a valid Secret name/],
    ["underscore", "my_creds", /not a valid Secret name/],
    ["leading dash", "-creds", /not a valid Secret name/],
    ["trailing dot", "creds.", /not a valid Secret name/],
    ["colon", "team-b:creds", /":"/],
    ["empty", "", /is empty/],
    ["too long", "a".repeat(300), /longer than 512|not a valid Secret name/],
  ];
  it.each(tricks)("refuses %s", (_what, name, message) => {
    const err = refusal(() => kubernetesSecretName("team-a", name));
    expect(err.errorClass).toBe("validation_error");
    expect(err.reason).toBe("InvalidSecretRef");
    expect(err.message).toContain(SECRET_NAME_FIELD);
    expect(err.message).toMatch(message);
  });

  it("never returns anything but one plain Secret name, whatever the input", () => {
    const alphabet = ["a", ".", "/", "%", "2", "e", "\\", "\uFF0F", "-", "B", "\u0000", ":"];
    let seed = 11;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let i = 0; i < 5000; i++) {
      const name = Array.from({ length: 1 + rand(10) }, () => alphabet[rand(alphabet.length)]).join("");
      let got: string;
      try {
        got = kubernetesSecretName("team-a", name);
      } catch (err) {
        expect((err as ConnectorError).reason).toBe("InvalidSecretRef");
        continue;
      }
      expect(got).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/);
    }
  });

  it("is the guard validation applies to a kubernetes provider's Connectors", () => {
    const provider = {
      metadata: { name: "team-secrets" },
      spec: { kubernetes: {}, allowedNamespaces: ["team-a"] },
    };
    const guard = secretRefGuard({ get: () => provider }, () => ({}));
    expect(() => guard.check("team-a", { provider: "team-secrets", name: "creds" })).not.toThrow();
    expect(
      refusal(() => guard.check("team-a", { provider: "team-secrets", name: "team-b/creds" })).reason,
    ).toBe("InvalidSecretRef");
    expect(refusal(() => guard.check("team-b", { provider: "team-secrets", name: "creds" })).reason).toBe(
      "NamespaceNotAllowed",
    );
  });
});

describe("checkPathTemplate", () => {
  const bad: [string, RegExp][] = [
    ["connectors/{name}", /\{namespace\} and \{name\} exactly once/],
    ["connectors/{namespace}", /exactly once/],
    ["{name}/{namespace}", /before/],
    ["connectors/{namespace}/{name}/{name}", /exactly once/],
    ["connectors/{namespace}/{tenant}/{name}", /unknown placeholder/],
    ["/connectors/{namespace}/{name}", /starts with "\/"/],
    ["connectors/../{namespace}/{name}", /"\.\."/],
    ["connectors//{namespace}/{name}", /empty path segment/],
    ["data/{namespace}/{name}", /KV engine API path/],
    ["metadata/{namespace}/{name}", /KV engine API path/],
    ["connectors/{namespace}/{name}-creds", /must end with/],
    ["connectors/{namespace}-x/{name}", /whole path segment/],
    ["connectors/{namespace}{name}", /must end with|whole path segment/],
  ];
  it.each(bad)("refuses %s", (tpl, message) => {
    const err = refusal(() => checkPathTemplate(tpl));
    expect(err.errorClass).toBe("validation_error");
    expect(err.reason).toBe("InvalidSecretProvider");
    expect(err.message).toContain("spec.vault.pathTemplate");
    expect(err.message).toMatch(message);
  });
});

describe("allowed namespaces", () => {
  it("admits every namespace when neither list nor selector is set", () => {
    expect(() => checkNamespaceAllowed("p", {}, "any", undefined)).not.toThrow();
  });
  it("admits listed namespaces and refuses others with policy_denied", () => {
    const spec = { allowedNamespaces: ["team-a"] };
    expect(() => checkNamespaceAllowed("p", spec, "team-a", undefined)).not.toThrow();
    const err = refusal(() => checkNamespaceAllowed("p", spec, "team-b", {}));
    expect(err.errorClass).toBe("policy_denied");
    expect(err.reason).toBe("NamespaceNotAllowed");
    expect(err.message).toContain("team-b");
  });
  it("admits namespaces whose labels match the selector", () => {
    const spec = {
      namespaceSelector: {
        matchLabels: { tenant: "yes" },
        matchExpressions: [{ key: "tier", operator: "In" as const, values: ["gold", "silver"] }],
      },
    };
    expect(() => checkNamespaceAllowed("p", spec, "x", { tenant: "yes", tier: "gold" })).not.toThrow();
    expect(
      refusal(() => checkNamespaceAllowed("p", spec, "x", { tenant: "yes", tier: "bronze" })).reason,
    ).toBe("NamespaceNotAllowed");
    // Unknown labels (namespace not in the cache): refused.
    expect(refusal(() => checkNamespaceAllowed("p", spec, "x", undefined)).reason).toBe(
      "NamespaceNotAllowed",
    );
  });
  it("implements the selector operators", () => {
    expect(selectorMatches({}, {})).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: "a", operator: "Exists" }] }, { a: "" })).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: "a", operator: "Exists" }] }, {})).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: "a", operator: "DoesNotExist" }] }, {})).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: "a", operator: "NotIn", values: ["x"] }] }, {})).toBe(
      true,
    );
    expect(
      selectorMatches({ matchExpressions: [{ key: "a", operator: "NotIn", values: ["x"] }] }, { a: "x" }),
    ).toBe(false);
  });
});

describe("key mapping and fingerprints", () => {
  it("maps credential keys to secret keys and names a missing key, never a value", () => {
    const data = { user: "alice", pass: "s3cr3t-value", port: 993 };
    expect(mapSecretKeys(data, { username: "user", password: "pass" }, "p:x")).toMatchObject({
      username: "alice",
      password: "s3cr3t-value",
      port: "993",
    });
    const err = refusal(() => mapSecretKeys(data, { token: "api_token" }, "p:x"));
    expect(err.errorClass).toBe("permanent");
    expect(err.reason).toBe("SecretKeyMissing");
    expect(err.message).toContain('"api_token"');
    expect(err.message).not.toContain("s3cr3t-value");
    expect(refusal(() => requireKeys({ a: "1" }, ["a", "b"])).message).toContain('"b"');
  });
  it("fingerprints are keyed: another key, another fingerprint; same values, same print", () => {
    const k1 = Buffer.alloc(32, 1);
    const k2 = Buffer.alloc(32, 2);
    const v = { b: "2", a: "1" };
    expect(fingerprint(k1, v)).toBe(fingerprint(k1, { a: "1", b: "2" }));
    expect(fingerprint(k1, v)).not.toBe(fingerprint(k2, v));
    expect(fingerprint(k1, v)).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
  });
  it("fingerprints stay what they were: the ones stored in PostgreSQL keep matching (no false rotation)", () => {
    // Computed with the resolver's former private canonical() (sorted keys, then JSON.stringify).
    const values = { password: 'p"w\u00e9\n', username: "alice", "10": "x", "2": "y", port: "993" };
    expect(fingerprint(Buffer.alloc(32, 7), values)).toBe(
      "hmac-sha256:8512e5ded4cbede9771d2042b52c37046bfa77b585d3873f65705640482bf749",
    );
  });
});

describe("provider spec checks", () => {
  const base = (spec: SecretProvider["spec"]): SecretProvider => ({
    apiVersion: "cynodeai.io/v1alpha1",
    kind: "SecretProvider",
    metadata: { name: "p" },
    spec,
  });
  it("needs exactly one backend and one auth method", () => {
    expect(refusal(() => checkProviderSpec(base({}))).reason).toBe("InvalidSecretProvider");
    const vault = {
      address: "https://vault:8200",
      kv: { mount: "kv" },
      auth: { kubernetes: { role: "r", serviceAccountName: "sa" } },
    };
    expect(() => checkProviderSpec(base({ vault }))).not.toThrow();
    expect(refusal(() => checkProviderSpec(base({ vault, file: { directory: "/x" } }))).reason).toBe(
      "InvalidSecretProvider",
    );
    expect(
      refusal(() =>
        checkProviderSpec(
          base({
            vault: {
              ...vault,
              auth: { ...vault.auth, token: { secretRef: { namespace: "a", name: "b", key: "c" } } },
            },
          }),
        ),
      ).message,
    ).toContain("exactly one");
    expect(() => checkProviderSpec(base({ kubernetes: {} }))).not.toThrow();
    expect(() =>
      checkProviderSpec(base({ kubernetes: { serviceAccountName: "connector-reader" } })),
    ).not.toThrow();
    expect(refusal(() => checkProviderSpec(base({ kubernetes: {}, vault }))).message).toContain(
      "exactly one of spec.vault, spec.kubernetes and spec.file",
    );
    expect(
      refusal(() => checkProviderSpec(base({ kubernetes: { serviceAccountName: "Bad/Name" } }))).message,
    ).toContain("spec.kubernetes.serviceAccountName");
    expect(
      refusal(() =>
        checkProviderSpec(
          base({
            vault: { ...vault, caBundle: "PEM", caBundleRef: { kind: "ConfigMap", name: "vault-ca" } },
          }),
        ),
      ).message,
    ).toContain("at most one of spec.vault.caBundle and spec.vault.caBundleRef");
  });
});

describe("Vault error wrapping", () => {
  const token = "hvs.CAESIJ0123456789abcdefghijklmnopqrstuv";
  it("keeps the status and first message, drops the request and scrubs tokens", () => {
    const raw = Object.assign(new Error(`permission denied for ${token}`), {
      response: { statusCode: 403, body: { errors: [`permission denied ${token}`, "second"] } },
      config: { headers: { "X-Vault-Token": token } },
    });
    const err = wrapVaultError(raw, "read", "read of kv/data/x", [token]);
    expect(err.errorClass).toBe("policy_denied");
    expect(err.reason).toBe("PermissionDenied");
    expect(err.providerStatusCode).toBe(403);
    for (const s of [String(err), JSON.stringify(err), err.stack ?? "", String(err.cause)])
      expect(s).not.toContain(token);
    expect(err.message).not.toContain("second");
    expect(err.cause).toBeUndefined();
  });
  it("classifies by status", () => {
    const mk = (statusCode: number, body: unknown = { errors: [] }) => ({ response: { statusCode, body } });
    expect(wrapVaultError(mk(400), "read", "r").reason).toBe("InvalidSecretRef");
    expect(wrapVaultError(mk(400), "read", "r").errorClass).toBe("validation_error");
    expect(wrapVaultError(mk(404), "read", "r").reason).toBe("SecretNotFound");
    expect(wrapVaultError(mk(404), "read", "r").errorClass).toBe("permanent");
    const deleted = { data: { data: null, metadata: { deletion_time: "2026-01-01T00:00:00Z", version: 3 } } };
    expect(wrapVaultError(mk(404, deleted), "read", "r").reason).toBe("SecretDeleted");
    const destroyed = { data: { data: null, metadata: { deletion_time: "", destroyed: true, version: 3 } } };
    expect(wrapVaultError(mk(404, destroyed), "read", "r").reason).toBe("SecretDeleted");
    expect(wrapVaultError(mk(429), "read", "r").errorClass).toBe("quota_exceeded");
    expect(wrapVaultError(mk(429), "read", "r").retryAfterMs).toBeGreaterThan(0);
    for (const s of [500, 502, 503, 504]) {
      const e = wrapVaultError(mk(s, { errors: ["Vault is sealed"] }), "read", "r");
      expect(e.errorClass).toBe("transient");
      expect(e.reason).toBe("VaultUnavailable");
    }
    const net = wrapVaultError(
      Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" }),
      "read",
      "r",
    );
    expect(net.errorClass).toBe("transient");
    expect(net.reason).toBe("VaultUnavailable");
  });
  it("scrub removes Vault tokens and JWTs even when not listed", () => {
    const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0iLCJhdWQiOiJ2YXVsdCJ9.c2lnbmF0dXJl";
    expect(scrub(`x ${token} y ${jwt} s.abcdefghijklmnopqrstuvwx`)).toBe(
      "x [REDACTED] y [REDACTED] [REDACTED]",
    );
  });
});
