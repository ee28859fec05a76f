// Approvals for class B operations (dual control): a short-lived token bound to one call —
// the Connector's uid, the operation, the hash of the exact input, the requester — issued by a
// principal who holds the `approve` verb and is not the requester, signed with a key every
// gateway replica shares, and accepted once (the ledger refuses a replay).
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import { canonicalJson, sha256 } from "../api/canonical.ts";
import type { JsonObject } from "../api/types.ts";

export const MAX_APPROVAL_TTL_MS = 60 * 60_000;
export const DEFAULT_APPROVAL_TTL_MS = 10 * 60_000;

export interface ApprovalClaims {
  v: 1;
  /** The approval's id: the ledger accepts each once. */
  jti: string;
  /** The Connector's metadata.uid: a deleted and re-created Connector does not inherit approvals. */
  uid: string;
  namespace: string;
  name: string;
  operation: string;
  /** sha256 of the canonical JSON of the input. */
  inputHash: string;
  requester: string;
  approver: string;
  /** ms since the epoch */
  issuedAt: number;
  expiresAt: number;
}

export function inputHash(input: JsonObject): string {
  return sha256(canonicalJson(input));
}

function sign(key: Buffer, body: string): string {
  return createHmac("sha256", key).update(body).digest("base64url");
}

export function issueApproval(
  key: Buffer,
  c: Omit<ApprovalClaims, "v" | "jti" | "issuedAt" | "expiresAt">,
  now: number,
  ttlMs: number,
): { token: string; claims: ApprovalClaims } {
  const claims: ApprovalClaims = {
    v: 1,
    jti: randomUUID(),
    ...c,
    issuedAt: now,
    expiresAt: now + Math.min(ttlMs, MAX_APPROVAL_TTL_MS),
  };
  const body = Buffer.from(JSON.stringify(claims)).toString("base64url");
  return { token: `${body}.${sign(key, body)}`, claims };
}

export interface ApprovalExpectation {
  uid: string;
  namespace: string;
  name: string;
  operation: string;
  input: JsonObject;
  requester: string;
  now: number;
}

/** The claims when the token is genuine and bound to this very call; otherwise why not. */
export function verifyApproval(
  key: Buffer,
  token: string,
  want: ApprovalExpectation,
): { ok: true; claims: ApprovalClaims } | { ok: false; problem: string } {
  if (token.length > 4096) return { ok: false, problem: "the approval token is too long" };
  const [body, mac, extra] = token.split(".");
  if (!body || !mac || extra !== undefined) return { ok: false, problem: "the approval token is malformed" };
  const expected = Buffer.from(sign(key, body));
  const given = Buffer.from(mac);
  if (expected.length !== given.length || !timingSafeEqual(expected, given))
    return { ok: false, problem: "the approval token's signature does not verify" };
  let claims: ApprovalClaims;
  try {
    claims = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as ApprovalClaims;
  } catch {
    return { ok: false, problem: "the approval token is malformed" };
  }
  if (claims.v !== 1) return { ok: false, problem: "the approval token has an unknown version" };
  if (!(claims.expiresAt > want.now)) return { ok: false, problem: "the approval has expired" };
  if (claims.uid !== want.uid || claims.namespace !== want.namespace || claims.name !== want.name)
    return { ok: false, problem: "the approval is for another Connector" };
  if (claims.operation !== want.operation)
    return { ok: false, problem: "the approval is for another operation" };
  if (claims.inputHash !== inputHash(want.input))
    return { ok: false, problem: "the approval is for another input" };
  if (claims.requester !== want.requester)
    return { ok: false, problem: "the approval was issued for another requester" };
  return { ok: true, claims };
}
