// The imap and smtp operations through the runner (drivers/run.ts), against real servers:
// Dovecot (IMAP, submission, LMTP delivery) and a real SMTP server as the site MTA
// (smtp-server, test/support/mailRelay.ts). sendMail submits to Dovecot with AUTH, Dovecot
// relays to the MTA, the MTA delivers over LMTP into the mailbox that readInbox reads.
// Fixtures with chosen senders, dates and flags are put in place by IMAP APPEND.
import { ImapFlow } from "imapflow";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAjv } from "../../controller/src/api/ajv.ts";
import { ConnectorError } from "../../controller/src/api/errors.ts";
import type { ProbeInput } from "../../controller/src/api/model.ts";
import type { ConnectorType, JsonObject } from "../../controller/src/api/types.ts";
import { parseYamlFile } from "../../controller/src/catalog/fileCatalog.ts";
import type { OperationResult } from "../../controller/src/drivers/driver.ts";
import { runOperation } from "../../controller/src/drivers/run.ts";
import { REPO_ROOT } from "../support/controlPlane.ts";
import { startDovecot, type TestDovecot } from "../support/dovecot.ts";
import { startMailRelay, type TestMailRelay } from "../support/mailRelay.ts";
import { recordingLogger } from "../support/memory.ts";
import { startSilentServer } from "../support/probeServers.ts";

const loadType = (name: string) =>
  parseYamlFile(join(REPO_ROOT, "examples", "types", `${name}.yaml`))[0]?.doc as ConnectorType;
const TYPES = { imap: loadType("imap"), smtp: loadType("smtp") };
const VERSION = { imap: 1, smtp: 2 };

const { log, lines: logLines } = recordingLogger();

/** Every result and error of this file, for the secret scan. */
const seen: string[] = [];
const ajv = createAjv();

type Kind = keyof typeof TYPES;

/** Runs an operation; its input must pass the catalog's inputSchema and its data the outputSchema. */
async function op(
  kind: Kind,
  name: string,
  input: JsonObject,
  connector: ProbeInput,
): Promise<OperationResult> {
  const declared = TYPES[kind].spec.versions
    .find((v) => v.version === VERSION[kind])!
    .operations.find((o) => o.name === name)!;
  if (declared.inputSchema) expect(ajv.validate(declared.inputSchema, input), ajv.errorsText()).toBe(true);
  try {
    const result = await runOperation(name, input, connector, log);
    seen.push(JSON.stringify(result));
    if (declared.outputSchema)
      expect(ajv.validate(declared.outputSchema, result.data), ajv.errorsText()).toBe(true);
    return result;
  } catch (err) {
    seen.push(JSON.stringify({ ...(err as object), message: (err as Error).message }));
    throw err;
  }
}

async function failure(p: Promise<unknown>): Promise<ConnectorError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ConnectorError) return err;
    throw err;
  }
  throw new Error("expected the operation to fail");
}

let relay: TestMailRelay;
let dovecot: TestDovecot;
const FROM = "alerts-bot@example.test";

beforeAll(async () => {
  relay = await startMailRelay({ localDomains: ["inbox.example.test", "example.test"] });
  dovecot = await startDovecot({ relay: { port: relay.port }, lmtp: true });
  relay.deliverTo(dovecot.lmtpPort!);
});

afterAll(async () => {
  await dovecot?.destroy();
  await relay?.stop();
});

const creds = () => ({ username: dovecot.user, password: dovecot.password });

function imap(config: JsonObject = {}, credentials = creds()): ProbeInput {
  return {
    type: TYPES.imap,
    typeVersion: VERSION.imap,
    config: { host: "127.0.0.1", port: dovecot.imapsPort, tls: true, caBundle: dovecot.caPem, ...config },
    credentials,
    timeoutMs: 20_000,
  };
}

function smtp(config: JsonObject = {}, credentials = creds()): ProbeInput {
  return {
    type: TYPES.smtp,
    typeVersion: VERSION.smtp,
    config: {
      host: "127.0.0.1",
      port: dovecot.submissionPort,
      security: "starttls",
      from: FROM,
      caBundle: dovecot.caPem,
      ...config,
    },
    credentials,
    timeoutMs: 20_000,
  };
}

/** A test's own IMAP client, to put fixtures in place (never the driver under test). */
async function withAdmin<T>(fn: (client: ImapFlow) => Promise<T>): Promise<T> {
  const client = new ImapFlow({
    host: "127.0.0.1",
    port: dovecot.imapsPort,
    secure: true,
    auth: { user: dovecot.user, pass: dovecot.password },
    tls: { ca: dovecot.caPem },
    logger: false,
  });
  client.on("error", () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.logout().catch(() => client.close());
  }
}

function message(from: string, subject: string, body: string, extraHeaders: string[] = []): string {
  const headers = [
    `From: ${from}`,
    `To: ${dovecot.user}@inbox.example.test`,
    `Subject: ${subject}`,
    `Message-ID: <${Math.random().toString(36).slice(2)}@fixtures.test>`,
    "MIME-Version: 1.0",
    ...extraHeaders,
  ];
  return `${headers.join("\r\n")}\r\n\r\n${body}`;
}

const DAY = 24 * 60 * 60 * 1000;
const LONG_TEXT = "Disk /var is 97% full on host db-7. ".repeat(40);

describe("smtp operations against Dovecot submission and a real MTA", () => {
  it("verifyConnection: STARTTLS and AUTH => verified", async () => {
    const r = await op("smtp", "verifyConnection", {}, smtp());
    expect(r.data).toEqual({ verified: true, tls: true, authenticated: true });
  });

  it("sendMail delivers (to, cc, bcc), reports the rejected recipient, and imap reads it back", async () => {
    const token = `rt-${Date.now()}`;
    const r = await op(
      "smtp",
      "sendMail",
      {
        to: [`${dovecot.user}@inbox.example.test`],
        cc: ["nobody@elsewhere.invalid"],
        bcc: [`${dovecot.user}@example.test`],
        subject: `Round trip ${token}`,
        text: `Hello from the smtp driver, ${token}.`,
      },
      smtp(),
    );
    expect(r.data).toMatchObject({
      accepted: [`${dovecot.user}@inbox.example.test`, `${dovecot.user}@example.test`],
      rejected: ["nobody@elsewhere.invalid"],
    });
    const messageId = (r.data as { messageId: string }).messageId;
    expect(messageId).toMatch(/^<.+@example\.test>$/);
    expect(r.providerStatusCode).toBe(250);
    expect(r.remoteChangeIds).toEqual([messageId]);
    expect(r.warnings).toEqual(["1 recipient(s) rejected by the server"]);

    // The MTA received the envelope with the Bcc recipient, and no Bcc header.
    const relayed = relay.relayed.find((m) => m.raw.toString().includes(token))!;
    expect(relayed.from).toBe(FROM);
    expect(relayed.to).toEqual([`${dovecot.user}@inbox.example.test`, `${dovecot.user}@example.test`]);
    expect(relayed.raw.toString()).not.toMatch(/^bcc:/im);

    const inbox = await op("imap", "readInbox", { limit: 10 }, imap({ mailbox: "INBOX" }));
    const got = (inbox.data as { messages: { subject: string; messageId: string; excerpt: string }[] })
      .messages;
    const mine = got.filter((m) => m.subject === `Round trip ${token}`);
    expect(mine.length).toBeGreaterThanOrEqual(1);
    expect(mine[0]).toMatchObject({ messageId, excerpt: `Hello from the smtp driver, ${token}.` });
  });

  it("a sender other than the config's from is refused, and no mail leaves", async () => {
    const relayedBefore = relay.relayed.length;
    const e = await failure(
      op(
        "smtp",
        "sendMail",
        { from: "ceo@example.test", to: ["a@inbox.example.test"], subject: "s", text: "t" },
        smtp(),
      ),
    );
    expect(e).toMatchObject({ errorClass: "policy_denied", reason: "SenderNotAllowed" });
    expect(e.problems).toEqual([{ path: "input.from", message: "must be spec.config.from" }]);
    expect(relay.relayed).toHaveLength(relayedBefore);
    // The same address in another case is the same sender.
    const ok = await op(
      "smtp",
      "sendMail",
      { from: FROM.toUpperCase(), to: [`${dovecot.user}@inbox.example.test`], subject: "case", text: "t" },
      smtp(),
    );
    expect(ok.data).toMatchObject({ rejected: [] });
  });

  it("recipients outside allowedRecipientDomains, or more than maxRecipients, are refused", async () => {
    const input = {
      to: [`${dovecot.user}@inbox.example.test`],
      bcc: ["x@example.test"],
      subject: "s",
      text: "t",
    };
    const domain = await failure(
      op("smtp", "sendMail", input, smtp({ allowedRecipientDomains: ["inbox.example.test"] })),
    );
    expect(domain).toMatchObject({ errorClass: "policy_denied", reason: "RecipientNotAllowed" });
    expect(domain.problems[0]?.path).toBe("input.bcc[0]");
    const many = await failure(op("smtp", "sendMail", input, smtp({ maxRecipients: 1 })));
    expect(many).toMatchObject({ errorClass: "validation_error", reason: "InvalidInput" });
  });

  it("every recipient refused by the MTA => permanent EnvelopeRejected with the reply code", async () => {
    const e = await failure(
      op("smtp", "sendMail", { to: ["a@elsewhere.invalid"], subject: "s", text: "t" }, smtp()),
    );
    expect(e).toMatchObject({ errorClass: "permanent", reason: "EnvelopeRejected", providerStatusCode: 550 });
  });

  it("a wrong password => AuthenticationFailed, for sendMail and verifyConnection alike", async () => {
    const bad = smtp({}, { username: dovecot.user, password: "wrong-smtp-op-password" });
    for (const [name, input] of [
      ["verifyConnection", {}],
      ["sendMail", { to: [`${dovecot.user}@inbox.example.test`], subject: "s", text: "t" }],
    ] as [string, JsonObject][]) {
      const e = await failure(op("smtp", name, input, bad));
      expect(e, name).toMatchObject({ errorClass: "permanent", reason: "AuthenticationFailed" });
    }
  });

  it("relayMail is forbidden and never runs", async () => {
    const e = await failure(runOperation("relayMail", {}, smtp(), log));
    expect(e).toMatchObject({ errorClass: "policy_denied", reason: "OperationForbidden" });
  });
});

describe("imap operations against Dovecot", () => {
  const box = "Fixtures";
  const uids: Record<string, number> = {};

  beforeAll(async () => {
    const now = Date.now();
    await withAdmin(async (client) => {
      await client.mailboxCreate(box);
      const put = async (key: string, raw: string, ageMs: number, flags: string[] = []) => {
        const r = await client.append(box, raw, flags, new Date(now - ageMs));
        if (!r || r.uid === undefined) throw new Error("APPEND returned no UID");
        uids[key] = r.uid;
      };
      await put("old", message("Alerts@Example.com", "[alert] cpu was high", "old news"), 40 * DAY);
      await put("digest", message("alerts@example.com", "weekly digest", "digest"), 2 * DAY, ["\\Seen"]);
      await put("disk", message("alerts@example.com", "[ALERT] disk full", LONG_TEXT), DAY);
      await put("lookalike", message("evil-alerts@example.com.attacker.test", "[ALERT] click", "x"), DAY);
      await put("stranger", message("someone@else.test", "[ALERT] not from the allowlist", "x"), 3600_000);
      await put(
        "html",
        message(
          '"Alerts" <alerts@example.com>',
          "[Alert] =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=",
          "<html><body><p>Gr=C3=BC=C3=9Fe &amp; <b>welcome</b></p><script>x()</script></body></html>",
          [
            "Content-Type: text/html; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable",
            "List-Unsubscribe: <https://lists.example.com/u?token=per-recipient-secret>",
          ],
        ),
        600_000,
      );
    });
  });

  const filtered = (extra: JsonObject = {}) =>
    imap({
      mailbox: box,
      filter: { fromAllowlist: ["alerts@example.com"], subjectContains: ["[alert]"], maxAgeDays: 7 },
      ...extra,
    });
  type Msg = { uid: number; subject: string; seen: boolean; excerpt: string; excerptTruncated: boolean } & {
    headers: Record<string, string>;
    from: { address: string; name?: string }[];
  };
  const read = async (connector: ProbeInput, input: JsonObject = {}) => {
    const r = await op("imap", "readInbox", input, connector);
    return r.data as { messages: Msg[]; moreAvailable: boolean; uidValidity: string; mailbox: string };
  };

  it("readInbox without a filter: every message, newest first, bounded by limit", async () => {
    const all = await read(imap({ mailbox: box }));
    expect(all.messages.map((m) => m.uid)).toEqual(
      ["html", "stranger", "lookalike", "disk", "digest", "old"].map((k) => uids[k]),
    );
    expect(all.moreAvailable).toBe(false);
    const two = await read(imap({ mailbox: box }), { limit: 2 });
    expect(two.messages.map((m) => m.uid)).toEqual([uids["html"], uids["stranger"]]);
    expect(two.moreAvailable).toBe(true);
  });

  it("readInbox honours fromAllowlist (exact address), subjectContains and maxAgeDays", async () => {
    const r = await read(filtered());
    expect(r.messages.map((m) => m.uid)).toEqual([uids["html"], uids["disk"]]);
    // Without maxAgeDays the old message from Alerts@Example.com (any case) passes too.
    const noAge = await read(
      imap({ mailbox: box, filter: { fromAllowlist: ["alerts@example.com"], subjectContains: ["[alert]"] } }),
    );
    expect(noAge.messages.map((m) => m.uid)).toEqual([uids["html"], uids["disk"], uids["old"]]);
  });

  it("readInbox honours since and unseenOnly from the input", async () => {
    const recent = await read(imap({ mailbox: box }), {
      since: new Date(Date.now() - 1.5 * DAY).toISOString(),
    });
    expect(recent.messages.map((m) => m.uid)).toEqual(
      ["html", "stranger", "lookalike", "disk"].map((k) => uids[k]),
    );
    const unseen = await read(imap({ mailbox: box, filter: { fromAllowlist: ["alerts@example.com"] } }), {
      unseenOnly: true,
    });
    expect(unseen.messages.map((m) => m.uid)).not.toContain(uids["digest"]);
    expect(unseen.messages.map((m) => m.uid)).toContain(uids["disk"]);
  });

  it("each message carries a bounded plain-text excerpt, decoded headers and the header subset", async () => {
    const r = await read(filtered(), { excerptChars: 100 });
    const disk = r.messages.find((m) => m.uid === uids["disk"])!;
    expect(disk.excerpt).toHaveLength(100);
    expect(disk.excerptTruncated).toBe(true);
    expect(LONG_TEXT.startsWith(disk.excerpt)).toBe(true);
    const html = r.messages.find((m) => m.uid === uids["html"])!;
    expect(html).toMatchObject({
      subject: "[Alert] Grüße",
      excerpt: "Grüße & welcome",
      excerptTruncated: false,
      from: [{ address: "alerts@example.com", name: "Alerts" }],
    });
    // Present in the driver's result; the catalog's redact rule removes it before it leaves the gateway.
    expect(html.headers["list-unsubscribe"]).toContain("lists.example.com");
    const declared = TYPES.imap.spec.versions[0]!.operations.find((o) => o.name === "readInbox")!;
    expect(declared.redact).toEqual(["/messages/*/headers/list-unsubscribe"]);
  });

  it("reading marks nothing seen; markSeen does, and names the uids it did not find", async () => {
    await read(imap({ mailbox: box }));
    const before = await read(imap({ mailbox: box }), { unseenOnly: true });
    expect(before.messages.map((m) => m.uid)).toContain(uids["disk"]);
    const r = await op("imap", "markSeen", { uids: [uids["disk"]!, 99_999] }, imap({ mailbox: box }));
    expect(r.data).toEqual({ mailbox: box, marked: [uids["disk"]], notFound: [99_999] });
    expect(r.remoteChangeIds).toEqual([`${box};UIDVALIDITY=${before.uidValidity}/;UID=${uids["disk"]}`]);
    const after = await read(imap({ mailbox: box }), { unseenOnly: true });
    expect(after.messages.map((m) => m.uid)).not.toContain(uids["disk"]);
  });

  it("listMailboxes lists every mailbox, with counts when asked", async () => {
    const r = await op("imap", "listMailboxes", { statusCounts: true }, imap());
    const boxes = (r.data as { mailboxes: { path: string; messages?: number; unseen?: number }[] }).mailboxes;
    expect(boxes.map((b) => b.path)).toEqual(expect.arrayContaining(["INBOX", box, dovecot.mailbox]));
    expect(boxes.find((b) => b.path === box)).toMatchObject({ messages: 6, unseen: 4 });
  });

  it("moveMessage moves a uid to another mailbox; unknown uids and mailboxes are permanent", async () => {
    const r = await op(
      "imap",
      "moveMessage",
      { uid: uids["stranger"]!, destination: dovecot.mailbox },
      imap({ mailbox: box }),
    );
    const data = r.data as { destinationUid: number };
    expect(r.data).toMatchObject({ uid: uids["stranger"], mailbox: box, destination: dovecot.mailbox });
    expect(data.destinationUid).toBeGreaterThan(0);
    expect((await read(imap({ mailbox: box }))).messages.map((m) => m.uid)).not.toContain(uids["stranger"]);
    const there = await read(imap({ mailbox: dovecot.mailbox }));
    expect(there.messages.map((m) => m.uid)).toContain(data.destinationUid);

    const gone = await failure(
      op(
        "imap",
        "moveMessage",
        { uid: uids["stranger"]!, destination: dovecot.mailbox },
        imap({ mailbox: box }),
      ),
    );
    expect(gone).toMatchObject({ errorClass: "permanent", reason: "MessageNotFound" });
    const nowhere = await failure(
      op("imap", "moveMessage", { uid: uids["old"]!, destination: "No/Such/Box" }, imap({ mailbox: box })),
    );
    expect(nowhere).toMatchObject({ errorClass: "permanent", reason: "MailboxNotFound" });
  });

  it("deleteMailbox is forbidden and never runs: the mailbox is still there", async () => {
    const e = await failure(runOperation("deleteMailbox", { mailbox: box }, imap({ mailbox: box }), log));
    expect(e).toMatchObject({ errorClass: "policy_denied", reason: "OperationForbidden" });
    const list = await withAdmin((client) => client.list());
    expect(list.map((m) => m.path)).toContain(box);
  });

  it("a wrong password => AuthenticationFailed for every operation", async () => {
    const bad = imap({ mailbox: box }, { username: dovecot.user, password: "wrong-imap-op-password" });
    for (const [name, input] of [
      ["readInbox", {}],
      ["listMailboxes", {}],
      ["markSeen", { uids: [1] }],
      ["moveMessage", { uid: 1, destination: "INBOX" }],
    ] as [string, JsonObject][]) {
      const e = await failure(op("imap", name, input, bad));
      expect(e, name).toMatchObject({ errorClass: "permanent", reason: "AuthenticationFailed" });
    }
  });

  it("the egress allowlist holds for operations", async () => {
    const e = await failure(op("imap", "listMailboxes", {}, imap({ host: "localhost.evil.test" })));
    expect(e).toMatchObject({ errorClass: "policy_denied", reason: "EgressDenied" });
  });
});

describe("operations run under the runner's deadline and the caller's signal", () => {
  it("a server that never answers => Timeout within timeoutMs, Aborted on the caller's signal; sockets closed", async () => {
    const silent = await startSilentServer();
    try {
      const readInbox = (extra: Partial<ProbeInput>) =>
        failure(
          runOperation("readInbox", {}, { ...imap({ port: silent.port }), timeoutMs: 600, ...extra }, log),
        );
      const sendMail = (extra: Partial<ProbeInput>) =>
        failure(
          runOperation(
            "sendMail",
            { to: [`${dovecot.user}@inbox.example.test`], subject: "s", text: "t" },
            { ...smtp({ port: silent.port }), timeoutMs: 600, ...extra },
            log,
          ),
        );
      for (const run of [readInbox, sendMail]) {
        const started = performance.now();
        expect(await run({})).toMatchObject({ errorClass: "transient", reason: "Timeout" });
        expect(performance.now() - started).toBeLessThan(600 + 1000);
        const controller = new AbortController();
        setTimeout(() => controller.abort(), 100);
        expect(await run({ timeoutMs: 10_000, signal: controller.signal })).toMatchObject({
          errorClass: "transient",
          reason: "Aborted",
        });
      }
      // Each Timeout run connected; an abort may land before its run's connection does.
      expect(silent.connections()).toBeGreaterThanOrEqual(2);
      expect(silent.connections()).toBeLessThanOrEqual(4);
      await silent.waitForNoOpenSockets(2000);
    } finally {
      await silent.stop();
    }
  });
});

describe("no credential ever appears in a result, an error or a log line", () => {
  it("a credential inside a message is scrubbed from the result", async () => {
    await withAdmin((client) =>
      client.append(
        dovecot.mailbox,
        message("alerts@example.com", `password ${dovecot.password}`, `the password is ${dovecot.password}`),
      ),
    );
    const r = await op("imap", "readInbox", { limit: 1 }, imap({ mailbox: dovecot.mailbox }));
    const [msg] = (r.data as { messages: { subject: string; excerpt: string }[] }).messages;
    expect(msg).toMatchObject({ subject: "password [REDACTED]", excerpt: "the password is [REDACTED]" });
  });

  it("scans everything this file produced", () => {
    expect(seen.length).toBeGreaterThan(25);
    for (const secret of [dovecot.password, "wrong-smtp-op-password", "wrong-imap-op-password"]) {
      for (const text of [...seen, ...logLines]) expect(text.includes(secret), text).toBe(false);
    }
  });
});
