// What a process has cost so far, read from /proc (Linux): CPU seconds (utime + stime, and
// for a server its reaped children) and resident memory (current and peak, VmHWM).
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

let ticks: number | undefined;
function clockTicks(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

export interface ProcStat {
  pid: number;
  ppid: number;
  comm: string;
  /** utime + stime of the process itself, seconds. */
  cpuSeconds: number;
  /** cutime + cstime: children it has waited for, seconds. */
  childCpuSeconds: number;
}

export function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // comm is in parentheses and may contain spaces: split after the last ")".
  const close = text.lastIndexOf(")");
  const comm = text.slice(text.indexOf("(") + 1, close);
  const f = text.slice(close + 2).split(" ");
  // f[0] is field 3 (state): field k is f[k - 3].
  const n = (k: number) => Number(f[k - 3]);
  const t = clockTicks();
  return {
    pid,
    ppid: n(4),
    comm,
    cpuSeconds: (n(14) + n(15)) / t,
    childCpuSeconds: (n(16) + n(17)) / t,
  };
}

/** VmRSS and VmHWM (peak) in bytes. */
export function procMemory(pid: number): { rss: number; peakRss: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kb("VmRSS"), peakRss: kb("VmHWM") };
}

/**
 * CPU seconds of a server and all its live and reaped descendants (PostgreSQL forks a
 * backend per connection): the difference of two readings is what it spent in between.
 */
export function treeCpuSeconds(rootPid: number): number | undefined {
  const root = procStat(rootPid);
  if (!root) return undefined;
  const children = new Map<number, ProcStat[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const s = procStat(Number(entry));
    if (!s) continue;
    const list = children.get(s.ppid) ?? [];
    list.push(s);
    children.set(s.ppid, list);
  }
  let total = 0;
  const visit = (s: ProcStat) => {
    total += s.cpuSeconds + s.childCpuSeconds;
    for (const c of children.get(s.pid) ?? []) visit(c);
  };
  visit(root);
  return total;
}

/** Busy CPU seconds of the whole machine so far (all CPUs: user, nice, system, irq, softirq, steal). */
export function machineBusySeconds(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const busy = f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + (f[7] ?? 0);
  return busy / clockTicks();
}
