// A real Dovecot (Debian's dovecot-imapd and dovecot-submissiond) for the probe tests:
// IMAP with STARTTLS, IMAPS, and SMTP submission with STARTTLS and implicit TLS, on random
// free loopback ports, run by the harness from its own config in a temp directory (no
// /etc/dovecot involved): passwd-file users, a maildir with the configured mailbox, a
// throwaway CA and server certificate, base_dir/state_dir/log inside the temp dir.
//
// Installs the packages with apt-get when they are missing (root only); never skips: if
// Dovecot cannot be had, startDovecot throws saying why.
//
// Submission needs a relay MTA for the mail it accepts. By default the relay is the
// submission listener itself: Dovecot connects and says EHLO without logging in (so there is
// no loop), every session is healthy, and MAIL FROM would be refused, which is all the health
// checks need. To send mail, pass `relay` (a real MTA, such as test/support/mailRelay.ts) and
// `lmtp: true`: Dovecot's LMTP service (dovecot-lmtpd) then delivers into the user's maildir,
// where IMAP reads it. LMTP recipients are `<user>@<any domain>` (the domain is dropped).
import { spawnSync } from "node:child_process";
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { accepts, freePorts } from "./net.ts";
import { createTestCa } from "./pki.ts";
import { startProcess, type TestProcess } from "./process.ts";
import { eventually } from "./wait.ts";

export interface TestDovecot {
  host: "127.0.0.1";
  /** IMAP, STARTTLS offered (and required before LOGIN). */
  imapPort: number;
  /** IMAP over implicit TLS. */
  imapsPort: number;
  /** Submission (RFC 6409), STARTTLS required before AUTH. */
  submissionPort: number;
  /** Submission over implicit TLS (port 465 style). */
  submissionsPort: number;
  /** PEM of the CA that signed the server certificate (SANs 127.0.0.1 and localhost). */
  caPem: string;
  user: string;
  password: string;
  /** A mailbox that exists besides INBOX. */
  mailbox: string;
  /** LMTP (RFC 2033) delivery into the user's mailboxes, when started with `lmtp: true`. */
  lmtpPort: number | undefined;
  dir: string;
  running(): boolean;
  /** Stops the server (the temp dir and ports stay reserved for start()). */
  stop(): Promise<void>;
  /** Starts it again on the same ports with the same users and certificates. */
  start(): Promise<void>;
  /** Stops the server and removes the temp dir. Safe to call more than once. */
  destroy(): Promise<void>;
  log(): Promise<string>;
}

const PACKAGES = ["dovecot-imapd", "dovecot-submissiond", "dovecot-lmtpd"];

function which(bin: string): string | undefined {
  for (const dir of [...(process.env["PATH"] ?? "").split(":"), "/usr/sbin", "/usr/bin", "/sbin"]) {
    if (dir !== "" && existsSync(join(dir, bin))) return join(dir, bin);
  }
  return undefined;
}

function libexec(name: string): string | undefined {
  for (const dir of ["/usr/lib/dovecot", "/usr/libexec/dovecot"])
    if (existsSync(join(dir, name))) return join(dir, name);
  return undefined;
}

/** The dovecot binary, installing Debian's packages when dovecot (or its imap/submission/lmtp parts) is missing. */
export function ensureDovecot(): string {
  const have = () =>
    which("dovecot") !== undefined &&
    libexec("imap") !== undefined &&
    libexec("submission") !== undefined &&
    libexec("lmtp") !== undefined;
  if (!have()) {
    if (userInfo().uid !== 0)
      throw new Error(
        `Dovecot is not installed and the tests are not running as root, so they cannot install it. ` +
          `Run: apt-get install -y --no-install-recommends ${PACKAGES.join(" ")}`,
      );
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    // Test files run side by side: another may be installing the same packages right now.
    const wait = ["-o", "DPkg::Lock::Timeout=600"];
    let r = spawnSync("apt-get", [...wait, "install", "-y", "--no-install-recommends", ...PACKAGES], {
      env,
      encoding: "utf8",
    });
    if (r.status !== 0) {
      // The package lists may be missing or stale: update once and retry.
      spawnSync("apt-get", [...wait, "update"], { env, encoding: "utf8" });
      r = spawnSync("apt-get", [...wait, "install", "-y", "--no-install-recommends", ...PACKAGES], {
        env,
        encoding: "utf8",
      });
    }
    if (r.status !== 0 || !have())
      throw new Error(
        `installing ${PACKAGES.join(" ")} with apt-get failed (exit ${String(r.status)}${r.error ? `, ${r.error.message}` : ""}):\n` +
          `${(r.stderr ?? "").split("\n").slice(-15).join("\n")}`,
      );
  }
  return which("dovecot") as string;
}

function ensureSystemUser(name: string): void {
  if (spawnSync("id", ["-u", name]).status === 0) return;
  const r = spawnSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], {
    encoding: "utf8",
  });
  // Another test file may have added it meanwhile.
  if (r.status !== 0 && spawnSync("id", ["-u", name]).status !== 0)
    throw new Error(`Dovecot needs the system user ${name}; useradd failed: ${r.stderr}`);
}

function idOf(flag: "-u" | "-g", name: string): number {
  const r = spawnSync("id", [flag, name], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`no such user: ${name}`);
  return Number(r.stdout.trim());
}

export async function startDovecot(
  opts: {
    user?: string;
    password?: string;
    mailbox?: string;
    /** The MTA submission relays accepted mail to (default: itself, which refuses mail). */
    relay?: { port: number };
    lmtp?: boolean;
  } = {},
): Promise<TestDovecot> {
  const dovecot = ensureDovecot();
  const asRoot = userInfo().uid === 0;
  let internalUser: string, loginUser: string, mailUser: string, mailGroup: string;
  if (asRoot) {
    ensureSystemUser("dovecot");
    ensureSystemUser("dovenull");
    internalUser = "dovecot";
    loginUser = "dovenull";
    // Mail is owned by an unprivileged user that is neither of Dovecot's own.
    mailUser = "nobody";
    mailGroup = spawnSync("getent", ["group", "nogroup"]).status === 0 ? "nogroup" : "nobody";
  } else {
    const me = userInfo().username;
    internalUser = loginUser = mailUser = me;
    mailGroup = spawnSync("id", ["-gn"], { encoding: "utf8" }).stdout.trim();
  }
  const mailUid = idOf("-u", mailUser);
  const mailGid = asRoot
    ? Number(spawnSync("getent", ["group", mailGroup], { encoding: "utf8" }).stdout.split(":")[2])
    : userInfo().gid;

  const user = opts.user ?? "probe-user";
  const password = opts.password ?? `pw-${randomBytes(9).toString("base64url")}`;
  const mailbox = opts.mailbox ?? "Alerts";

  const dir = await mkdtemp(join(tmpdir(), "cc-dovecot-"));
  await chmod(dir, 0o755);
  const ca = await createTestCa("connector-controller-dovecot-test-ca");
  const cert = await ca.issueServerCert({ dns: ["localhost"], ips: ["127.0.0.1"] });
  await writeFile(join(dir, "cert.pem"), cert.certPem);
  await writeFile(join(dir, "key.pem"), cert.keyPem, { mode: 0o600 });
  await writeFile(join(dir, "ca.pem"), ca.caPem);
  await writeFile(join(dir, "passwd"), `${user}:{PLAIN}${password}::::::\n`, { mode: 0o644 });
  for (const d of ["run", "state", "mail"]) await mkdir(join(dir, d));
  if (asRoot) await chown(join(dir, "mail"), mailUid, mailGid);

  const ports = await freePorts(opts.lmtp ? 5 : 4);
  const [imapPort, imapsPort, submissionPort, submissionsPort] = ports as [number, number, number, number];
  const lmtpPort = ports[4];
  const confPath = join(dir, "dovecot.conf");
  const logPath = join(dir, "dovecot.log");
  await writeFile(
    confPath,
    `# generated by test/support/dovecot.ts
instance_name = cc-test-${randomBytes(4).toString("hex")}
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${logPath}
protocols = imap submission${lmtpPort ? " lmtp" : ""}
listen = 127.0.0.1
hostname = localhost
default_internal_user = ${internalUser}
default_internal_group = ${asRoot ? internalUser : mailGroup}
default_login_user = ${loginUser}
first_valid_uid = ${Math.min(mailUid, 500)}
first_valid_gid = ${Math.min(mailGid, 1)}
ssl = required
ssl_cert = <${dir}/cert.pem
ssl_key = <${dir}/key.pem
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/passwd
}
userdb {
  driver = static
  args = uid=${mailUid} gid=${mailGid} home=${dir}/mail/%u
}
mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
  separator = /
  mailbox ${JSON.stringify(mailbox)} {
    auto = create
  }
}
service imap-login {
  inet_listener imap {
    port = ${imapPort}
  }
  inet_listener imaps {
    port = ${imapsPort}
    ssl = yes
  }
}
service submission-login {
  inet_listener submission {
    port = ${submissionPort}
  }
  inet_listener submissions {
    port = ${submissionsPort}
    ssl = yes
  }
}
submission_relay_host = 127.0.0.1
submission_relay_port = ${opts.relay?.port ?? submissionPort}
${
  lmtpPort
    ? `service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${lmtpPort}
  }
}
protocol lmtp {
  auth_username_format = %Ln
}
`
    : ""
}# No growing auth penalty per client IP (every test client is 127.0.0.1): Dovecot disables
# it when auth cannot reach this socket. auth_failure_delay (2 s) still applies.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
`,
  );
  // Reject the config early with Dovecot's own words.
  const check = spawnSync(dovecot, ["-n", "-c", confPath], { encoding: "utf8" });
  if (check.status !== 0)
    throw new Error(`dovecot rejected its generated config ${confPath}: ${check.stderr}`);

  let master: TestProcess | undefined;
  const running = (): boolean => master?.running === true;
  const logTail = async (): Promise<string> =>
    (await readFile(logPath, "utf8").catch(() => "")).split("\n").slice(-20).join("\n");
  const allPorts = async (open: boolean): Promise<boolean> =>
    (await Promise.all(ports.map((p) => accepts(p)))).every((a) => a === open);

  const start = async (): Promise<void> => {
    if (running()) return;
    // SIGTERM when the tests exit: the master takes its login and auth processes down with it.
    const p = startProcess("dovecot", dovecot, ["-F", "-c", confPath], { exitSignal: "SIGTERM" });
    master = p;
    try {
      await eventually(() => allPorts(true), `dovecot to listen on ${ports.join(", ")}`, {
        timeoutMs: 30_000,
        giveUpIf: () => p.exitInfo,
      });
    } catch (err) {
      throw new Error(`${(err as Error).message}: ${p.tail()}\n${await logTail()}`, { cause: err });
    }
  };

  const stop = async (): Promise<void> => {
    if (!running()) return;
    await master!.stop();
    // The master takes its children down with it; wait until nothing answers any more.
    await eventually(() => allPorts(false), `dovecot's ports ${ports.join(", ")} to close`, {
      timeoutMs: 10_000,
      intervalMs: 50,
    });
  };

  let destroyed = false;
  const server: TestDovecot = {
    host: "127.0.0.1",
    imapPort,
    imapsPort,
    submissionPort,
    submissionsPort,
    caPem: ca.caPem,
    user,
    password,
    mailbox,
    lmtpPort,
    dir,
    running,
    stop,
    start,
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
    log: async () => readFile(logPath, "utf8").catch(() => ""),
  };
  try {
    await start();
  } catch (err) {
    await server.destroy().catch(() => undefined);
    throw err;
  }
  return server;
}
