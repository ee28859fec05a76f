// The site MTA behind Dovecot's submission service in the mail tests: a real SMTP server
// (npm smtp-server) on a loopback port that accepts mail for its local domains and delivers
// it into Dovecot over LMTP (nodemailer's LMTP client), as Postfix with
// `virtual_transport = lmtp:` would. Recipients in other domains are refused at RCPT
// ("550 5.7.1 relaying denied"), so a sender sees them rejected. Every accepted transaction is
// recorded (envelope and raw message) for the tests to inspect.
import SMTPConnection from "nodemailer/lib/smtp-connection";
import { SMTPServer } from "smtp-server";
import { listen } from "./net.ts";

export interface RelayedMail {
  from: string;
  to: string[];
  raw: Buffer;
}

export interface TestMailRelay {
  port: number;
  relayed: RelayedMail[];
  /** Where accepted mail is delivered (Dovecot's LMTP port); set once Dovecot runs. */
  deliverTo(lmtpPort: number): void;
  stop(): Promise<void>;
}

function lmtpDeliver(port: number, mail: RelayedMail): Promise<void> {
  const conn = new SMTPConnection({ host: "127.0.0.1", port, lmtp: true, ignoreTLS: true, logger: false });
  return new Promise<void>((resolve, reject) => {
    conn.once("error", reject);
    conn.connect(() =>
      conn.send({ from: mail.from, to: mail.to }, mail.raw, (err, info) => {
        conn.quit();
        if (err) return reject(err);
        if (info.rejected.length > 0)
          return reject(new Error(`LMTP refused ${info.rejected.join(", ")}: ${info.response}`));
        resolve();
      }),
    );
  });
}

export async function startMailRelay(opts: { localDomains: string[] }): Promise<TestMailRelay> {
  let lmtpPort: number | undefined;
  const relayed: RelayedMail[] = [];
  const local = new Set(opts.localDomains.map((d) => d.toLowerCase()));
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["AUTH", "STARTTLS"],
    logger: false,
    onRcptTo(address, _session, callback) {
      const domain = address.address.slice(address.address.lastIndexOf("@") + 1).toLowerCase();
      if (local.has(domain)) return callback();
      callback(Object.assign(new Error("5.7.1 relaying denied"), { responseCode: 550 }));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        const mail: RelayedMail = {
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks),
        };
        if (lmtpPort === undefined)
          return callback(Object.assign(new Error("4.3.0 no delivery target yet"), { responseCode: 451 }));
        lmtpDeliver(lmtpPort, mail).then(
          () => {
            relayed.push(mail);
            callback();
          },
          (err: Error) => callback(Object.assign(new Error(`4.3.0 ${err.message}`), { responseCode: 451 })),
        );
      });
    },
  });
  server.on("error", () => undefined);
  const { port } = await listen(server.server);
  return {
    port,
    relayed,
    deliverTo: (p) => {
      lmtpPort = p;
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
