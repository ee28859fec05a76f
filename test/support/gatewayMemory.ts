// In-memory implementations of the gateway's own ports (controller/src/gateway/ports.ts),
// for unit tests of the invocation pipeline. The PostgreSQL implementations are tested
// against real servers in test/integration/gateway-*.test.ts.
import { randomUUID } from "node:crypto";
import { MemoryBreakerStore } from "./memory.ts";
import type { DeadLetter, JobRecord, Principal } from "../../controller/src/api/invocation.ts";
import type { AuditEvent } from "../../controller/src/api/model.ts";
import type {
  Admission,
  AdmissionRequest,
  ApprovalLedger,
  AuditSink,
  Authenticator,
  Authorizer,
  IdempotencyClaim,
  IdempotencyScope,
  IdempotencyStore,
  JobOutcome,
  JobQueue,
  JobSpec,
  Limiter,
  ResourceAttributes,
  Slot,
  StoredOutcome,
} from "../../controller/src/gateway/ports.ts";

/** Tokens are "token-<user>"; RBAC is a set of "user verb namespace/name" grants ("*" for any name). */
export class MemoryIdentity implements Authenticator, Authorizer {
  readonly grants = new Set<string>();
  async authenticate(token: string): Promise<Principal | undefined> {
    const m = /^token-(.+)$/.exec(token);
    return m ? { user: m[1]!, groups: ["system:authenticated"] } : undefined;
  }
  grant(user: string, verb: string, namespace: string, name = "*"): void {
    this.grants.add(`${user} ${verb} ${namespace}/${name}`);
  }
  async allowed(p: Principal, a: ResourceAttributes) {
    const allowed =
      this.grants.has(`${p.user} ${a.verb} ${a.namespace}/${a.name ?? "*"}`) ||
      this.grants.has(`${p.user} ${a.verb} ${a.namespace}/*`);
    return { allowed };
  }
}

/** Token buckets and slots in memory, on a clock the test holds. */
export class MemoryLimiter implements Limiter {
  readonly tat = new Map<string, number>();
  readonly slots = new Map<string, Set<string>>();
  readonly breakers: MemoryBreakerStore | undefined;
  now = () => Date.now();
  constructor(breakers?: MemoryBreakerStore) {
    this.breakers = breakers;
  }
  async admit(req: AdmissionRequest): Promise<Admission> {
    const breaker =
      req.breaker && this.breakers ? await this.breakers.enter(req.instanceId, req.breaker) : undefined;
    if (breaker?.phase === "open")
      return { admitted: false, reason: "circuit_open", retryAfterMs: breaker.retryAfterMs };
    const now = this.now();
    for (const b of req.buckets) {
      const interval = 1000 / b.rps;
      const tat = Math.max(this.tat.get(b.key) ?? now, now);
      const allowAt = tat + interval - b.burst * interval;
      if (allowAt > now)
        return {
          admitted: false,
          reason: "rate_limited",
          bucket: b.key,
          retryAfterMs: Math.ceil(allowAt - now),
        };
    }
    const held = this.slots.get(req.instanceId) ?? new Set<string>();
    if (req.maxParallel !== undefined && held.size >= req.maxParallel)
      return {
        admitted: false,
        reason: req.backpressure === "queue" ? "queue_full" : "busy",
        retryAfterMs: 1000,
      };
    for (const b of req.buckets)
      this.tat.set(b.key, Math.max(this.tat.get(b.key) ?? now, now) + 1000 / b.rps);
    const extra = breaker ? { breaker } : {};
    if (req.maxParallel === undefined) return { admitted: true, slot: undefined, ...extra };
    const slot: Slot = { instanceId: req.instanceId, id: randomUUID() };
    held.add(slot.id);
    this.slots.set(req.instanceId, held);
    return { admitted: true, slot, ...extra };
  }
  async release(slot: Slot): Promise<void> {
    this.slots.get(slot.instanceId)?.delete(slot.id);
  }
}

export class MemoryIdempotency implements IdempotencyStore {
  readonly records = new Map<string, { hash: string; outcome?: StoredOutcome }>();
  #key(s: IdempotencyScope) {
    return `${s.namespace}/${s.name}/${s.operation}/${s.key}`;
  }
  async claim(s: IdempotencyScope, hash: string): Promise<IdempotencyClaim> {
    const r = this.records.get(this.#key(s));
    if (!r) {
      this.records.set(this.#key(s), { hash });
      return { kind: "new" };
    }
    if (r.hash !== hash) return { kind: "conflict" };
    return r.outcome ? { kind: "replay", outcome: r.outcome } : { kind: "in_progress" };
  }
  async wait(s: IdempotencyScope): Promise<StoredOutcome | undefined> {
    return this.records.get(this.#key(s))?.outcome;
  }
  async complete(s: IdempotencyScope, outcome: StoredOutcome): Promise<void> {
    const r = this.records.get(this.#key(s));
    if (r) r.outcome = outcome;
  }
  async release(s: IdempotencyScope): Promise<void> {
    this.records.delete(this.#key(s));
  }
}

/** Jobs run when the test calls runAll(handler). */
export class MemoryJobs implements JobQueue {
  readonly jobs = new Map<string, { spec: JobSpec; record: JobRecord }>();
  readonly letters: DeadLetter[] = [];
  async enqueue(spec: JobSpec) {
    const id = randomUUID();
    this.jobs.set(id, {
      spec,
      record: {
        id,
        state: "pending",
        target: spec.target,
        requester: spec.requester.user,
        createdAt: new Date().toISOString(),
        attempts: 0,
      },
    });
    return { id };
  }
  async get(id: string) {
    return this.jobs.get(id)?.record;
  }
  async list() {
    return [...this.jobs.values()].map((j) => j.record);
  }
  async cancel(id: string) {
    const j = this.jobs.get(id);
    if (j && j.record.state === "pending") j.record.state = "canceled";
    return j?.record;
  }
  async deadLetters() {
    return this.letters;
  }
  async deadLetter(id: string) {
    return this.letters.find((l) => l.id === id);
  }
  async replay(id: string) {
    const letter = this.letters.find((l) => l.id === id)!;
    const j = this.jobs.get(letter.jobId)!;
    const again = await this.enqueue(j.spec);
    letter.replayedAs = again.id;
    return again;
  }
  async work(): Promise<void> {}
  async runAll(
    handler: (
      spec: JobSpec,
      ctx: { jobId: string; attempt: number; signal: AbortSignal },
    ) => Promise<JobOutcome>,
  ) {
    for (const [id, j] of this.jobs) {
      if (j.record.state !== "pending") continue;
      j.record.state = "running";
      j.record.attempts++;
      const out = await handler(j.spec, {
        jobId: id,
        attempt: j.record.attempts,
        signal: new AbortController().signal,
      });
      if (out.ok) {
        j.record.state = "succeeded";
        j.record.result = out.result;
      } else {
        j.record.state = "failed";
        j.record.error = out.error;
      }
    }
  }
}

export class MemoryLedger implements ApprovalLedger {
  readonly used = new Set<string>();
  async use(id: string): Promise<boolean> {
    if (this.used.has(id)) return false;
    this.used.add(id);
    return true;
  }
}

export class MemoryAudit implements AuditSink {
  readonly rows: AuditEvent[] = [];
  record(e: AuditEvent): void {
    this.rows.push(structuredClone(e));
  }
  async flush(): Promise<void> {}
}
