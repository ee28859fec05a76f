// The YAML documents a command reads: files, directories (their .yaml and .yml files), and
// `-` for standard input (`kustomize build overlays/prod | connectorctl validate -`).
import * as yaml from "js-yaml";
import { listYamlFiles, parseYamlFile, type LoadedDocument } from "../catalog/fileCatalog.ts";

/** The argument that means standard input, and the name its problems carry. */
export const STDIN_ARG = "-";
export const STDIN_NAME = "<stdin>";

export interface UnreadableFile {
  file: string;
  /** "line 2, column 3: bad indentation of a mapping entry" */
  message: string;
}

export interface ReadDocuments {
  /** The files read, in order (<stdin> where `-` was given). */
  files: string[];
  docs: LoadedDocument[];
  /** Files that are not YAML: the file and, when known, the line and column. */
  unreadable: UnreadableFile[];
}

function yamlErrorMessage(err: unknown): string {
  const e = err as { reason?: string; mark?: { line: number; column: number }; message: string };
  return e.mark
    ? `line ${e.mark.line + 1}, column ${e.mark.column + 1}: ${e.reason ?? e.message}`
    : (e.message.split("\n")[0] ?? "");
}

/**
 * Reads every document of the given paths. `stdin` is standard input's text, read by the
 * caller (only when `-` is among the paths). A path that does not exist throws (ENOENT
 * names it); a file that is not YAML is reported in `unreadable`.
 */
export function readDocuments(paths: string[], stdin?: string): ReadDocuments {
  const out: ReadDocuments = { files: [], docs: [], unreadable: [] };
  const parse = (file: string, load: () => LoadedDocument[]) => {
    out.files.push(file);
    try {
      out.docs.push(...load());
    } catch (err) {
      out.unreadable.push({ file, message: yamlErrorMessage(err) });
    }
  };
  let stdinRead = false;
  for (const path of paths) {
    if (path === STDIN_ARG) {
      if (stdinRead) continue; // standard input can be read once
      stdinRead = true;
      parse(STDIN_NAME, () =>
        yaml
          .loadAll(stdin ?? "")
          .map((doc, i) => ({ file: STDIN_NAME, index: i + 1, doc }))
          .filter((d) => d.doc !== null && d.doc !== undefined),
      );
      continue;
    }
    for (const file of listYamlFiles([path])) parse(file, () => parseYamlFile(file));
  }
  return out;
}

/** All of standard input, as text. */
export async function readStdin(stream: NodeJS.ReadableStream = process.stdin): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString("utf8");
}
