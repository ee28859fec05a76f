// The admission decision on a Connector, without HTTP: a config that fails its type's
// schema (or a type or version that does not exist or is retired, a policy or limits out of
// bounds) is refused with the same path-qualified message `connectorctl validate` prints.
import { deepEqual } from "../api/canonical.ts";
import { ConnectorError } from "../api/errors.ts";
import { formatProblems } from "../api/problems.ts";
import type { AdmissionRequest, AdmissionVerdict } from "./ports.ts";
import { validateConnector, type ValidationContext } from "./validate.ts";

/** The decision alone, without HTTP: what the tests and the server share. */
export function reviewConnector(req: AdmissionRequest, ctx: ValidationContext): AdmissionVerdict {
  const c = req.object;
  if (!c || (req.operation !== "CREATE" && req.operation !== "UPDATE")) return { allowed: true };
  // Only a changed spec is judged: a finalizer or label change on a Connector whose type was
  // retired later must still go through (the controller removes its finalizer this way).
  if (req.operation === "UPDATE" && (c.metadata.deletionTimestamp || deepEqual(c.spec, req.oldObject?.spec)))
    return { allowed: true };
  try {
    const valid = validateConnector(c, ctx);
    return {
      allowed: true,
      ...(valid.warnings.length ? { warnings: valid.warnings.map((w) => w.message) } : {}),
    };
  } catch (err) {
    if (!(err instanceof ConnectorError)) throw err;
    return { allowed: false, message: err.problems.length ? formatProblems(err.problems) : err.message };
  }
}
