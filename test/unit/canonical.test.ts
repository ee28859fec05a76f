import { describe, expect, it } from "vitest";
import { canonicalJson, deepEqual } from "../../controller/src/api/canonical.ts";

const at = new Date("2026-11-21T10:00:00.000Z");
// Pairs of values, each compared both ways; deepEqual must agree with comparing canonicalJson.
const cases: [unknown, unknown][] = [
  [
    { a: 1, b: { c: [1, 2] } },
    { b: { c: [1, 2] }, a: 1 },
  ],
  [
    { a: 1, b: { c: [1, 2] } },
    { b: { c: [2, 1] }, a: 1 },
  ],
  [{ a: 1, b: undefined }, { a: 1 }],
  [{ a: 1, b: null }, { a: 1 }],
  [{ a: 1 }, { a: 1, b: 2 }],
  [
    { a: 1, b: 2 },
    { a: 1, c: 2 },
  ],
  [
    [1, undefined],
    [1, null],
  ],
  [
    [1, 2],
    [1, 2, 3],
  ],
  [[], {}],
  [at, "2026-11-21T10:00:00.000Z"],
  [{ t: at }, { t: new Date(at.getTime()) }],
  [{ t: at }, { t: new Date(at.getTime() + 1) }],
  [null, undefined],
  [null, null],
  [undefined, undefined],
  [0, false],
  ["1", 1],
  [{ a: { b: { c: "x" } } }, { a: { b: { c: "y" } } }],
  [{ a: [{ x: 1, y: [true] }] }, { a: [{ y: [true], x: 1 }] }],
];

describe("deepEqual", () => {
  it.each(cases.map((c, i) => [i, ...c]))("case %i agrees with canonicalJson", (_i, a, b) => {
    const expected = canonicalJson(a) === canonicalJson(b);
    expect(deepEqual(a, b)).toBe(expected);
    expect(deepEqual(b, a)).toBe(expected);
  });

  it("has both answers among the cases, so the agreement means something", () => {
    const answers = new Set(cases.map(([a, b]) => deepEqual(a, b)));
    expect(answers).toEqual(new Set([true, false]));
  });
});
