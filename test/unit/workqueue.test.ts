import { describe, expect, it } from "vitest";
import { WorkQueue } from "../../controller/src/kube/runtime/workqueue.ts";

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

describe("WorkQueue", () => {
  it("does not queue a key that is already waiting", async () => {
    const q = new WorkQueue();
    q.add("a");
    q.add("a");
    q.add("b");
    expect(q.length).toBe(2);
    expect(await q.get()).toBe("a");
    expect(await q.get()).toBe("b");
  });

  it("never hands a key being processed to a second worker, and re-queues it after done", async () => {
    const q = new WorkQueue();
    q.add("a");
    const first = await q.get();
    q.add("a"); // changed while processing
    expect(q.length).toBe(0);
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await tick();
    expect(second).toBeUndefined();
    q.done(first!);
    await tick();
    expect(second).toBe("a");
  });

  it("backs off a failing key exponentially and forgets on success", async () => {
    let now = 0;
    const q = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 40, now: () => now });
    const delays: number[] = [];
    const realAddAfter = q.addAfter.bind(q);
    q.addAfter = (key: string, ms: number) => {
      delays.push(ms);
      realAddAfter(key, 0);
    };
    for (let i = 0; i < 4; i++) {
      q.addRateLimited("a");
      q.done((await q.get())!);
    }
    expect(delays).toEqual([10, 20, 40, 40]);
    expect(q.numRequeues("a")).toBe(4);
    q.forget("a");
    q.addRateLimited("a");
    expect(delays.at(-1)).toBe(10);
    now += 1;
  });

  it("applies the global token bucket on top of per-key backoff", () => {
    const now = 0;
    const q = new WorkQueue({ baseDelayMs: 1, qps: 10, burst: 2, now: () => now });
    const delays: number[] = [];
    q.addAfter = (_key: string, ms: number) => void delays.push(ms);
    for (const k of ["a", "b", "c", "d"]) q.addRateLimited(k);
    expect(delays).toEqual([1, 1, 100, 200]);
  });

  it("honours a longer Retry-After", () => {
    const q = new WorkQueue({ baseDelayMs: 5 });
    const delays: number[] = [];
    q.addAfter = (_key: string, ms: number) => void delays.push(ms);
    q.addRateLimited("a", 3000);
    expect(delays).toEqual([3000]);
  });

  it("delays an add, and an earlier pending delay wins", async () => {
    const q = new WorkQueue();
    q.addAfter("a", 30);
    q.addAfter("a", 5000);
    expect(q.length).toBe(0);
    await tick(60);
    expect(q.length).toBe(1);
    expect(await q.get()).toBe("a");
  });

  it("releases waiting workers on shutdown", async () => {
    const q = new WorkQueue();
    const pending = q.get();
    q.shutDown();
    expect(await pending).toBeUndefined();
    q.add("a");
    expect(q.length).toBe(0);
  });
});
