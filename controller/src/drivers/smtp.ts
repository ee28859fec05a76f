// The smtp type. The health check is EHLO, STARTTLS (or implicit TLS), AUTH and QUIT;
// verifyConnection is the same check as an operation. sendMail submits one message: the
// sender is the config's `from` (any other is refused), recipients are bounded by
// `maxRecipients` and, when set, `allowedRecipientDomains`; Bcc recipients are in the
// envelope only. Relaying (relayMail, class C in the catalog) has no handler at all.
import MailComposer from "nodemailer/lib/mail-composer";
import type SMTPConnection from "nodemailer/lib/smtp-connection";
import { ConnectorError } from "../api/errors.ts";
import type { JsonObject } from "../api/types.ts";
import { configPath, inputError, int, str, strings } from "./config.ts";
import type { Driver, DriverCall, OperationResult, ProviderReply } from "./driver.ts";
import { where } from "./failures.ts";
import { classifySmtp, smtpTarget, step, withSmtpSession } from "./smtpSession.ts";

const DEFAULT_MAX_RECIPIENTS = 50;
const MAX_RESPONSE_CHARS = 512;

function health(call: DriverCall): Promise<ProviderReply> {
  return withSmtpSession(call, async () => ({}));
}

async function verifyConnection(_input: JsonObject, call: DriverCall): Promise<OperationResult> {
  return withSmtpSession(call, async ({ conn }) => ({
    data: { verified: true, tls: conn.secure, authenticated: conn.authenticated },
  }));
}

/** The sender: the config's `from` when it pins one (an input `from` must then be the same address). */
function sender(input: JsonObject, call: DriverCall): string {
  const pinned = str(call.config, "from");
  const asked = str(input, "from");
  if (pinned === undefined) {
    if (asked === undefined) throw inputError(where(call), "from", "is required (the config pins no sender)");
    return asked;
  }
  if (asked !== undefined && asked.toLowerCase() !== pinned.toLowerCase())
    throw new ConnectorError(
      "policy_denied",
      "SenderNotAllowed",
      `${where(call)}: input.from is not the sender this connector may use (${configPath("from")})`,
      { problems: [{ path: "input.from", message: `must be ${configPath("from")}` }] },
    );
  return pinned;
}

interface Recipients {
  to: string[];
  cc: string[];
  bcc: string[];
}

function recipients(input: JsonObject, call: DriverCall): Recipients {
  const r: Recipients = { to: strings(input, "to"), cc: strings(input, "cc"), bcc: strings(input, "bcc") };
  const all = [...r.to, ...r.cc, ...r.bcc];
  if (r.to.length === 0) throw inputError(where(call), "to", "must name at least one recipient");
  const max = int(call.config, "maxRecipients") ?? DEFAULT_MAX_RECIPIENTS;
  if (all.length > max)
    throw inputError(where(call), "to", `with cc and bcc names ${all.length} recipients, more than ${max}`);
  const allowed = strings(call.config, "allowedRecipientDomains").map((d) => d.toLowerCase());
  for (const field of ["to", "cc", "bcc"] as const) {
    r[field].forEach((address, i) => {
      if (/[\r\n<>,;]/.test(address) || !address.includes("@"))
        throw inputError(where(call), `${field}[${i}]`, "is not a single e-mail address");
      const domain = address.slice(address.lastIndexOf("@") + 1).toLowerCase();
      if (allowed.length > 0 && !allowed.includes(domain))
        throw new ConnectorError(
          "policy_denied",
          "RecipientNotAllowed",
          `${where(call)}: input.${field}[${i}] is in a domain outside ${configPath("allowedRecipientDomains")}`,
          { problems: [{ path: `input.${field}[${i}]`, message: "domain not allowed" }] },
        );
    });
  }
  return r;
}

function headerText(input: JsonObject, key: string, call: DriverCall): string | undefined {
  const value = str(input, key);
  if (value !== undefined && /[\r\n]/.test(value))
    throw inputError(where(call), key, "must be a single line");
  return value;
}

async function sendMail(input: JsonObject, call: DriverCall): Promise<OperationResult> {
  const from = sender(input, call);
  const { to, cc, bcc } = recipients(input, call);
  const replyTo = headerText(input, "replyTo", call) ?? str(call.config, "replyTo");
  const inReplyTo = headerText(input, "inReplyTo", call);
  const references = strings(input, "references");
  const mail = new MailComposer({
    from,
    to,
    ...(cc.length > 0 ? { cc } : {}),
    ...(bcc.length > 0 ? { bcc } : {}),
    ...(replyTo !== undefined ? { replyTo } : {}),
    ...(inReplyTo !== undefined ? { inReplyTo } : {}),
    ...(references.length > 0 ? { references } : {}),
    subject: headerText(input, "subject", call) ?? "",
    text: str(input, "text") ?? "",
    disableFileAccess: true,
    disableUrlAccess: true,
  }).compile();
  const messageId = mail.messageId();
  const raw = await mail.build();
  const envelope = mail.getEnvelope();
  const info = await withSmtpSession(call, ({ conn, run }) =>
    run(
      step<SMTPConnection.SentMessageInfo>((cb) =>
        conn.send({ from: envelope.from || from, to: envelope.to }, raw, cb),
      ),
    ),
  );
  if (!info)
    throw new ConnectorError("transient", "ProtocolError", `${where(call)}: the server gave no reply`);
  const response = String(info.response ?? "").slice(0, MAX_RESPONSE_CHARS);
  const code = Number(/^\d{3}/.exec(response)?.[0]);
  return {
    data: { messageId, accepted: info.accepted.map(String), rejected: info.rejected.map(String), response },
    ...(Number.isInteger(code) ? { providerStatusCode: code } : {}),
    ...(info.rejected.length > 0
      ? { warnings: [`${info.rejected.length} recipient(s) rejected by the server`] }
      : {}),
    remoteChangeIds: [messageId],
  };
}

export const smtpDriver: Driver = {
  target: (config: JsonObject) => smtpTarget(config),
  health,
  operations: { sendMail, verifyConnection },
  classify: classifySmtp,
};
