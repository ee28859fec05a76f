// readInbox: the newest messages of the configured mailbox that pass the config's filter
// (filter.fromAllowlist: the From address is one of these, exactly; filter.subjectContains:
// the subject contains one of these, case-insensitively; filter.maxAgeDays: received within
// that many days) and the input's (since, unseenOnly), newest first, at most `limit`.
//
// The server's SEARCH narrows the candidates (its FROM and SINCE are substring and
// whole-day matches), and every rule is checked again on the fetched envelope, so a
// look-alike sender such as evil-alerts@example.com.attacker never passes. The mailbox is
// opened read-only (EXAMINE) and bodies are fetched with BODY.PEEK: reading marks nothing
// seen. Each message carries a bounded plain-text excerpt (text/plain, else text/html with
// the markup removed).
import type {
  FetchMessageObject,
  ImapFlow,
  MessageAddressObject,
  MessageStructureObject,
  SearchObject,
} from "imapflow";
import type { JsonObject, JsonValue } from "../api/types.ts";
import { bool, inputError, int, obj, str, strings } from "./config.ts";
import type { DriverCall, OperationResult } from "./driver.ts";
import { where } from "./failures.ts";
import { configMailbox, openMailbox, withImapSession } from "./imapSession.ts";

const DEFAULT_LIMIT = 20;
const MAX_LIMIT = 100;
const DEFAULT_EXCERPT_CHARS = 500;
const MAX_EXCERPT_CHARS = 4000;
/** How many candidates one call looks at, at most, before it stops and says there may be more. */
const MAX_SCANNED = 2000;
const FETCH_BATCH = 50;
/** Above this many allowed senders the server is not asked to match them (one OR term each). */
const MAX_SERVER_FROM_TERMS = 20;
const HEADERS = [
  "message-id",
  "in-reply-to",
  "references",
  "reply-to",
  "list-id",
  "list-unsubscribe",
  "auto-submitted",
  "precedence",
];
const MAX_HEADER_CHARS = 998;
const DAY_MS = 24 * 60 * 60 * 1000;

interface Rules {
  fromAllowlist: Set<string>;
  subjectContains: string[];
  notBefore: Date | undefined;
  unseenOnly: boolean;
}

function rules(input: JsonObject, call: DriverCall): Rules {
  const filter = obj(call.config, "filter") ?? {};
  const maxAgeDays = int(filter, "maxAgeDays");
  const bounds: number[] = [];
  if (maxAgeDays !== undefined) bounds.push(Date.now() - maxAgeDays * DAY_MS);
  const since = str(input, "since");
  if (since !== undefined) {
    const at = Date.parse(since);
    if (Number.isNaN(at)) throw inputError(where(call), "since", "is not a date-time");
    bounds.push(at);
  }
  return {
    fromAllowlist: new Set(strings(filter, "fromAllowlist").map((a) => a.toLowerCase())),
    subjectContains: strings(filter, "subjectContains").map((s) => s.toLowerCase()),
    notBefore: bounds.length > 0 ? new Date(Math.max(...bounds)) : undefined,
    unseenOnly: bool(input, "unseenOnly") === true,
  };
}

function searchQuery(r: Rules): SearchObject {
  const query: SearchObject = { all: true };
  if (r.unseenOnly) query.seen = false;
  // SINCE compares whole days (of the server's time zone): a day early, then the exact check.
  if (r.notBefore) query.since = new Date(r.notBefore.getTime() - DAY_MS);
  const senders = [...r.fromAllowlist];
  if (senders.length === 1) query.from = senders[0];
  else if (senders.length > 1 && senders.length <= MAX_SERVER_FROM_TERMS)
    query.or = senders.map((from) => ({ from }));
  return query;
}

function passes(msg: FetchMessageObject, r: Rules): boolean {
  if (r.unseenOnly && msg.flags?.has("\\Seen")) return false;
  const received = toDate(msg.internalDate);
  if (r.notBefore && (!received || received < r.notBefore)) return false;
  if (r.fromAllowlist.size > 0) {
    const from = msg.envelope?.from ?? [];
    if (!from.some((a) => a.address !== undefined && r.fromAllowlist.has(a.address.toLowerCase())))
      return false;
  }
  if (r.subjectContains.length > 0) {
    const subject = (msg.envelope?.subject ?? "").toLowerCase();
    if (!r.subjectContains.some((s) => subject.includes(s))) return false;
  }
  return true;
}

function toDate(value: Date | string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const d = value instanceof Date ? value : new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

function addresses(list: MessageAddressObject[] | undefined): JsonValue[] {
  return (list ?? []).map((a) => ({ address: a.address ?? "", ...(a.name ? { name: a.name } : {}) }));
}

/** The requested header lines as an object (lower-case names, unfolded, bounded). */
function headerSubset(raw: Buffer | undefined): JsonObject {
  const out: JsonObject = {};
  const text = (raw?.toString("utf8") ?? "").replace(/\r?\n[ \t]+/g, " ");
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (HEADERS.includes(name) && out[name] === undefined)
      out[name] = line
        .slice(colon + 1)
        .trim()
        .slice(0, MAX_HEADER_CHARS);
  }
  return out;
}

/** The part to excerpt: the first inline text/plain, else the first inline text/html. */
function textPart(node: MessageStructureObject | undefined): { part: string; html: boolean } | undefined {
  const found: { part: string; html: boolean }[] = [];
  const walk = (n: MessageStructureObject) => {
    if (n.childNodes) return n.childNodes.forEach(walk);
    if (n.disposition === "attachment") return;
    if (n.type === "text/plain" || n.type === "text/html")
      found.push({ part: n.part ?? "1", html: n.type === "text/html" });
  };
  if (node) walk(node);
  return found.find((f) => !f.html) ?? found[0];
}

function plainText(text: string, html: boolean): string {
  const body = html
    ? text
        .replace(/<(script|style)[\s\S]*?<\/\1\s*>/gi, " ")
        .replace(/<[^>]*>/g, " ")
        .replace(/&nbsp;/g, " ")
        .replace(/&lt;/g, "<")
        .replace(/&gt;/g, ">")
        .replace(/&quot;/g, '"')
        .replace(/&amp;/g, "&")
    : text;
  return body.replace(/\s+/g, " ").trim();
}

async function excerpt(
  client: ImapFlow,
  msg: FetchMessageObject,
  chars: number,
): Promise<{ excerpt: string; excerptTruncated: boolean }> {
  const part = chars > 0 ? textPart(msg.bodyStructure) : undefined;
  if (!part) return { excerpt: "", excerptTruncated: false };
  // UTF-8 takes up to 4 bytes a character; markup takes room too.
  const maxBytes = Math.min(256 * 1024, chars * 4 * (part.html ? 4 : 1) + 1024);
  const download = await client.download(String(msg.uid), part.part, { uid: true, maxBytes });
  if (!download.content) return { excerpt: "", excerptTruncated: false };
  const chunks: Buffer[] = [];
  for await (const chunk of download.content) chunks.push(chunk as Buffer);
  const text = plainText(Buffer.concat(chunks).toString("utf8"), part.html);
  const cut = [...text].slice(0, chars).join("");
  const cutShort = cut.length < text.length || (download.meta.expectedSize ?? 0) > maxBytes;
  return { excerpt: cut, excerptTruncated: cutShort };
}

export async function readInbox(input: JsonObject, call: DriverCall): Promise<OperationResult> {
  const limit = Math.min(int(input, "limit") ?? DEFAULT_LIMIT, MAX_LIMIT);
  const excerptChars = Math.min(int(input, "excerptChars") ?? DEFAULT_EXCERPT_CHARS, MAX_EXCERPT_CHARS);
  if (limit < 1) throw inputError(where(call), "limit", "must be at least 1");
  const r = rules(input, call);
  const mailbox = configMailbox(call);
  return withImapSession(call, async (client) => {
    const opened = await openMailbox(call, client, mailbox, true);
    const candidates = ((await client.search(searchQuery(r), { uid: true })) || []).sort((a, b) => b - a);
    const chosen: FetchMessageObject[] = [];
    let scanned = 0;
    let passedBeyondLimit = false;
    while (!passedBeyondLimit && scanned < candidates.length && scanned < MAX_SCANNED) {
      const batch = candidates.slice(scanned, scanned + FETCH_BATCH);
      scanned += batch.length;
      const fetched = await client.fetchAll(
        batch,
        {
          uid: true,
          envelope: true,
          internalDate: true,
          size: true,
          flags: true,
          bodyStructure: true,
          headers: HEADERS,
        },
        { uid: true },
      );
      fetched.sort((a, b) => b.uid - a.uid);
      for (const msg of fetched.filter((m) => passes(m, r))) {
        if (chosen.length === limit) {
          passedBeyondLimit = true;
          break;
        }
        chosen.push(msg);
      }
    }
    // Downloads run one after another once the fetch is over: imapflow runs one command at a time.
    const messages: JsonValue[] = [];
    for (const msg of chosen) {
      const env = msg.envelope ?? {};
      messages.push({
        uid: msg.uid,
        messageId: env.messageId ?? "",
        subject: env.subject ?? "",
        from: addresses(env.from),
        to: addresses(env.to),
        cc: addresses(env.cc),
        date: (toDate(env.date) ?? toDate(msg.internalDate))?.toISOString() ?? "",
        receivedAt: toDate(msg.internalDate)?.toISOString() ?? "",
        size: msg.size ?? 0,
        seen: msg.flags?.has("\\Seen") ?? false,
        headers: headerSubset(msg.headers),
        ...(await excerpt(client, msg, excerptChars)),
      });
    }
    return {
      data: {
        mailbox,
        uidValidity: String(opened.uidValidity),
        messages,
        scanned,
        moreAvailable: passedBeyondLimit || scanned < candidates.length,
      },
    };
  });
}
