// A unified diff of two texts (diff -u), for `connectorctl diff`. Objects are small (a few
// hundred lines), so a longest-common-subsequence table over what differs between the common
// head and tail is plenty; past a bound it shows the middle as replaced whole, which is
// still a correct diff.

type Op = { kind: " " | "-" | "+"; text: string };

const MAX_CELLS = 4_000_000;

function lineOps(a: string[], b: string[]): Op[] {
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (
    tail < a.length - head &&
    tail < b.length - head &&
    a[a.length - 1 - tail] === b[b.length - 1 - tail]
  )
    tail++;
  const x = a.slice(head, a.length - tail);
  const y = b.slice(head, b.length - tail);
  const middle: Op[] = [];
  if ((x.length + 1) * (y.length + 1) > MAX_CELLS) {
    middle.push(...x.map((text) => ({ kind: "-" as const, text })));
    middle.push(...y.map((text) => ({ kind: "+" as const, text })));
  } else {
    // lcs[i][j]: the longest common subsequence of x[i..] and y[j..].
    const w = y.length + 1;
    const lcs = new Uint32Array((x.length + 1) * w);
    for (let i = x.length - 1; i >= 0; i--)
      for (let j = y.length - 1; j >= 0; j--)
        lcs[i * w + j] =
          x[i] === y[j]
            ? lcs[(i + 1) * w + j + 1]! + 1
            : Math.max(lcs[(i + 1) * w + j]!, lcs[i * w + j + 1]!);
    let i = 0;
    let j = 0;
    while (i < x.length || j < y.length) {
      if (i < x.length && j < y.length && x[i] === y[j]) {
        middle.push({ kind: " ", text: x[i]! });
        i++;
        j++;
      } else if (i < x.length && (j === y.length || lcs[(i + 1) * w + j]! >= lcs[i * w + j + 1]!)) {
        middle.push({ kind: "-", text: x[i++]! }); // removals first, as diff prints them
      } else {
        middle.push({ kind: "+", text: y[j++]! });
      }
    }
  }
  return [
    ...a.slice(0, head).map((text) => ({ kind: " " as const, text })),
    ...middle,
    ...a.slice(a.length - tail).map((text) => ({ kind: " " as const, text })),
  ];
}

function splitLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

/**
 * `--- from` / `+++ to` and hunks with `context` lines around each change; "" when the
 * texts are equal. An empty text is an object that does not exist (diff -N).
 */
export function unifiedDiff(
  from: string,
  to: string,
  labels: { from: string; to: string },
  context = 3,
): string {
  const ops = lineOps(splitLines(from), splitLines(to));
  const changed = ops.map((o, k) => (o.kind === " " ? -1 : k)).filter((k) => k >= 0);
  if (!changed.length) return "";
  // Group changes whose context overlaps into one hunk.
  const hunks: { start: number; end: number }[] = [];
  for (const k of changed) {
    const last = hunks.at(-1);
    if (last && k - last.end <= 2 * context) last.end = k;
    else hunks.push({ start: k, end: k });
  }
  const out = [`--- ${labels.from}`, `+++ ${labels.to}`];
  // Line numbers before each op, on both sides.
  const before: { a: number; b: number }[] = [];
  let a = 1;
  let b = 1;
  for (const o of ops) {
    before.push({ a, b });
    if (o.kind !== "+") a++;
    if (o.kind !== "-") b++;
  }
  for (const h of hunks) {
    const lo = Math.max(0, h.start - context);
    const hi = Math.min(ops.length - 1, h.end + context);
    const slice = ops.slice(lo, hi + 1);
    const aLen = slice.filter((o) => o.kind !== "+").length;
    const bLen = slice.filter((o) => o.kind !== "-").length;
    // diff -u numbers an empty side from the line before it (0 for an empty file).
    const aStart = aLen ? before[lo]!.a : before[lo]!.a - 1;
    const bStart = bLen ? before[lo]!.b : before[lo]!.b - 1;
    out.push(`@@ -${aStart},${aLen} +${bStart},${bLen} @@`);
    for (const o of slice) out.push(`${o.kind}${o.text}`);
  }
  return out.join("\n") + "\n";
}
