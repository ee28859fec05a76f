// The invariants every reliability scenario ends with, written once:
//
//  1. every Connector converges to the state its spec and the world imply (Ready, or
//     Stalled with the expected reason; observedGeneration == generation; the row holds
//     the generation in force);
//  2. no duplicate live instance rows per uid, and no live row without its Connector
//     (unless the deletion policy was Orphan);
//  3. no lost deletion: a deleted Connector is gone from the API and its row soft-deleted
//     (kept live for Orphan);
//  4. no orphaned finalizer: no Connector stuck with a deletionTimestamp;
//  5. no secret value anywhere: controller logs, Events, status, audit rows, instance rows
//     and the error messages the scenario met.
import type pg from "pg";
import type { Connector } from "../../controller/src/api/types.ts";
import { sleep } from "../support/wait.ts";
import { SECRETS, type Expectation, type Kube, type World } from "./harness.ts";

export interface InvariantContext {
  kube: Kube;
  sql: pg.Pool;
  world: World;
  /** Every controller log line captured so far (raw text). */
  logs: () => string[];
}

export interface SecretHit {
  secret: string;
  where: string;
  count: number;
  sample: string;
}

export interface InvariantReport {
  violations: string[];
  secretHits: SecretHit[];
  secretBytes: number;
  checked: { connectors: number; rows: number; events: number; logLines: number; auditRows: number };
  /** How long convergence took. */
  settledMs: number;
}

interface Row {
  id: string;
  namespace: string;
  name: string;
  uid: string;
  enabled: boolean;
  state: string;
  applied_generation: number | string;
  deleted_at: Date | null;
}

const cond = (c: Connector, type: string) => c.status?.conditions?.find((x) => x.type === type);

/** One pass over the API and the database: the convergence and bookkeeping violations. */
async function convergenceViolations(
  ctx: InvariantContext,
): Promise<{ violations: string[]; connectors: Connector[]; rows: Row[] }> {
  const namespaces = [...ctx.world.namespaces];
  const connectors = (await ctx.kube.listConnectors()).filter((c) =>
    ctx.world.namespaces.has(c.metadata.namespace ?? ""),
  );
  const rows = (
    await ctx.sql.query<Row>(
      "select id, namespace, name, uid, enabled, state, applied_generation, deleted_at from connector_instances where namespace = any($1)",
      [namespaces],
    )
  ).rows;
  const v: string[] = [];
  const byUid = new Map(connectors.map((c) => [c.metadata.uid!, c]));
  const rowsOf = (uid: string) => rows.filter((r) => r.uid === uid);
  const liveRowsOf = (uid: string) => rowsOf(uid).filter((r) => r.deleted_at === null);

  for (const e of ctx.world.byUid.values()) {
    const at = `${e.ns}/${e.name} (${e.want}${e.reason ? ` ${e.reason}` : ""})`;
    const c = byUid.get(e.uid);
    if (e.want === "deleted") {
      if (c) {
        v.push(
          c.metadata.deletionTimestamp
            ? `${at}: stuck deleting (finalizers ${JSON.stringify(c.metadata.finalizers)})`
            : `${at}: still in the API`,
        );
        continue;
      }
      const all = rowsOf(e.uid);
      const live = liveRowsOf(e.uid);
      if (e.hadRow && all.length === 0) v.push(`${at}: its instance row is gone (lost, not soft-deleted)`);
      if (e.orphan) {
        if (live.length > 1) v.push(`${at}: ${live.length} live rows after an Orphan deletion`);
        if (e.hadRow && live.length !== 1) v.push(`${at}: Orphan deletion did not keep the row live`);
      } else if (live.length > 0) {
        v.push(`${at}: lost deletion: ${live.length} live row(s) for a deleted Connector`);
      }
      continue;
    }
    if (!c) {
      v.push(`${at}: missing from the API`);
      continue;
    }
    if (c.metadata.deletionTimestamp) v.push(`${at}: has a deletionTimestamp`);
    const gen = c.metadata.generation;
    if (c.status?.observedGeneration !== gen)
      v.push(`${at}: observedGeneration ${c.status?.observedGeneration} != generation ${gen}`);
    const ready = cond(c, "Ready");
    const synced = cond(c, "Synced");
    const stalled = cond(c, "Stalled");
    const live = liveRowsOf(e.uid);
    if (e.want === "stalled") {
      if (stalled?.status !== "True") v.push(`${at}: not Stalled (Ready ${ready?.status}/${ready?.reason})`);
      else if (e.reason && stalled.reason !== e.reason) v.push(`${at}: Stalled for ${stalled.reason}`);
      if (ready?.status !== "False") v.push(`${at}: Stalled but Ready is ${ready?.status}`);
      if (e.appliedGeneration === undefined) {
        if (live.length) v.push(`${at}: never valid, yet ${live.length} live row(s)`);
      } else if (live.length !== 1) {
        v.push(`${at}: ${live.length} live rows; the last valid generation should stay in force`);
      } else if (Number(live[0]!.applied_generation) !== e.appliedGeneration) {
        v.push(`${at}: row holds generation ${live[0]!.applied_generation}, expected ${e.appliedGeneration}`);
      }
      continue;
    }
    // ready / applied / failing
    if (stalled) v.push(`${at}: Stalled ${stalled.reason}: ${stalled.message}`);
    if (e.want === "failing") {
      if (synced?.status !== "False" || (e.reason && synced.reason !== e.reason))
        v.push(`${at}: Synced ${synced?.status} ${synced?.reason ?? ""}`);
      if (ready?.status === "True") v.push(`${at}: Ready although failing`);
    } else if (e.want === "ready" && synced?.status !== "True")
      v.push(`${at}: Synced ${synced?.status} ${synced?.reason ?? ""}`);
    if (e.want === "ready") {
      if (ready?.status !== "True")
        v.push(`${at}: Ready ${ready?.status} ${ready?.reason}: ${ready?.message}`);
      else if (e.enabled === false && ready.reason !== "Disabled") v.push(`${at}: Ready for ${ready.reason}`);
      else if (e.enabled === true && ready.reason !== "Available") v.push(`${at}: Ready for ${ready.reason}`);
    }
    if (live.length !== 1) {
      v.push(`${at}: ${live.length} live rows`);
      continue;
    }
    const row = live[0]!;
    if (c.status?.instanceId !== row.id)
      v.push(`${at}: status.instanceId ${c.status?.instanceId} != row ${row.id}`);
    if (Number(row.applied_generation) !== gen)
      v.push(`${at}: row applied generation ${row.applied_generation} != generation ${gen}`);
    if (e.enabled !== undefined && row.enabled !== e.enabled) v.push(`${at}: row enabled=${row.enabled}`);
  }

  // Global bookkeeping, whatever the expectations say.
  for (const c of connectors) {
    if (!ctx.world.get(c.metadata.uid!))
      v.push(
        `${c.metadata.namespace}/${c.metadata.name}: a Connector the suite did not make (uid ${c.metadata.uid})`,
      );
    if (c.metadata.deletionTimestamp && !ctx.world.get(c.metadata.uid!))
      v.push(`${c.metadata.namespace}/${c.metadata.name}: orphaned finalizer`);
  }
  const liveByUid = new Map<string, Row[]>();
  for (const r of rows) if (r.deleted_at === null) liveByUid.set(r.uid, [...(liveByUid.get(r.uid) ?? []), r]);
  for (const [uid, rs] of liveByUid) {
    if (rs.length > 1)
      v.push(`uid ${uid} (${rs[0]!.namespace}/${rs[0]!.name}): ${rs.length} live instance rows`);
    const e = ctx.world.get(uid);
    if (!byUid.has(uid) && !(e?.want === "deleted" && e.orphan))
      v.push(
        `${rs[0]!.namespace}/${rs[0]!.name}: live row ${rs[0]!.id} whose Connector (uid ${uid}) is gone`,
      );
  }
  return { violations: v, connectors, rows };
}

/** Every place a secret could leak to, as text. */
async function haystacks(ctx: InvariantContext, connectors: Connector[]): Promise<Map<string, string[]>> {
  const namespaces = [...ctx.world.namespaces];
  const events = await ctx.kube.events();
  const audit = await ctx.sql.query<{ j: string }>(
    "select row_to_json(a)::text as j from connector_audit_events a where namespace = any($1)",
    [namespaces],
  );
  // Every column but config, which holds the spec's config as given (the suite's secrets
  // there are refused by validation, so their rows never get them; bad-input.test.ts checks
  // the one place validation lets one through).
  const rows = await ctx.sql.query<{ j: string }>(
    "select (to_jsonb(i) - 'config')::text as j from connector_instances i where namespace = any($1)",
    [namespaces],
  );
  return new Map<string, string[]>([
    ["controller logs", ctx.logs()],
    ["Events", [events.text]],
    ["status", connectors.map((c) => JSON.stringify(c.status ?? {}))],
    ["audit rows", audit.rows.map((r) => r.j)],
    ["instance rows", rows.rows.map((r) => r.j)],
    ["error messages", ctx.world.messages],
  ]);
}

function countOf(hay: string, needle: string): number {
  let n = 0;
  for (let i = hay.indexOf(needle); i >= 0; i = hay.indexOf(needle, i + needle.length)) n++;
  return n;
}

/**
 * Bytes of the suite's secrets (or of `secrets`, each with a run of 16 hex digits) found in
 * `places`: the whole value, its base64 form, or its distinctive 16-hex-digit core (a
 * truncated or partly masked copy still counts).
 */
export function scanForSecrets(
  places: Map<string, string[]>,
  secrets: readonly string[] = SECRETS,
): { hits: SecretHit[]; bytes: number } {
  const hits: SecretHit[] = [];
  let bytes = 0;
  for (const secret of secrets) {
    const core = /[0-9a-f]{16}/.exec(secret)![0];
    const b64 = Buffer.from(secret).toString("base64");
    for (const [where, texts] of places) {
      let count = 0;
      let sample = "";
      for (const t of texts) {
        const full = countOf(t, secret);
        const partial = countOf(t, core) - full;
        const encoded = countOf(t, b64);
        const n = full + partial + encoded;
        if (n === 0) continue;
        bytes += full * secret.length + partial * core.length + encoded * b64.length;
        count += n;
        if (!sample) {
          const i = Math.max(0, t.indexOf(core) >= 0 ? t.indexOf(core) : t.indexOf(b64));
          sample = t.slice(Math.max(0, i - 120), i + 80);
        }
      }
      if (count) hits.push({ secret, where, count, sample });
    }
  }
  return { hits, bytes };
}

/**
 * Waits (up to `timeoutMs`) for every invariant to hold, then reports what still does not,
 * and scans every place for the suite's secrets.
 */
export async function checkInvariants(
  ctx: InvariantContext,
  opts: { timeoutMs?: number } = {},
): Promise<InvariantReport> {
  const started = Date.now();
  const deadline = started + (opts.timeoutMs ?? 90_000);
  let pass = await convergenceViolations(ctx);
  while (pass.violations.length > 0 && Date.now() < deadline) {
    await sleep(500);
    pass = await convergenceViolations(ctx);
  }
  const settledMs = Date.now() - started;
  const places = await haystacks(ctx, pass.connectors);
  const { hits, bytes } = scanForSecrets(places);
  const events = await ctx.kube.events();
  return {
    violations: pass.violations,
    secretHits: hits,
    secretBytes: bytes,
    checked: {
      connectors: pass.connectors.length,
      rows: pass.rows.length,
      events: events.count,
      logLines: ctx.logs().length,
      auditRows: places.get("audit rows")!.length,
    },
    settledMs,
  };
}

/** A readable account of a report, for assertion messages. */
export function describeReport(r: InvariantReport): string {
  const lines = [
    `violations: ${r.violations.length}`,
    ...r.violations.slice(0, 40).map((v) => `  - ${v}`),
    `secret bytes found: ${r.secretBytes}`,
    ...r.secretHits.map((h) => `  - ${h.count}x in ${h.where}: …${h.sample}…`),
  ];
  return lines.join("\n");
}

export type { Expectation };
