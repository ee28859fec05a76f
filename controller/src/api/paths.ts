import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// The same code runs from controller/src (tests, `node file.ts`) and from dist/, so the
// package root is found by walking up rather than by a fixed relative path.
function findProjectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, "utf8")).name === "connector-controller") return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error("cannot find the connector-controller package root");
    dir = parent;
  }
}

export const projectRoot = findProjectRoot();
export const crdDir = join(projectRoot, "crds");
/** The built-in catalog: ConnectorTypes and policy templates that ship with the project. */
export const defaultCatalogDirs = [
  join(projectRoot, "examples", "types"),
  join(projectRoot, "examples", "policy-templates"),
];
