import { deepEqual } from "./canonical.ts";
import type { Condition, ConditionStatus } from "./types.ts";

export type ConditionInput = Omit<Condition, "lastTransitionTime" | "observedGeneration">;

/**
 * Builds the next condition list: `lastTransitionTime` moves only when a condition's status
 * flips, so recomputing an unchanged status yields an equal object and no write.
 */
export function nextConditions(
  previous: Condition[] | undefined,
  wanted: ConditionInput[],
  generation: number | undefined,
  now: Date,
): Condition[] {
  const byType = new Map((previous ?? []).map((c) => [c.type, c]));
  return wanted.map((w) => {
    const old = byType.get(w.type);
    const lastTransitionTime =
      old && old.status === w.status ? old.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, "Z");
    return {
      type: w.type,
      status: w.status,
      ...(generation === undefined ? {} : { observedGeneration: generation }),
      lastTransitionTime,
      reason: w.reason,
      message: w.message,
    };
  });
}

export function findCondition(conditions: Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function conditionIs(
  conditions: Condition[] | undefined,
  type: string,
  status: ConditionStatus,
): boolean {
  return findCondition(conditions, type)?.status === status;
}

/** Compares statuses ignoring nothing but key order: conditions already keep their times. */
export function statusEqual(a: unknown, b: unknown): boolean {
  return deepEqual(a ?? {}, b ?? {});
}
