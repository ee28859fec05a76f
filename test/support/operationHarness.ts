// What the driver operation tests share:
// - the example catalog's types, and a runner of operations (through drivers/run.ts) that
//   checks every input against the operation's inputSchema and every result against its
//   outputSchema with ajv, and keeps every result and error as text for the secret scan;
// - startFakeApi: an HTTPS server on loopback (certificate from a throwaway CA) whose handler
//   sees each request with its body read, recording them, and counting open sockets.
import * as https from "node:https";
import type { IncomingHttpHeaders, ServerResponse } from "node:http";
import { join } from "node:path";
import { expect } from "vitest";
import { createAjv } from "../../controller/src/api/ajv.ts";
import { ConnectorError } from "../../controller/src/api/errors.ts";
import type { Logger } from "../../controller/src/api/logger.ts";
import type { ProbeInput } from "../../controller/src/api/model.ts";
import { projectRoot } from "../../controller/src/api/paths.ts";
import type { ConnectorType, JsonObject, Operation } from "../../controller/src/api/types.ts";
import { parseYamlFile } from "../../controller/src/catalog/fileCatalog.ts";
import type { OperationResult } from "../../controller/src/drivers/driver.ts";
import { runOperation } from "../../controller/src/drivers/run.ts";
import { countConnections, listen } from "./net.ts";
import { createTestCa } from "./pki.ts";

export function loadType(name: string): ConnectorType {
  return parseYamlFile(join(projectRoot, "examples", "types", `${name}.yaml`))[0]?.doc as ConnectorType;
}

export function declaredOperation(connector: ProbeInput, name: string): Operation {
  const version = connector.type.spec.versions.find((v) => v.version === connector.typeVersion);
  const op = version?.operations.find((o) => o.name === name);
  if (!op) throw new Error(`${connector.type.metadata.name} v${connector.typeVersion} declares no ${name}`);
  return op;
}

export interface OperationRunner {
  /** Runs an operation; its input must pass the catalog's inputSchema and its data the outputSchema. */
  op(name: string, input: JsonObject, connector: ProbeInput): Promise<OperationResult>;
  /** Does the input pass the operation's inputSchema? */
  inputValid(name: string, input: JsonObject, connector: ProbeInput): boolean;
  /** Every result and error produced so far, as JSON text. */
  seen: string[];
}

export function operationRunner(log: Logger): OperationRunner {
  const ajv = createAjv();
  const seen: string[] = [];
  const remember = (err: unknown) =>
    seen.push(JSON.stringify({ ...(err as object), message: (err as Error).message }));
  return {
    seen,
    inputValid(name, input, connector) {
      const schema = declaredOperation(connector, name).inputSchema;
      return schema === undefined || ajv.validate(schema, input);
    },
    async op(name, input, connector) {
      const declared = declaredOperation(connector, name);
      if (declared.inputSchema)
        expect(ajv.validate(declared.inputSchema, input), ajv.errorsText()).toBe(true);
      try {
        const result = await runOperation(name, input, connector, log);
        seen.push(JSON.stringify(result));
        if (declared.outputSchema)
          expect(ajv.validate(declared.outputSchema, result.data), ajv.errorsText()).toBe(true);
        return result;
      } catch (err) {
        remember(err);
        throw err;
      }
    },
  };
}

/** The ConnectorError a call fails with (and a test failure when it succeeds). */
export async function failure(p: Promise<unknown>): Promise<ConnectorError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ConnectorError) return err;
    throw err;
  }
  throw new Error("expected the operation to fail");
}

// --- a fake HTTPS API -------------------------------------------------------------------------

export interface FakeRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface FakeApi {
  /** https://127.0.0.1:<port> */
  url: string;
  caPem: string;
  requests: FakeRequest[];
  /** The last request received. */
  last(): FakeRequest;
  openSockets(): number;
  waitForNoOpenSockets(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** A JSON answer. */
export function reply(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = body === undefined ? "" : JSON.stringify(body);
  res.writeHead(status, {
    ...(body === undefined ? {} : { "content-type": "application/json" }),
    "content-length": String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

/** The handler may leave a request unanswered (a provider that hangs). */
export async function startFakeApi(
  handler: (req: FakeRequest, res: ServerResponse) => void,
): Promise<FakeApi> {
  const ca = await createTestCa("connector-controller-fake-api-ca");
  const cert = await ca.issueServerCert({ dns: ["localhost"], ips: ["127.0.0.1"] });
  const requests: FakeRequest[] = [];
  const server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "https://fake");
      const recorded: FakeRequest = {
        method: req.method ?? "",
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      };
      requests.push(recorded);
      handler(recorded, res);
    });
  });
  const c = countConnections(server);
  const { port } = await listen(server);
  return {
    url: `https://127.0.0.1:${port}`,
    caPem: ca.caPem,
    requests,
    last: () => {
      const req = requests[requests.length - 1];
      if (!req) throw new Error("the fake API has received no request");
      return req;
    },
    openSockets: c.openSockets,
    waitForNoOpenSockets: c.waitForNoOpenSockets,
    async stop() {
      server.closeAllConnections();
      for (const s of c.sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
