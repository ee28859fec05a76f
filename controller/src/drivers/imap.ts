// The imap type: the health check is LOGIN and EXAMINE (a read-only SELECT) of the configured
// mailbox. Deleting mailboxes (class C in the catalog) has no handler at all.
import type { JsonObject } from "../api/types.ts";
import type { Driver, DriverCall, ProviderReply } from "./driver.ts";
import { classifyImap, configMailbox, imapTarget, openMailbox, withImapSession } from "./imapSession.ts";

function health(call: DriverCall): Promise<ProviderReply> {
  return withImapSession(call, async (client) => {
    await openMailbox(call, client, configMailbox(call), true);
    return {};
  });
}

export const imapDriver: Driver = {
  target: (config: JsonObject) => imapTarget(config),
  health,
  operations: {},
  classify: classifyImap,
};
