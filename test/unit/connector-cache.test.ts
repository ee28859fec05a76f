// What the Connector informer keeps, and which of its updates reach the queue.
import { describe, expect, it } from "vitest";
import { FINALIZER, type Connector } from "../../controller/src/api/types.ts";
import { onlyStatusChanged, slimManagedFields } from "../../controller/src/kube/caches.ts";
import { actorOf } from "../../controller/src/reconcile/reconciler.ts";

function connector(meta: Partial<Connector["metadata"]> = {}): Connector {
  return {
    apiVersion: "connectors.cynodeai.io/v1alpha1",
    kind: "Connector",
    metadata: { name: "c", namespace: "team-a", uid: "u-1", generation: 1, ...meta },
    spec: { type: "http", typeVersion: "1.0.0", projectId: "p", config: {} },
  } as unknown as Connector;
}

describe("slimManagedFields", () => {
  const managedFields = [
    {
      manager: "kubectl",
      operation: "Apply",
      time: "2026-11-01T10:00:00Z",
      fieldsType: "FieldsV1",
      fieldsV1: { "f:spec": {} },
    },
    {
      manager: "argocd",
      operation: "Update",
      time: "2026-11-02T10:00:00Z",
      fieldsType: "FieldsV1",
      fieldsV1: { "f:spec": { "f:config": {} } },
    },
    {
      manager: "connector-controller",
      operation: "Update",
      time: "2026-11-03T10:00:00Z",
      subresource: "status",
      fieldsType: "FieldsV1",
      fieldsV1: { "f:status": {} },
    },
  ];

  it("drops the field sets and keeps who managed what and when", () => {
    const c = slimManagedFields(connector({ managedFields: structuredClone(managedFields) }));
    expect(c.metadata.managedFields).toEqual([
      { manager: "kubectl", operation: "Apply", time: "2026-11-01T10:00:00Z" },
      { manager: "argocd", operation: "Update", time: "2026-11-02T10:00:00Z" },
      {
        manager: "connector-controller",
        operation: "Update",
        time: "2026-11-03T10:00:00Z",
        subresource: "status",
      },
    ]);
  });

  it("leaves the actor the audit log names unchanged", () => {
    const full = connector({ managedFields: structuredClone(managedFields) });
    expect(actorOf(full)).toBe("argocd");
    expect(actorOf(slimManagedFields(structuredClone(full)))).toBe("argocd");
  });
});

describe("onlyStatusChanged", () => {
  it("ignores a status change and the echo of our own finalizer", () => {
    const before = connector({ resourceVersion: "1" });
    const statusOnly = { ...connector({ resourceVersion: "2" }), status: { state: "active" } } as Connector;
    expect(onlyStatusChanged(before, statusOnly)).toBe(true);
    expect(onlyStatusChanged(before, connector({ resourceVersion: "3", finalizers: [FINALIZER] }))).toBe(
      true,
    );
  });

  it("passes on a new generation, a deletion, a label, an annotation, or another finalizer change", () => {
    const before = connector({ finalizers: [FINALIZER] });
    expect(onlyStatusChanged(before, connector({ finalizers: [FINALIZER], generation: 2 }))).toBe(false);
    expect(
      onlyStatusChanged(
        before,
        connector({ finalizers: [FINALIZER], deletionTimestamp: "2026-11-21T00:00:00Z" }),
      ),
    ).toBe(false);
    expect(onlyStatusChanged(before, connector({ finalizers: [FINALIZER], labels: { a: "b" } }))).toBe(false);
    expect(onlyStatusChanged(before, connector({ finalizers: [FINALIZER], annotations: { a: "b" } }))).toBe(
      false,
    );
    // Our finalizer removed (by someone else): the reconcile puts it back.
    expect(onlyStatusChanged(before, connector({ finalizers: [] }))).toBe(false);
    expect(onlyStatusChanged(before, connector({ finalizers: [FINALIZER, "other.io/keep"] }))).toBe(false);
  });
});
