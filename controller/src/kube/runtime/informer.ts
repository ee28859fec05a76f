// A cache of one resource kind kept current by list-then-watch, with client-go's indexes
// (objects by a computed value, e.g. Connectors by their type), so a change to one object
// finds the objects that depend on it without a scan. It survives what real
// clusters do: watches that end (re-watch from the last resourceVersion), 410 Gone
// (relist), errors (exponential backoff, Retry-After honoured), silent stalls (no byte in
// `stallMs` => reconnect), and replayed events (the handler sees an update only when the
// resourceVersion differs). resourceVersions are opaque strings, never compared as numbers.
import { Watch, type KubeConfig } from "@kubernetes/client-node";
import { jitter, sleep } from "../../api/clock.ts";
import type { ObjectMeta } from "../../api/types.ts";
import type { Logger } from "../../api/logger.ts";
import { apiRetryAfterMs, apiStatus } from "../apiErrors.ts";

export interface KubeObject {
  metadata: ObjectMeta;
}

/** Computes the values an object is indexed under (client-go's IndexFunc). */
export type IndexFunc<T> = (obj: T) => string[];

export type InformerEventType = "add" | "update" | "delete";
export type InformerHandler<T> = (type: InformerEventType, obj: T, old: T | undefined) => void;

export interface ListPage<T> {
  items: T[];
  resourceVersion: string;
  continue?: string;
}

export interface ListWatchSource<T> {
  /** A page of the list (consistent read); `cont` continues a paginated list. */
  list(cont: string | undefined, limit: number): Promise<ListPage<T>>;
  /** The collection's URL path, e.g. /apis/cynodeai.io/v1alpha1/namespaces/a/connectors. */
  watchPath: string;
  labelSelector?: string;
}

export interface InformerMetrics {
  relist?(): void;
  watchRestart?(reason: string): void;
}

export interface InformerOptions<T = unknown> {
  name: string;
  /** Applied to every object before it is cached or handed on (e.g. to drop what no one reads). */
  transform?: (obj: T) => T;
  log: Logger;
  stallMs?: number;
  pageSize?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  metrics?: InformerMetrics;
}

export function objectKey(o: KubeObject): string {
  return o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;
}

class GoneError extends Error {}

export class Informer<T extends KubeObject> {
  readonly #cache = new Map<string, T>();
  readonly #indexers = new Map<string, IndexFunc<T>>();
  /** index name -> value -> keys of the objects indexed under it */
  readonly #indexes = new Map<string, Map<string, Set<string>>>();
  readonly #handlers: InformerHandler<T>[] = [];
  readonly #watch: Watch;
  readonly #opts: Required<Omit<InformerOptions<T>, "metrics" | "transform">> & { metrics: InformerMetrics };
  readonly #transform: (obj: T) => T;
  #resourceVersion = "";
  #synced = false;
  #syncedWaiters: (() => void)[] = [];

  readonly source: ListWatchSource<T>;

  constructor(kc: KubeConfig, source: ListWatchSource<T>, opts: InformerOptions<T>) {
    this.source = source;
    const { transform, ...rest } = opts;
    this.#transform = transform ?? ((o) => o);
    this.#opts = {
      stallMs: 120_000,
      pageSize: 500,
      minBackoffMs: 500,
      maxBackoffMs: 30_000,
      metrics: {},
      ...rest,
    };
    this.#watch = new Watch(kc);
    // client-node's Watch aborts a connection that stays silent this long: our stall timer.
    // (Typed private, but it is the documented knob of its inactivity timeout.)
    (this.#watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = this.#opts.stallMs;
  }

  on(handler: InformerHandler<T>): void {
    this.#handlers.push(handler);
  }

  /** Adds an index; objects already cached are indexed at once. */
  addIndex(name: string, fn: IndexFunc<T>): void {
    this.#indexers.set(name, fn);
    this.#indexes.set(name, new Map());
    for (const [key, obj] of this.#cache) this.#index(name, fn, key, obj, +1);
  }

  /** The cached objects indexed under `value` by the index `name`. */
  byIndex(name: string, value: string): T[] {
    const keys = this.#indexes.get(name)?.get(value);
    if (!keys) return [];
    return [...keys].map((k) => this.#cache.get(k)).filter((o) => o !== undefined);
  }

  get(key: string): T | undefined {
    return this.#cache.get(key);
  }

  list(): T[] {
    return [...this.#cache.values()];
  }

  get size(): number {
    return this.#cache.size;
  }

  isSynced(): boolean {
    return this.#synced;
  }

  waitForSync(): Promise<void> {
    return this.#synced ? Promise.resolve() : new Promise((r) => this.#syncedWaiters.push(r));
  }

  /**
   * Takes an object the controller just wrote (the API server's answer), so that the next
   * reconcile compares against it even before the watch delivers the same change.
   */
  observe(obj: T): void {
    const key = objectKey(obj);
    if (this.#cache.has(key)) this.#put(key, this.#transform(obj));
  }

  /** Lists and watches until the signal aborts. */
  async run(signal: AbortSignal): Promise<void> {
    let backoff = this.#opts.minBackoffMs;
    let needList = true;
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.#relist(signal);
          needList = false;
        }
        const reason = await this.#watchOnce(signal);
        backoff = this.#opts.minBackoffMs;
        if (reason !== "closed") this.#opts.metrics.watchRestart?.(reason);
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof GoneError || apiStatus(err) === 410) {
          this.#opts.log.info({ informer: this.#opts.name }, "resourceVersion too old (410 Gone); relisting");
          this.#opts.metrics.watchRestart?.("gone");
          needList = true;
          continue;
        }
        const wait = Math.max(apiRetryAfterMs(err) ?? 0, jitter(backoff, 0.2));
        this.#opts.log.warn(
          {
            informer: this.#opts.name,
            err,
            status: apiStatus(err),
            retryInMs: Math.round(wait),
          },
          "list/watch failed; retrying",
        );
        this.#opts.metrics.watchRestart?.("error");
        await sleep(wait, signal);
        backoff = Math.min(backoff * 2, this.#opts.maxBackoffMs);
      }
    }
  }

  async #relist(signal: AbortSignal): Promise<void> {
    const fresh = new Map<string, T>();
    let cont: string | undefined;
    let rv = "";
    do {
      const page = await this.source.list(cont, this.#opts.pageSize);
      for (const item of page.items) fresh.set(objectKey(item), this.#transform(item));
      rv = page.resourceVersion;
      cont = page.continue || undefined;
      if (signal.aborted) return;
    } while (cont);
    this.#opts.metrics.relist?.();
    const old = new Map(this.#cache);
    for (const k of old.keys()) if (!fresh.has(k)) this.#remove(k);
    for (const [k, v] of fresh) this.#put(k, v);
    this.#resourceVersion = rv;
    for (const [k, v] of fresh) {
      const prev = old.get(k);
      if (!prev) this.#emit("add", v, undefined);
      else if (prev.metadata.resourceVersion !== v.metadata.resourceVersion) this.#emit("update", v, prev);
    }
    for (const [k, v] of old) if (!fresh.has(k)) this.#emit("delete", v, undefined);
    if (!this.#synced) {
      this.#synced = true;
      for (const w of this.#syncedWaiters.splice(0)) w();
    }
  }

  /** One watch connection; resolves when it ends normally, rejects on errors and 410. */
  #watchOnce(signal: AbortSignal): Promise<"closed" | "stalled"> {
    return new Promise((resolve, reject) => {
      let failure: unknown;
      let controller: AbortController | undefined;
      const onAbort = () => controller?.abort();
      signal.addEventListener("abort", onAbort, { once: true });
      const params: Record<string, string | number | boolean> = {
        resourceVersion: this.#resourceVersion,
        allowWatchBookmarks: true,
        // Like client-go: a random server-side timeout so many watches do not renew together.
        timeoutSeconds: 300 + Math.floor(Math.random() * 300),
      };
      if (this.source.labelSelector) params.labelSelector = this.source.labelSelector;
      const onEvent = (type: string, obj: unknown) => {
        try {
          this.#onWatchEvent(type, obj);
        } catch (err) {
          failure = err;
          controller?.abort();
        }
      };
      const onDone = (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        if (failure) return reject(failure);
        if (signal.aborted) return resolve("closed");
        if ((err as { name?: string })?.name === "TimeoutError") return resolve("stalled");
        if (err && (err as { name?: string }).name !== "AbortError") return reject(err);
        resolve("closed");
      };
      this.#watch.watch(this.source.watchPath, params, onEvent, onDone).then(
        (c) => {
          controller = c;
          if (signal.aborted) c.abort();
        },
        (err: unknown) => onDone(err),
      );
    });
  }

  #onWatchEvent(type: string, obj: unknown): void {
    if (type === "ERROR") {
      const status = obj as { code?: number; message?: string };
      if (status?.code === 410) throw new GoneError(status.message ?? "gone");
      throw Object.assign(new Error(status?.message ?? "watch error"), { statusCode: status?.code });
    }
    const rv = (obj as T)?.metadata?.resourceVersion;
    if (rv) this.#resourceVersion = rv;
    if (type === "BOOKMARK") return;
    const o = this.#transform(obj as T);
    const key = objectKey(o);
    const prev = this.#cache.get(key);
    if (type === "DELETED") {
      this.#remove(key);
      this.#emit("delete", o, prev);
      return;
    }
    this.#put(key, o);
    if (!prev) this.#emit("add", o, undefined);
    else if (prev.metadata.resourceVersion !== rv) this.#emit("update", o, prev);
  }

  #put(key: string, obj: T): void {
    const prev = this.#cache.get(key);
    for (const [name, fn] of this.#indexers) {
      if (prev) this.#index(name, fn, key, prev, -1);
      this.#index(name, fn, key, obj, +1);
    }
    this.#cache.set(key, obj);
  }

  #remove(key: string): void {
    const prev = this.#cache.get(key);
    if (!prev) return;
    for (const [name, fn] of this.#indexers) this.#index(name, fn, key, prev, -1);
    this.#cache.delete(key);
  }

  #index(name: string, fn: IndexFunc<T>, key: string, obj: T, delta: 1 | -1): void {
    const index = this.#indexes.get(name)!;
    for (const value of fn(obj)) {
      let keys = index.get(value);
      if (delta > 0) {
        if (!keys) index.set(value, (keys = new Set()));
        keys.add(key);
      } else if (keys) {
        keys.delete(key);
        if (!keys.size) index.delete(value);
      }
    }
  }

  #emit(type: InformerEventType, obj: T, old: T | undefined): void {
    for (const h of this.#handlers) h(type, obj, old);
  }
}
