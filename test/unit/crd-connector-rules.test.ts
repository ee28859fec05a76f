// The Connector CRD's own rules, through the validators `connectorctl validate` uses (the
// structural schema with defaults, then the CEL rules, as the API server applies them):
// the deletion and management policies are enums with defaults (a lower-case "orphan" is
// refused instead of silently meaning Delete), and the health check's default timeout
// fits the smallest interval.
import { describe, expect, it } from "vitest";
import { crdSchema, crdValidators } from "../../controller/src/api/crdSchema.ts";
import { DELETION_POLICIES, MANAGEMENT_POLICIES } from "../../controller/src/api/types.ts";

const connector = (spec: Record<string, unknown>) => ({
  apiVersion: "cynodeai.io/v1alpha1",
  kind: "Connector",
  metadata: { name: "c", namespace: "team-a" },
  spec: {
    type: "http",
    typeVersion: 2,
    owner: { type: "group", id: "ops" },
    policy: { allowOperations: ["fetch"] },
    ...spec,
  },
});

const validate = (spec: Record<string, unknown>) =>
  crdValidators().get("Connector")!.validate(connector(spec));

describe("spec.deletionPolicy and spec.managementPolicy", () => {
  it("accept Delete, Orphan, Full and Observe", () => {
    for (const deletionPolicy of ["Delete", "Orphan"])
      for (const managementPolicy of ["Full", "Observe"])
        expect(validate({ deletionPolicy, managementPolicy })).toEqual([]);
  });

  it("refuse other spellings, naming the allowed values", () => {
    expect(validate({ deletionPolicy: "orphan" })).toEqual([
      { path: "spec.deletionPolicy", message: expect.stringMatching(/Delete.*Orphan/) },
    ]);
    expect(validate({ managementPolicy: "observe" })).toEqual([
      { path: "spec.managementPolicy", message: expect.stringMatching(/Full.*Observe/) },
    ]);
  });

  it("default to Delete and Full (what the API server stores when they are left out)", () => {
    const spec = crdSchema("Connector").properties!.spec!.properties!;
    expect(spec.deletionPolicy).toMatchObject({ enum: ["Delete", "Orphan"], default: "Delete" });
    expect(spec.managementPolicy).toMatchObject({ enum: ["Full", "Observe"], default: "Full" });
    // The constants the reconciler reads them with are the CRD's enums.
    expect([...DELETION_POLICIES]).toEqual(spec.deletionPolicy!.enum);
    expect([...MANAGEMENT_POLICIES]).toEqual(spec.managementPolicy!.enum);
  });
});

describe("spec.healthCheck", () => {
  it("accepts intervalSeconds: 10 alone (the default timeout of 10 fits)", () => {
    expect(validate({ healthCheck: { intervalSeconds: 10 } })).toEqual([]);
    expect(validate({ healthCheck: { intervalSeconds: 10, timeoutSeconds: 10 } })).toEqual([]);
    expect(validate({ healthCheck: {} })).toEqual([]);
  });

  it("refuses a timeout longer than the interval, with a message that names both defaults", () => {
    const problems = validate({ healthCheck: { timeoutSeconds: 60, intervalSeconds: 30 } });
    expect(problems).toEqual([
      {
        path: "spec.healthCheck",
        message:
          "healthCheck.timeoutSeconds (default 10) must not be greater than healthCheck.intervalSeconds (default 300)",
      },
    ]);
    // Only the timeout given: the default interval (300) applies.
    expect(validate({ healthCheck: { timeoutSeconds: 120 } })).toEqual([]);
    // Only the interval given, below the default timeout: the message says why.
    expect(validate({ healthCheck: { intervalSeconds: 10, timeoutSeconds: 11 } })[0]?.message).toContain(
      "(default 10)",
    );
  });
});
