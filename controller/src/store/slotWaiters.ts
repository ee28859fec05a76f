// This replica's half of the shared queue of an instance: its queued calls, woken when a
// NOTIFY says a slot of their instance may be free. Only the oldest local waiter of the
// instance is woken, since the head of the shared queue is the oldest waiter of some
// replica; a waiter that gets its slot wakes the next one. Notifications are a shortcut:
// each waiter also asks again on its own every poll, which covers a lost LISTEN connection
// and a slot whose lease lapsed.
import type { OpenedDatabase } from "./database.ts";
import { SLOT_CHANNEL } from "./migrations/003_gateway_limits.ts";

export interface Waiter {
  /** Its place in the shared queue (Infinity until known). */
  seq: number;
  /** Resolves after `ms`, when woken, or when the signal aborts, whichever is first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  leave(): void;
}

class Entry implements Waiter {
  seq = Number.POSITIVE_INFINITY;
  #woken = false;
  #interrupt: (() => void) | undefined;
  readonly leave: () => void;

  constructor(leave: () => void) {
    this.leave = leave;
  }

  wake(): void {
    if (this.#interrupt) this.#interrupt();
    // Woken between two sleeps (while asking): the next sleep returns at once.
    else this.#woken = true;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (this.#woken || signal?.aborted) {
      this.#woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        this.#interrupt = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener("abort", done, { once: true });
      this.#interrupt = done;
    });
  }
}

export class SlotWaiters {
  readonly #subscribe: OpenedDatabase["subscribe"];
  readonly #byInstance = new Map<string, Set<Entry>>();
  #listening: Promise<(() => Promise<void>) | undefined> | undefined;

  constructor(subscribe: OpenedDatabase["subscribe"]) {
    this.#subscribe = subscribe;
  }

  /** LISTENs if not already; a failure leaves the waiters to their polling. */
  listen(): Promise<void> {
    this.#listening ??= this.#subscribe(
      SLOT_CHANNEL,
      (instanceId) => this.wake(instanceId),
      () => {
        this.#listening = undefined;
        // Whatever was notified while the connection was down is lost: everyone asks again.
        for (const instanceId of this.#byInstance.keys()) this.#wakeAll(instanceId);
      },
    ).catch(() => {
      this.#listening = undefined;
      return undefined;
    });
    return this.#listening.then(() => undefined);
  }

  join(instanceId: string): Waiter {
    let entries = this.#byInstance.get(instanceId);
    if (!entries) this.#byInstance.set(instanceId, (entries = new Set()));
    const set = entries;
    const entry: Entry = new Entry(() => {
      set.delete(entry);
      if (set.size === 0 && this.#byInstance.get(instanceId) === set) this.#byInstance.delete(instanceId);
    });
    set.add(entry);
    return entry;
  }

  /** Wakes the oldest local waiter of the instance. */
  wake(instanceId: string): void {
    let oldest: Entry | undefined;
    for (const e of this.#byInstance.get(instanceId) ?? []) if (!oldest || e.seq < oldest.seq) oldest = e;
    oldest?.wake();
  }

  #wakeAll(instanceId: string): void {
    for (const e of this.#byInstance.get(instanceId) ?? []) e.wake();
  }

  async close(): Promise<void> {
    const unlisten = await this.#listening;
    this.#listening = undefined;
    await unlisten?.();
  }
}
