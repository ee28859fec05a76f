// The imap type. The health check is LOGIN and EXAMINE (a read-only SELECT) of the configured
// mailbox. Operations work on that mailbox: readInbox (imapInbox.ts), listMailboxes,
// markSeen and moveMessage (uids of the configured mailbox). Deleting mailboxes (class C in
// the catalog) has no handler at all.
import type { ImapFlow } from "imapflow";
import { ConnectorError } from "../api/errors.ts";
import type { JsonObject, JsonValue } from "../api/types.ts";
import { bool, inputError, int, str } from "./config.ts";
import type { Driver, DriverCall, OperationResult, ProviderReply } from "./driver.ts";
import { errorCodes, where } from "./failures.ts";
import { readInbox } from "./imapInbox.ts";
import { classifyImap, configMailbox, imapTarget, openMailbox, withImapSession } from "./imapSession.ts";

const MAX_MAILBOXES = 1000;

function health(call: DriverCall): Promise<ProviderReply> {
  return withImapSession(call, async (client) => {
    await openMailbox(call, client, configMailbox(call), true);
    return {};
  });
}

async function listMailboxes(input: JsonObject, call: DriverCall): Promise<OperationResult> {
  const statusCounts = bool(input, "statusCounts") === true;
  const list = await withImapSession(call, (client) =>
    client.list(statusCounts ? { statusQuery: { messages: true, unseen: true } } : {}),
  );
  const mailboxes = list.slice(0, MAX_MAILBOXES).map((m) => {
    const entry: { [key: string]: JsonValue } = {
      path: m.path,
      name: m.name,
      delimiter: m.delimiter,
      subscribed: m.subscribed === true,
    };
    if (m.specialUse) entry["specialUse"] = m.specialUse;
    if (m.status?.messages !== undefined) entry["messages"] = m.status.messages;
    if (m.status?.unseen !== undefined) entry["unseen"] = m.status.unseen;
    return entry;
  });
  return {
    data: { mailboxes, truncated: list.length > MAX_MAILBOXES },
    ...(list.length > MAX_MAILBOXES
      ? { warnings: [`only the first ${MAX_MAILBOXES} mailboxes are listed`] }
      : {}),
  };
}

/** A message's name across calls: RFC 5092's mailbox;UIDVALIDITY=v/;UID=u, without the server. */
function messageRef(mailbox: string, uidValidity: bigint, uid: number): string {
  return `${mailbox};UIDVALIDITY=${uidValidity}/;UID=${uid}`;
}

/** Which of these uids exist in the selected mailbox. */
async function existing(client: ImapFlow, uids: number[]): Promise<Set<number>> {
  const found = await client.search({ uid: uids.join(",") }, { uid: true });
  return new Set(found || []);
}

/** MOVE reports no reason when it fails (imapflow answers false): check the destination first. */
async function requireMailbox(call: DriverCall, client: ImapFlow, mailbox: string): Promise<void> {
  const status = await client.status(mailbox, { messages: true }).catch((err: unknown) => {
    if (errorCodes(err).includes("NotFound")) return false;
    throw err;
  });
  if (!status)
    throw new ConnectorError(
      "permanent",
      "MailboxNotFound",
      `${where(call)}: mailbox ${JSON.stringify(mailbox)} does not exist`,
    );
}

function uidList(input: JsonObject, call: DriverCall): number[] {
  const raw = input["uids"];
  const uids = Array.isArray(raw) ? raw : [];
  if (uids.length === 0) throw inputError(where(call), "uids", "must name at least one message");
  uids.forEach((u, i) => {
    if (typeof u !== "number" || !Number.isInteger(u) || u < 1)
      throw inputError(where(call), `uids[${i}]`, "must be a positive integer");
  });
  return [...new Set(uids as number[])];
}

async function markSeen(input: JsonObject, call: DriverCall): Promise<OperationResult> {
  const uids = uidList(input, call);
  const mailbox = configMailbox(call);
  return withImapSession(call, async (client) => {
    const opened = await openMailbox(call, client, mailbox, false);
    const found = await existing(client, uids);
    const marked = uids.filter((u) => found.has(u));
    if (marked.length > 0) await client.messageFlagsAdd(marked, ["\\Seen"], { uid: true });
    return {
      data: { mailbox, marked, notFound: uids.filter((u) => !found.has(u)) },
      remoteChangeIds: marked.map((u) => messageRef(mailbox, opened.uidValidity, u)),
    };
  });
}

async function moveMessage(input: JsonObject, call: DriverCall): Promise<OperationResult> {
  const uid = int(input, "uid");
  const destination = str(input, "destination");
  if (uid === undefined || uid < 1) throw inputError(where(call), "uid", "must be a positive integer");
  if (!destination) throw inputError(where(call), "destination", "is required");
  const mailbox = configMailbox(call);
  if (destination === mailbox)
    throw inputError(where(call), "destination", "is the mailbox the message is in");
  return withImapSession(call, async (client) => {
    const opened = await openMailbox(call, client, mailbox, false);
    if (!(await existing(client, [uid])).has(uid))
      throw new ConnectorError(
        "permanent",
        "MessageNotFound",
        `${where(call)}: no message with uid ${uid} in ${JSON.stringify(mailbox)}`,
      );
    await requireMailbox(call, client, destination);
    const moved = await client.messageMove([uid], destination, { uid: true });
    if (!moved)
      throw new ConnectorError(
        "permanent",
        "ProtocolError",
        `${where(call)}: the server did not move the message`,
      );
    const destinationUid = moved.uidMap?.get(uid);
    return {
      data: { uid, mailbox, destination, ...(destinationUid !== undefined ? { destinationUid } : {}) },
      remoteChangeIds: [
        messageRef(mailbox, opened.uidValidity, uid),
        ...(destinationUid !== undefined && moved.uidValidity !== undefined
          ? [messageRef(destination, moved.uidValidity, destinationUid)]
          : []),
      ],
    };
  });
}

export const imapDriver: Driver = {
  target: (config: JsonObject) => imapTarget(config),
  health,
  operations: { readInbox, listMailboxes, markSeen, moveMessage },
  classify: classifyImap,
};
