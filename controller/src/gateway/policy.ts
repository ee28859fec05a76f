// Who may call what, after Kubernetes RBAC said the caller may use the Connector at all
// (spec §9, execution-policy-classes): the operation must be in the instance's effective
// allowlist (inline or from its template, as the controller stored it), its action inside
// the action scope; class C (forbidden) never runs, whatever a spec says; class B
// (approval_required) runs only with a valid approval from another principal. Pure: the
// same inputs give the same decision, and every decision says which rule decided.
import type { Principal } from "../api/invocation.ts";
import type { StoredPolicy } from "../api/model.ts";
import type { Action, Operation } from "../api/types.ts";

/** The Kubernetes verb on `connectors` that each action of the taxonomy needs. */
export const VERB_OF_ACTION: Record<Action, string> = {
  "connector.catalog.read": "get",
  "connector.operation.read": "get",
  "connector.operation.invoke": "invoke",
  "connector.instance.manage": "update",
  "connector.credential.manage": "manage-credentials",
};

/** The verb that lets a principal approve another's class B call. */
export const APPROVE_VERB = "approve";

export type PolicyRule =
  | "operation-unknown"
  | "class-c-forbidden"
  | "not-in-allowlist"
  | "outside-action-scope"
  | "approval-required"
  | "approval-invalid"
  | "self-approval"
  | "allowed";

export interface PolicyDecision {
  allowed: boolean;
  rule: PolicyRule;
  /** Said to the caller and in the audit row; names the rule and the operation, never a secret. */
  message: string;
  /** The operation's class as the catalog declares it now. */
  operationClass?: Operation["class"];
}

export interface ApprovalCheck {
  /** undefined: no approval was presented. */
  presented: boolean;
  /** Set when one was presented: why it does not hold, or undefined when it does. */
  problem?: string;
  approver?: string;
}

export interface PolicyInput {
  principal: Principal;
  operationName: string;
  /** The operation as the type version declares it now (undefined: it declares none of that name). */
  operation: Operation | undefined;
  /** The policy the controller stored on the instance (the last valid generation's). */
  policy: StoredPolicy;
  approval: ApprovalCheck;
}

export function decide(i: PolicyInput): PolicyDecision {
  const op = i.operation;
  const name = JSON.stringify(i.operationName.slice(0, 128));
  if (!op) return deny("operation-unknown", `operation ${name} is not an operation of this connector's type`);
  const cls = op.class;
  if (cls === "forbidden")
    return deny("class-c-forbidden", `operation ${name} is class C (forbidden) and never runs`, cls);
  const allowed = i.policy.operations.find((o) => o.name === op.name);
  if (!allowed)
    return deny(
      "not-in-allowlist",
      `operation ${name} is not in the connector's allowlist (${i.policy.template ? `policy template ${i.policy.template}` : "spec.policy.allowOperations"})`,
      cls,
    );
  if (!i.policy.actionScope.includes(op.action))
    return deny(
      "outside-action-scope",
      `operation ${name} needs action ${op.action}, outside the connector's action scope`,
      cls,
    );
  // A class the catalog does not know is never treated as auto.
  if (cls !== "auto") {
    if (!i.approval.presented)
      return deny(
        "approval-required",
        `operation ${name} is class B (approval_required): an approval token is required`,
        cls,
      );
    if (i.approval.problem)
      return deny("approval-invalid", `the approval does not hold: ${i.approval.problem}`, cls);
    if (i.approval.approver === i.principal.user)
      return deny(
        "self-approval",
        "an approval must come from a different principal than the requester",
        cls,
      );
  }
  return { allowed: true, rule: "allowed", message: "allowed", operationClass: cls };
}

function deny(rule: PolicyRule, message: string, operationClass?: Operation["class"]): PolicyDecision {
  return { allowed: false, rule, message, ...(operationClass ? { operationClass } : {}) };
}
