// The InstanceSource of gateway/ports.ts: a Connector's instance row, cached per the
// Connector's status (the applied generation and state the controller wrote) and for a
// few seconds at most, so the hot path does not read it on every call and a change the
// controller makes is seen at once.
import type { Kysely } from "kysely";
import type { InstanceRow } from "../api/model.ts";
import type { Connector } from "../api/types.ts";
import { createInstanceStore } from "./instanceStore.ts";
import type { Database } from "./schema.ts";

export class CachedInstanceSource {
  readonly #store;
  readonly #ttlMs: number;
  readonly #cache = new Map<string, { version: string; row: InstanceRow | undefined; until: number }>();

  constructor(db: Kysely<Database>, ttlMs = 5_000) {
    this.#store = createInstanceStore(db);
    this.#ttlMs = ttlMs;
  }

  async get(c: Connector, signal?: AbortSignal): Promise<InstanceRow | undefined> {
    const uid = c.metadata.uid;
    if (!uid) return undefined;
    const s = c.status ?? {};
    const version = `${s.instanceId}/${s.appliedGeneration}/${s.state}/${s.lastSuccessAt ?? ""}`;
    const hit = this.#cache.get(uid);
    const now = Date.now();
    if (hit && hit.version === version && hit.until > now) return hit.row;
    const row = await this.#store.findByUid(uid, signal);
    if (this.#cache.size > 50_000) this.#cache.clear();
    this.#cache.set(uid, { version, row, until: now + this.#ttlMs });
    return row;
  }
}
