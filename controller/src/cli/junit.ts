// `connectorctl validate --output junit`: the report as JUnit XML, which CI systems (GitLab,
// Jenkins, GitHub Actions reporters, Azure Pipelines) show as test results. One test suite a
// file, one test case a document of ours; a document's problems are its failure.
import { relative } from "node:path";
import { formatProblem, type FileProblem, type ValidationReport } from "./validate.ts";

// XML 1.0 allows only these characters: anything else (U+0000, other C0 controls, unpaired
// surrogates, which a `u` regex sees as lone code points, U+FFFE/U+FFFF) would make the
// whole report unreadable, so it becomes U+FFFD.
// eslint-disable-next-line no-control-regex
const NOT_XML = /[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/gu;

export function xmlText(s: string): string {
  return s.replace(NOT_XML, "\ufffd").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function xmlAttr(s: string): string {
  return xmlText(s)
    .replace(/"/g, "&quot;")
    .replace(/\n/g, "&#10;")
    .replace(/\r/g, "&#13;")
    .replace(/\t/g, "&#9;");
}

interface Case {
  name: string;
  problems: FileProblem[];
  warnings: FileProblem[];
}

function caseName(p: { document: number; kind?: string; name?: string }): string {
  if (p.document === 0) return "(yaml)";
  return [`#${p.document}`, p.kind, p.name].filter(Boolean).join(" ");
}

export function formatJunit(report: ValidationReport, cwd = process.cwd()): string {
  // Files in the order they were read, each with its documents in order.
  const suites = new Map<string, Map<number, Case>>();
  const suite = (file: string) => {
    let s = suites.get(file);
    if (!s) suites.set(file, (s = new Map()));
    return s;
  };
  const testCase = (p: { file: string; document: number; kind?: string; name?: string }) => {
    const s = suite(p.file);
    let c = s.get(p.document);
    if (!c) s.set(p.document, (c = { name: caseName(p), problems: [], warnings: [] }));
    return c;
  };
  for (const p of report.problems.filter((x) => x.document === 0)) testCase(p).problems.push(p);
  for (const d of report.checked) testCase(d);
  for (const p of report.problems.filter((x) => x.document !== 0)) testCase(p).problems.push(p);
  for (const w of report.warnings) testCase(w).warnings.push(w);

  const all = [...suites.values()].flatMap((s) => [...s.values()]);
  const failures = all.filter((c) => c.problems.length).length;
  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="connectorctl validate" tests="${all.length}" failures="${failures}" errors="0" skipped="0" time="0">`,
  ];
  for (const [file, cases] of suites) {
    const shown = relative(cwd, file) || file;
    const list = [...cases.values()];
    const failed = list.filter((c) => c.problems.length).length;
    out.push(
      `  <testsuite name="${xmlAttr(shown)}" tests="${list.length}" failures="${failed}" errors="0" skipped="0" time="0">`,
    );
    for (const c of list) {
      const open = `    <testcase classname="${xmlAttr(shown)}" name="${xmlAttr(c.name)}" time="0"`;
      if (!c.problems.length && !c.warnings.length) {
        out.push(`${open}/>`);
        continue;
      }
      out.push(`${open}>`);
      if (c.problems.length) {
        const first = c.problems[0]!;
        const message =
          c.problems.length === 1
            ? `${first.path}: ${first.message}`
            : `${c.problems.length} problems, the first: ${first.path}: ${first.message}`;
        const body = c.problems.map((p) => formatProblem(p, cwd)).join("\n");
        out.push(
          `      <failure message="${xmlAttr(message)}" type="${first.document === 0 ? "yaml" : "validation"}">${xmlText(body)}</failure>`,
        );
      }
      if (c.warnings.length)
        out.push(
          `      <system-out>${xmlText(c.warnings.map((w) => `warning: ${formatProblem(w, cwd)}`).join("\n"))}</system-out>`,
        );
      out.push("    </testcase>");
    }
    out.push("  </testsuite>");
  }
  out.push("</testsuites>");
  return out.join("\n") + "\n";
}
