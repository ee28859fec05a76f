// What deleting a Connector does to its row (spec.deletionPolicy) and how far the controller
// acts on the row (spec.managementPolicy). The annotations that carried them before are
// still read for one release — case-insensitively, since `orphan` once silently deleted —
// with a warning condition and event saying which spec field replaces them.
import type { ConditionInput } from "../api/conditions.ts";
import {
  ANNOTATION_DELETION_POLICY,
  ANNOTATION_MANAGEMENT_POLICY,
  type Connector,
  type DeletionPolicy,
  type ManagementPolicy,
} from "../api/types.ts";

export interface ManagementPolicies {
  deletion: DeletionPolicy;
  management: ManagementPolicy;
  /** One per deprecated annotation still set. */
  warnings: ConditionInput[];
}

export const DEPRECATED_ANNOTATION = "DeprecatedAnnotation";

export function managementPolicies(c: Connector): ManagementPolicies {
  const annotations = c.metadata.annotations ?? {};
  const warnings: ConditionInput[] = [];
  const legacy = (name: string, field: string, value: string): boolean => {
    const v = annotations[name];
    if (v === undefined) return false;
    warnings.push({
      type: DEPRECATED_ANNOTATION,
      status: "True",
      reason: DEPRECATED_ANNOTATION,
      message: `the annotation ${name} is deprecated and read for one more release: set spec.${field} instead`,
    });
    return v.trim().toLowerCase() === value.toLowerCase();
  };
  const orphanByAnnotation = legacy(ANNOTATION_DELETION_POLICY, "deletionPolicy", "Orphan");
  const observeByAnnotation = legacy(ANNOTATION_MANAGEMENT_POLICY, "managementPolicy", "Observe");
  // Either the field or the annotation asking to keep the row, or to only observe, wins: the
  // CRD stores the field's default when it is unset.
  return {
    deletion: c.spec.deletionPolicy === "Orphan" || orphanByAnnotation ? "Orphan" : "Delete",
    management: c.spec.managementPolicy === "Observe" || observeByAnnotation ? "Observe" : "Full",
    warnings:
      warnings.length > 1
        ? [{ ...warnings[0]!, message: warnings.map((w) => w.message).join("; ") }]
        : warnings,
  };
}
