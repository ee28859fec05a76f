// `connectorctl diff FILE...`: what applying these files would change, in two layers.
// - The cluster: each object as the API server has it against what a server-side apply
//   would make of it (dry run), as `kubectl diff --server-side --force-conflicts` shows it.
// - The instance rows: for each Connector, the row the controller would converge to (the
//   reconciler's own validation and comparison) against the row in the database now,
//   field by field. A row changed by hand shows here too: the controller would overwrite it.
// Exit codes as diff(1) uses them: 0 no differences, 1 differences, 2 trouble.
import { configProblems } from "../drivers/run.ts";
import * as yaml from "js-yaml";
import { ConnectorError } from "../api/errors.ts";
import { DESIRED_FIELDS, type DesiredInstance, type InstanceRow } from "../api/model.ts";
import type { Connector, ConnectorType, JsonObject, PolicyTemplate } from "../api/types.ts";
import { ConfigSchemaCache } from "../catalog/configSchemas.ts";
import { StaticCatalog, type LoadedDocument } from "../catalog/fileCatalog.ts";
import type { CliCluster, KubeDocument } from "../kube/cliClient.ts";
import { NAMESPACED_KINDS, pluralOf } from "../kube/cliClient.ts";
import type { InstanceStore } from "../reconcile/ports.ts";
import { diffDesired } from "../reconcile/reconciler.ts";
import { validateConnector } from "../reconcile/validate.ts";
import { unifiedDiff } from "./unifiedDiff.ts";

const OUR_GROUP = /^cynodeai\.io\//;

export interface DiffOptions {
  cluster: Pick<CliCluster, "defaultNamespace" | "get" | "dryRunApply" | "catalog">;
  /** The instance rows; undefined: only the cluster is compared. */
  instances?: Pick<InstanceStore, "findByUid">;
  fieldManager: string;
  /** -n: the namespace of Connectors that name none (and that those that do must name). */
  namespace?: string;
  /** Feature flags the controller runs with (they gate connector types). */
  enabledFeatures?: ReadonlySet<string>;
}

export interface DiffReport {
  /** The diff text (stdout). */
  output: string;
  /** Objects that would change in the cluster. */
  clusterChanges: number;
  /** Instance rows that would be created or change. */
  instanceChanges: number;
  /** Documents that could not be compared, or that would be refused: the trouble (exit 2). */
  problems: string[];
  /** Documents passed over: other groups' kinds (kubectl diff them). */
  skipped: string[];
}

export function exitCode(r: DiffReport): number {
  if (r.problems.length) return 2;
  return r.clusterChanges + r.instanceChanges ? 1 : 0;
}

const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

// Bookkeeping that every apply changes or that only the server writes is left out of the
// view. That includes kubectl's last-applied annotation: a server-side apply rewrites it
// from the applied object (to keep client-side apply working), so an object applied with
// `kubectl apply` would otherwise always differ ({"annotations":{}} in kubectl's copy).
function forDisplay(obj: KubeDocument | undefined): string {
  if (!obj) return "";
  const copy = structuredClone(obj);
  const meta = copy.metadata as Record<string, unknown> & { annotations?: Record<string, string> };
  delete meta.managedFields;
  delete meta.generation;
  delete meta.resourceVersion;
  if (meta.annotations) {
    delete meta.annotations[LAST_APPLIED];
    if (!Object.keys(meta.annotations).length) delete meta.annotations;
  }
  return yaml.dump(copy, { lineWidth: -1, noRefs: true });
}

function objectPath(doc: KubeDocument): string {
  const [group, version] = doc.apiVersion.split("/");
  return [group, version, doc.kind, doc.metadata.namespace, doc.metadata.name].filter(Boolean).join(".");
}

const show = (v: unknown) => JSON.stringify(v === undefined ? null : v);

function valueAt(source: DesiredInstance | undefined, path: string): unknown {
  if (!source) return undefined;
  if (path.startsWith("config.")) return (source.config as JsonObject | null)?.[path.slice("config.".length)];
  return source[path as keyof DesiredInstance];
}

/**
 * The instance side of one Connector: `@@ field @@` with the row's value (-) and the one the
 * controller would write (+); every field of a row that does not exist yet. "" when equal.
 */
export function instanceDiff(row: InstanceRow | undefined, desired: DesiredInstance, key: string): string {
  const fields = row ? diffDesired(row, desired) : [...DESIRED_FIELDS];
  if (!fields.length) return "";
  const out = [
    `--- instance/${key}${row ? ` (row ${row.id}, applied generation ${row.appliedGeneration})` : " (no row)"}`,
    `+++ instance/${key} (${row ? "as the controller would converge it" : "the row the controller would create"})`,
  ];
  for (const f of fields) {
    out.push(`@@ ${f} @@`);
    if (row) out.push(`-${show(valueAt(row, f))}`);
    out.push(`+${show(valueAt(desired, f))}`);
  }
  return out.join("\n") + "\n";
}

function describe(d: LoadedDocument, doc: KubeDocument | undefined): string {
  const name = doc?.metadata?.name
    ? ` ${doc.kind} ${doc.metadata.namespace ? `${doc.metadata.namespace}/` : ""}${doc.metadata.name}`
    : "";
  return `${d.file}#${d.index}${name}`;
}

function messageOf(err: unknown): string {
  if (err instanceof ConnectorError && err.problems.length)
    return err.problems.map((p) => `${p.path}: ${p.message}`).join("; ");
  return err instanceof Error ? err.message : String(err);
}

export async function diffDocuments(docs: LoadedDocument[], opts: DiffOptions): Promise<DiffReport> {
  const report: DiffReport = { output: "", clusterChanges: 0, instanceChanges: 0, problems: [], skipped: [] };
  const out: string[] = [];
  // The catalog the controller would validate against: the cluster's, with the types and
  // templates among the inputs in their place (they would be applied too). Read once, lazily.
  let catalog: Promise<StaticCatalog> | undefined;
  const inputTypes = docs
    .map((d) => d.doc as KubeDocument)
    .filter((d) => OUR_GROUP.test(String(d?.apiVersion)));
  const catalogFor = () =>
    (catalog ??= opts.cluster.catalog().then(({ types, templates }) => {
      const c = new StaticCatalog(types, templates);
      for (const d of inputTypes) {
        if (d.kind === "ConnectorType") c.types.set(d.metadata.name, d as unknown as ConnectorType);
        if (d.kind === "ConnectorPolicyTemplate")
          c.templates.set(d.metadata.name, d as unknown as PolicyTemplate);
      }
      return c;
    }));
  const schemas = new ConfigSchemaCache();

  for (const d of docs) {
    const raw = d.doc as Partial<KubeDocument> | null;
    if (!raw || typeof raw !== "object" || Array.isArray(raw) || typeof raw.apiVersion !== "string") {
      report.problems.push(`${d.file}#${d.index}: (document): must be a mapping with apiVersion and kind`);
      continue;
    }
    if (!OUR_GROUP.test(raw.apiVersion)) {
      report.skipped.push(
        `${d.file}#${d.index} ${raw.kind ?? "(no kind)"} ${raw.metadata?.name ?? ""}`.trim(),
      );
      continue;
    }
    if (typeof raw.kind !== "string" || !pluralOf(raw.kind)) {
      report.problems.push(`${d.file}#${d.index}: kind: unknown kind "${raw.kind}" in group cynodeai.io`);
      continue;
    }
    if (typeof raw.metadata?.name !== "string" || !raw.metadata.name) {
      report.problems.push(`${d.file}#${d.index} ${raw.kind}: metadata.name: required`);
      continue;
    }
    const doc = structuredClone(raw) as KubeDocument;
    if (NAMESPACED_KINDS.has(doc.kind)) {
      const ns = doc.metadata.namespace;
      if (ns && opts.namespace && ns !== opts.namespace) {
        report.problems.push(
          `${describe(d, doc)}: metadata.namespace: "${ns}" does not match the namespace given with -n ("${opts.namespace}")`,
        );
        continue;
      }
      doc.metadata.namespace = ns || opts.namespace || opts.cluster.defaultNamespace;
    }

    let live: KubeDocument | undefined;
    let merged: KubeDocument;
    try {
      live = await opts.cluster.get(doc);
      merged = await opts.cluster.dryRunApply(doc, opts.fieldManager);
    } catch (err) {
      report.problems.push(`${describe(d, doc)}: ${messageOf(err)}`);
      continue;
    }
    const path = objectPath(merged);
    const clusterText = unifiedDiff(forDisplay(live), forDisplay(merged), {
      from: `live/${path}`,
      to: `merged/${path}`,
    });
    if (clusterText) {
      report.clusterChanges++;
      out.push(clusterText);
    }

    if (doc.kind !== "Connector" || !opts.instances) continue;
    let desired: DesiredInstance;
    try {
      const ctx = {
        catalog: await catalogFor(),
        schemas,
        enabledFeatures: opts.enabledFeatures ?? new Set<string>(),
        configProblems,
      };
      desired = validateConnector(merged as unknown as Connector, ctx).desired;
    } catch (err) {
      if (!(err instanceof ConnectorError)) {
        report.problems.push(`${describe(d, doc)}: ${messageOf(err)}`);
        continue;
      }
      report.problems.push(
        `${describe(d, doc)}: ${messageOf(err)} (the controller would refuse this spec and keep the instance as it is)`,
      );
      continue;
    }
    try {
      const row = live?.metadata.uid ? await opts.instances.findByUid(live.metadata.uid) : undefined;
      const key = `${doc.metadata.namespace}/${doc.metadata.name}`;
      const text = instanceDiff(row, desired, key);
      if (text) {
        report.instanceChanges++;
        out.push(text);
      }
    } catch (err) {
      report.problems.push(`${describe(d, doc)}: reading the instance row: ${messageOf(err)}`);
    }
  }
  report.output = out.join("");
  return report;
}

export function summaryLine(r: DiffReport, comparedInstances: boolean): string {
  const parts = [
    `${r.clusterChanges} object(s) would change in the cluster`,
    comparedInstances ? `${r.instanceChanges} instance row(s) would change` : "instance rows not compared",
  ];
  if (r.problems.length) parts.push(`${r.problems.length} problem(s)`);
  return parts.join(", ");
}
