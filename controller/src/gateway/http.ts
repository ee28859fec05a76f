// The gateway's HTTP API on fastify: routes declared with JSON Schemas (validated by
// fastify's ajv, documented as OpenAPI at /openapi.json), a body limit, request ids, and one
// error handler that turns everything — a malformed body, a schema violation, a route that
// does not exist, an unexpected fault — into problem details. The handlers are plain
// functions of invoke.ts and endpoints.ts.
import { randomUUID } from "node:crypto";
import type { Readable } from "node:stream";
import swagger from "@fastify/swagger";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { createAjv } from "../api/ajv.ts";
import { ConnectorError } from "../api/errors.ts";
import type { Logger } from "../api/logger.ts";
import { ajvProblems, type Problem } from "../api/problems.ts";
import type { ConnectorType } from "../api/types.ts";
import {
  answer,
  approve,
  cancelJob,
  catalog,
  connectorStatus,
  getJob,
  listDeadLetters,
  listJobs,
  replayDeadLetter,
  type ApprovalRequest,
} from "./endpoints.ts";
import { invoke, type InvokeBody, type InvokeDeps, type Reply } from "./invoke.ts";
import { DECLARED_ERROR_STATUSES, invalidField, PROBLEM_CONTENT_TYPE, problemOf } from "./problems.ts";
import * as S from "./schemas.ts";

export interface HttpOptions {
  /** The largest request body accepted (a larger one is refused with 413 before it is parsed). */
  bodyLimit: number;
  /** The deepest JSON nesting accepted in a body. */
  maxDepth: number;
  log: Logger;
  types(): ConnectorType[];
  /** Extra routes (health, OAuth callback, MCP) registered by the composition root. */
  extend?: (app: FastifyInstance) => void;
}

function send(reply: FastifyReply, r: Reply): FastifyReply {
  reply.code(r.status);
  // Here too, not only in onSend: fastify's own refusals of a URL (frameworkErrors) skip the hooks.
  reply.header("x-request-id", reply.request.id);
  for (const [k, v] of Object.entries(r.headers ?? {})) reply.header(k, v);
  if (r.status >= 400) reply.type(PROBLEM_CONTENT_TYPE);
  return reply.send(r.body);
}

/**
 * A query string is text: the routes that take one validate it with type coercion, so
 * `?limit=5` is the integer its schema asks for. Nothing else is coerced (a body's "5" stays
 * a string), which is why this is a compiler of those routes only.
 */
const queryAjv = createAjv({ coerceTypes: true });
const queryValidator = ({ schema }: { schema: object }) => queryAjv.compile(schema);

/** The longest path segment routed (three times a 253-character name, percent-encoded, and some). */
const MAX_PARAM_LENGTH = 1024;

/** Rejects bodies nested deeper than `max` before JSON.parse or ajv recurse into them. */
export function nestingDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 || c === 91) deepest = Math.max(deepest, ++depth);
    else if (c === 125 || c === 93) depth--;
  }
  return deepest;
}

function payloadTooLarge(): ConnectorError {
  return invalidField(
    "PayloadTooLarge",
    "(root)",
    "is larger than the gateway accepts",
    "the request body is larger than the gateway accepts",
  );
}

function invalidJson(what = "is not valid JSON"): ConnectorError {
  return invalidField("InvalidJson", "(root)", what, `the request body ${what}`);
}

/**
 * The body, up to `limit` bytes. A larger one is still read to its end (up to twice the
 * limit) before it is refused: a caller that writes its whole body before reading the answer
 * would otherwise lose the 413, as closing a socket with unread data resets the connection.
 */
export function readBody(payload: Readable, contentLength: number, limit: number): Promise<Buffer> {
  if (contentLength > 2 * limit) return Promise.reject(payloadTooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const settle = (err?: Error) => {
      payload.removeListener("data", onData);
      payload.removeListener("end", onEnd);
      payload.removeListener("error", onEnd);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks, received));
    };
    const onData = (chunk: Buffer | string) => {
      const b = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      received += b.length;
      if (received > 2 * limit) settle(payloadTooLarge());
      else if (received <= limit) chunks.push(b);
    };
    const onEnd = (err?: Error) => {
      if (err) settle(Object.assign(err, { statusCode: 400 }));
      else if (received > limit) settle(payloadTooLarge());
      else if (!Number.isNaN(contentLength) && received !== contentLength)
        settle(invalidField("InvalidRequest", "headers.content-length", "is not the length of the body"));
      else settle();
    };
    payload.on("data", onData);
    payload.on("end", onEnd);
    payload.on("error", onEnd);
    payload.resume();
  });
}

function fastifyProblems(err: { validation?: unknown[]; validationContext?: string }): Problem[] {
  return ajvProblems(
    err.validation as never,
    err.validationContext === "body" ? "" : (err.validationContext ?? ""),
  );
}

/** Fastify's own refusals (body too large, bad JSON, schema) as classed errors. */
function classifyFastify(
  err: Error & { statusCode?: number; code?: string; validation?: unknown[] },
): ConnectorError {
  if (err instanceof ConnectorError) return err;
  if (err.validation) {
    const problems = fastifyProblems(err as never);
    return new ConnectorError(
      "validation_error",
      "InvalidRequest",
      problems.map((p) => `${p.path}: ${p.message}`).join("; "),
      { problems },
    );
  }
  switch (err.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return payloadTooLarge();
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return invalidField(
        "UnsupportedMediaType",
        "headers.content-type",
        "must be application/json",
        "the request body must be application/json",
      );
    // Through frameworkErrors: fastify answers these itself, in JSON of its own, otherwise.
    case "FST_ERR_BAD_URL":
      return invalidField("InvalidRequest", "(url)", "is not valid percent-encoding");
    case "FST_ERR_MAX_PARAM_LENGTH":
      return invalidField(
        "InvalidRequest",
        "(url)",
        `has a path segment longer than ${MAX_PARAM_LENGTH} characters`,
      );
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return invalidJson();
  }
  if (err.statusCode && err.statusCode < 500)
    return new ConnectorError("validation_error", "InvalidRequest", err.message.slice(0, 300));
  return new ConnectorError(
    "permanent",
    "InternalError",
    "the gateway failed unexpectedly; the request id identifies it in the gateway's log",
  );
}

export async function createHttpApi(d: InvokeDeps, o: HttpOptions): Promise<FastifyInstance> {
  const onError = (err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    const e = classifyFastify(err as never);
    if (e.reason === "InternalError") o.log.error({ requestId: req.id, err }, "unexpected gateway fault");
    const problem = problemOf(e, req.id);
    return send(reply, { status: problem.status, body: problem });
  };
  const app = Fastify({
    bodyLimit: o.bodyLimit,
    genReqId: (req) => {
      const given = req.headers["x-request-id"];
      return typeof given === "string" && /^[\w.-]{1,128}$/.test(given) ? given : randomUUID();
    },
    disableRequestLogging: true,
    // Above any name the params' schemas accept, percent-encoded: a longer one is refused by the schema.
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    frameworkErrors: (err, req, reply) => onError(err, req, reply),
    ajv: { customOptions: { allErrors: true, coerceTypes: false, removeAdditional: false } },
  });
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: { title: "connector-controller gateway", version: "v1", description: S.API_DESCRIPTION },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
  });
  // JSON only: fastify's text/plain parser would hand a string to a route that wants an object.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("application/json", (req, payload, done) => {
    readBody(payload, Number(req.headers["content-length"]), o.bodyLimit).then(
      (raw) => parseJson(raw.toString("utf8"), done),
      (err: Error) => done(err, undefined),
    );
  });
  const parseJson = (text: string, done: (err: Error | null, body?: unknown) => void) => {
    if (text.length === 0) return done(null, {});
    if (nestingDepth(text) > o.maxDepth)
      return done(invalidJson(`is nested deeper than ${o.maxDepth} levels`), undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      done(invalidJson(), undefined);
    }
  };
  app.addHook("onSend", async (req, reply) => {
    reply.header("x-request-id", req.id);
  });
  app.setErrorHandler(onError);
  app.setNotFoundHandler((req, reply) =>
    send(reply, {
      status: 404,
      body: problemOf(
        invalidField(
          "NotFound",
          "(url)",
          "is no route of this API",
          `no route ${req.method} ${req.url.split("?")[0]!.slice(0, 200)}`,
        ),
        req.id,
      ),
    }),
  );

  const auth = (req: FastifyRequest) => req.headers.authorization;
  // The caller went away when the response closes before it was written.
  const abortOn = (reply: FastifyReply) => {
    const ac = new AbortController();
    reply.raw.on("close", () => {
      if (!reply.raw.writableFinished) ac.abort();
    });
    return ac.signal;
  };
  const errors = Object.fromEntries(DECLARED_ERROR_STATUSES.map((s) => [s, S.problem]));

  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());

  app.post<{ Params: { ns: string; name: string; op: string }; Body: InvokeBody }>(
    "/v1/namespaces/:ns/connectors/:name/operations/:op",
    {
      schema: {
        summary: "Invoke an operation",
        params: S.operationParams,
        body: S.invokeBody,
        headers: S.correlationHeaders,
        response: { 200: S.normalizedResponse, 202: S.accepted, ...errors },
      },
    },
    async (req, reply) => {
      const correlation = req.headers["x-correlation-id"];
      return send(
        reply,
        await invoke(d, {
          authorization: auth(req),
          namespace: req.params.ns,
          name: req.params.name,
          operation: req.params.op,
          body: req.body ?? {},
          requestId: req.id,
          correlationId: typeof correlation === "string" && correlation ? correlation.slice(0, 128) : req.id,
          signal: abortOn(reply),
        }),
      );
    },
  );
  app.post<{ Params: { ns: string; name: string }; Body: ApprovalRequest }>(
    "/v1/namespaces/:ns/connectors/:name/approvals",
    {
      schema: {
        summary: "Approve one call of a class B operation (dual control)",
        params: S.connectorParams,
        body: S.approvalBody,
        response: { 201: S.approvalIssued, ...errors },
      },
    },
    async (req, reply) =>
      send(
        reply,
        await answer(req.id, () => approve(d, auth(req), req.params.ns, req.params.name, req.body)),
      ),
  );
  app.get<{ Params: { ns: string; name: string } }>(
    "/v1/namespaces/:ns/connectors/:name",
    {
      schema: {
        summary: "A Connector's status",
        params: S.connectorParams,
        response: { 200: S.anyObject, ...errors },
      },
    },
    async (req, reply) =>
      send(reply, await answer(req.id, () => connectorStatus(d, auth(req), req.params.ns, req.params.name))),
  );
  app.get(
    "/v1/catalog",
    {
      schema: {
        summary: "Connector types and their operations (discover)",
        response: { 200: S.anyObject, ...errors },
      },
    },
    async (req, reply) =>
      send(reply, await answer(req.id, () => catalog({ ...d, types: o.types }, auth(req)))),
  );
  app.get<{ Params: { id: string } }>(
    "/v1/jobs/:id",
    { schema: { summary: "An async job", params: S.idParams, response: { 200: S.job, ...errors } } },
    async (req, reply) => send(reply, await answer(req.id, () => getJob(d, auth(req), req.params.id))),
  );
  app.post<{ Params: { id: string } }>(
    "/v1/jobs/:id/cancel",
    {
      schema: {
        summary: "Cancel a pending or running job",
        params: S.idParams,
        response: { 200: S.job, ...errors },
      },
    },
    async (req, reply) => send(reply, await answer(req.id, () => cancelJob(d, auth(req), req.params.id))),
  );
  app.get<{ Querystring: S.JobQuery }>(
    "/v1/jobs",
    {
      schema: {
        summary: "Jobs of a namespace or a Connector",
        querystring: S.jobQuery,
        response: { 200: S.anyObject, ...errors },
      },
      validatorCompiler: queryValidator,
    },
    async (req, reply) => send(reply, await answer(req.id, () => listJobs(d, auth(req), req.query))),
  );
  app.get<{ Querystring: { namespace: string; limit?: number } }>(
    "/v1/deadletters",
    {
      schema: {
        summary: "Jobs whose retries ran out",
        querystring: S.deadLetterQuery,
        response: { 200: S.anyObject, ...errors },
      },
      validatorCompiler: queryValidator,
    },
    async (req, reply) => send(reply, await answer(req.id, () => listDeadLetters(d, auth(req), req.query))),
  );
  app.post<{ Params: { id: string } }>(
    "/v1/deadletters/:id/replay",
    {
      schema: {
        summary: "Run a dead letter's job again (same input, same idempotency key)",
        params: S.idParams,
        response: { 202: S.accepted, ...errors },
      },
    },
    async (req, reply) =>
      send(reply, await answer(req.id, () => replayDeadLetter(d, auth(req), req.params.id))),
  );
  o.extend?.(app);
  await app.ready();
  return app;
}
