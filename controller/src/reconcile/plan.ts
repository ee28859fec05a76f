// Step "plan": what converging the instance row to the spec takes, decided as a plain value
// before anything is written (crossplane-runtime's ExternalObservation). Pure: the same row
// and spec always give the same plan.
import { canonicalJson, deepEqual, sha256 } from "../api/canonical.ts";
import {
  DESIRED_FIELDS,
  type DesiredInstance,
  type InstancePatch,
  type InstanceRow,
  type NewInstance,
} from "../api/model.ts";
import type { JsonObject } from "../api/types.ts";

export type InstancePlan =
  /** No row yet: insert it. */
  | { kind: "create"; row: NewInstance }
  /** The row matches the spec and this generation is recorded. */
  | { kind: "none" }
  /** A new generation that changes nothing the row holds (e.g. the health interval). */
  | { kind: "record-generation"; patch: InstancePatch }
  /** The spec changed: write what differs. */
  | { kind: "update"; patch: InstancePatch; fields: string[]; enabledChanged: boolean }
  /** The row changed while the spec did not (drift): overwrite it. */
  | { kind: "correct-drift"; patch: InstancePatch; fields: string[] }
  /** Drift under the Observe management policy: report it, write nothing. */
  | { kind: "report-drift"; fields: string[] };

export interface PlanInput {
  namespace: string;
  name: string;
  uid: string;
  generation: number;
  desired: DesiredInstance;
  /** management policy Observe: drift is reported, never corrected. */
  observeOnly: boolean;
}

export function specHash(desired: DesiredInstance): string {
  return sha256(canonicalJson(desired));
}

/** Field paths (`config.mailbox`, `enabled`) where the row differs from the desired state. */
export function diffDesired(row: InstanceRow, desired: DesiredInstance): string[] {
  const fields: string[] = [];
  for (const f of DESIRED_FIELDS) {
    if (deepEqual(row[f], desired[f])) continue;
    if (f === "config") fields.push(...diffObjects(row.config, desired.config, "config"));
    else fields.push(f);
  }
  return fields;
}

function diffObjects(a: JsonObject | null, b: JsonObject | null, prefix: string): string[] {
  const keys = new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})]);
  const out: string[] = [];
  for (const k of [...keys].sort()) if (!deepEqual(a?.[k], b?.[k])) out.push(`${prefix}.${k}`);
  return out.length ? out : [prefix];
}

export function planInstance(row: InstanceRow | undefined, input: PlanInput): InstancePlan {
  const { desired, generation } = input;
  const hash = specHash(desired);
  if (!row)
    return {
      kind: "create",
      row: {
        namespace: input.namespace,
        name: input.name,
        uid: input.uid,
        ...desired,
        state: desired.enabled ? "provisioning" : "disabled",
        secretVersion: null,
        secretFingerprint: null,
        lastSuccessAt: null,
        lastError: null,
        lastErrorClass: null,
        healthCheckedAt: null,
        appliedGeneration: generation,
        specHash: hash,
      },
    };

  const fields = diffDesired(row, desired);
  const specChanged = row.specHash !== hash;
  if (!specChanged && !fields.length)
    return row.appliedGeneration === generation
      ? { kind: "none" }
      : { kind: "record-generation", patch: { appliedGeneration: generation } };
  if (!specChanged && input.observeOnly) return { kind: "report-drift", fields };

  const patch: InstancePatch = { appliedGeneration: generation, specHash: hash };
  for (const f of DESIRED_FIELDS)
    if (!deepEqual(row[f], desired[f])) Object.assign(patch, { [f]: desired[f] });
  const enabledChanged = row.enabled !== desired.enabled;
  if (enabledChanged) patch.state = desired.enabled ? "provisioning" : "disabled";
  else if (specChanged && desired.enabled)
    patch.state = row.state === "disabled" ? "provisioning" : row.state;
  if (!specChanged) return { kind: "correct-drift", patch, fields };
  return { kind: "update", patch, fields, enabledChanged };
}
