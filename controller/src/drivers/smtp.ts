// The smtp type: the health check is EHLO, STARTTLS (or implicit TLS), AUTH and QUIT.
// Relaying (relayMail, class C in the catalog) has no handler at all.
import type { JsonObject } from "../api/types.ts";
import type { Driver, DriverCall, ProviderReply } from "./driver.ts";
import { classifySmtp, smtpTarget, withSmtpSession } from "./smtpSession.ts";

function health(call: DriverCall): Promise<ProviderReply> {
  return withSmtpSession(call, async () => ({}));
}

export const smtpDriver: Driver = {
  target: (config: JsonObject) => smtpTarget(config),
  health,
  operations: {},
  classify: classifySmtp,
};
