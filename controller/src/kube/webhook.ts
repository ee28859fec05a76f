// The validating admission webhook's HTTPS server: the API server asks before it stores a
// Connector; the decision is reconcile/admission.ts's. Served by every replica.
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import { join } from "node:path";
import type { Logger } from "../api/logger.ts";
import type { AdmissionRequest, AdmissionVerdict } from "../reconcile/ports.ts";

export const WEBHOOK_PATH = "/validate-connector";
const MAX_BODY = 3 * 1024 * 1024; // the API server's own request size limit

export interface WebhookOptions {
  port: number;
  host?: string;
  certDir: string;
  /** The decision (reconcile/admission.ts reviewConnector, over the informer caches). */
  review: (request: AdmissionRequest) => AdmissionVerdict;
  log: Logger;
}

export async function startWebhookServer(opts: WebhookOptions): Promise<Server> {
  const load = () => ({
    cert: readFileSync(join(opts.certDir, "tls.crt")),
    key: readFileSync(join(opts.certDir, "tls.key")),
  });
  const server = createServer(load(), (req, res) => {
    const reply = (code: number, body: object) => {
      res.writeHead(code, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.method !== "POST" || (req.url ?? "").split("?")[0] !== WEBHOOK_PATH)
      return reply(404, { message: "not found" });
    let size = 0;
    const chunks: Buffer[] = [];
    req.on("data", (d: Buffer) => {
      size += d.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(d);
    });
    req.on("end", () => {
      let review: { apiVersion?: string; request?: AdmissionRequest };
      try {
        review = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        return reply(400, { message: "body is not an AdmissionReview" });
      }
      const request = review.request;
      if (!request?.uid) return reply(400, { message: "AdmissionReview has no request" });
      const verdict = opts.review(request);
      if (!verdict.allowed)
        opts.log.info(
          {
            key: `${request.object?.metadata.namespace}/${request.object?.metadata.name}`,
            reason: verdict.message,
          },
          "admission denied",
        );
      reply(200, {
        apiVersion: review.apiVersion ?? "admission.k8s.io/v1",
        kind: "AdmissionReview",
        response: {
          uid: request.uid,
          allowed: verdict.allowed,
          ...(verdict.allowed ? {} : { status: { code: 422, reason: "Invalid", message: verdict.message } }),
          ...(verdict.warnings ? { warnings: verdict.warnings } : {}),
        },
      });
    });
  });
  // Certificates are rotated (cert-manager): pick up new files without a restart.
  const reload = setInterval(() => {
    try {
      server.setSecureContext(load());
    } catch (err) {
      opts.log.warn({ err }, "could not reload webhook certificates");
    }
  }, 60_000);
  reload.unref();
  server.on("close", () => clearInterval(reload));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host ?? "0.0.0.0", () => resolve());
  });
  opts.log.info({ port: opts.port, path: WEBHOOK_PATH }, "validating webhook listening");
  return server;
}
