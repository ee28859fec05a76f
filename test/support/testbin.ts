// The server binaries the tests run, from hack/testbin.sh (built once from the Go module
// proxy and cached, or taken from the directory an environment variable names). Nothing is
// ever skipped: when a target cannot be had, this throws with the script's last words and
// how to provide the binaries.
import * as fs from "node:fs";
import * as path from "node:path";
import { projectRoot } from "../../controller/src/api/paths.ts";
import { lastLines, runCommand } from "./process.ts";

const HOW_TO: Record<string, string> = {
  kube:
    "Run `make testbin` (builds kube-apiserver, kubectl and etcd from the Go module proxy; needs Go >= 1.26) " +
    "or set KUBEBUILDER_ASSETS to a directory holding kube-apiserver, kubectl and etcd.",
  helm:
    "Run `hack/testbin.sh helm` (builds helm from the Go module proxy; needs Go >= 1.26) " +
    "or set TESTBIN_HELM_DIR to a directory holding helm.",
  openbao:
    "Run `hack/testbin.sh openbao` (builds it from the Go module proxy; needs Go >= 1.26) " +
    "or set OPENBAO_BIN to a bao or vault binary.",
};

/**
 * `hack/testbin.sh <target>`: the directory holding the target's binaries, once each of
 * `binaries` is there (any one of them with `anyOf`). A first build can take long.
 */
export async function testbinDir(
  target: "kube" | "helm" | "openbao",
  binaries: string[],
  opts: { anyOf?: boolean; timeoutMs?: number } = {},
): Promise<string> {
  const script = path.join(projectRoot, "hack", "testbin.sh");
  const res = await runCommand("bash", [script, target], {
    stderrTo: process.stderr,
    timeoutMs: opts.timeoutMs ?? 3_600_000,
  });
  const dir = res.stdout.trim().split("\n").pop()?.trim() ?? "";
  if (res.code !== 0 || dir === "")
    throw new Error(
      `the ${target} test binaries are not available: hack/testbin.sh ${target} exited ${res.code}.\n` +
        `${lastLines(res.stderr, 30)}\n${HOW_TO[target]}`,
    );
  const present = binaries.filter((b) => isExecutable(path.join(dir, b)));
  if (opts.anyOf ? present.length === 0 : present.length < binaries.length)
    throw new Error(
      `hack/testbin.sh ${target} printed ${dir}, which lacks ` +
        `${opts.anyOf ? `all of ${binaries.join(", ")}` : binaries.filter((b) => !present.includes(b)).join(", ")}. ` +
        HOW_TO[target],
    );
  return dir;
}

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}
