// A self-signed serving certificate (ECDSA P-256, SHA-256), made in memory when the secure
// metrics server has no certificate directory, as controller-runtime does. node:crypto
// signs but does not build certificates, so the X.509 structure is DER-encoded here: a
// version 3 certificate with a subject alternative name and the serverAuth key usage.
import { X509Certificate, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { isIP } from "node:net";

function der(tag: number, body: Buffer): Buffer {
  const n = body.length;
  let len: Buffer;
  if (n < 0x80) len = Buffer.from([n]);
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    len = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), len, body]);
}

const seq = (...parts: Buffer[]) => der(0x30, Buffer.concat(parts));
const set = (...parts: Buffer[]) => der(0x31, Buffer.concat(parts));
const utf8 = (s: string) => der(0x0c, Buffer.from(s, "utf8"));
const octets = (b: Buffer) => der(0x04, b);
const explicit = (n: number, b: Buffer) => der(0xa0 | n, b);

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split(".").map(Number) as [number, number, ...number[]];
  const bytes = [40 * a + b];
  for (const v of rest) {
    const chunk = [v & 0x7f];
    for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128)) chunk.unshift(0x80 | (x & 0x7f));
    bytes.push(...chunk);
  }
  return der(0x06, Buffer.from(bytes));
}

function utcTime(d: Date): Buffer {
  const p = (n: number) => String(n).padStart(2, "0");
  const text =
    p(d.getUTCFullYear() % 100) +
    p(d.getUTCMonth() + 1) +
    p(d.getUTCDate()) +
    p(d.getUTCHours()) +
    p(d.getUTCMinutes()) +
    p(d.getUTCSeconds()) +
    "Z";
  return der(0x17, Buffer.from(text, "ascii"));
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split(".").map(Number));
  const url = new URL(`http://[${ip}]/`).hostname.slice(1, -1); // compressed form
  const [head, tail] = url.includes("::") ? url.split("::") : [url, undefined];
  const groups = (s: string | undefined) => (s ? s.split(":") : []);
  const h = groups(head);
  const t = groups(tail);
  const all = [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  return Buffer.concat(all.map((g) => Buffer.from(g.padStart(4, "0"), "hex")));
}

export interface SelfSignedOptions {
  commonName: string;
  /** DNS names and IP addresses the certificate is valid for. */
  hosts: string[];
  validDays?: number;
  now?: Date;
}

/** PEM certificate and PKCS#8 key; the key never leaves memory. */
export function selfSignedCertificate(opts: SelfSignedOptions): { cert: string; key: string } {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const now = opts.now ?? new Date();
  const notBefore = new Date(now.getTime() - 60 * 60 * 1000);
  const notAfter = new Date(now.getTime() + (opts.validDays ?? 365) * 24 * 60 * 60 * 1000);
  const serial = randomBytes(16);
  // A positive INTEGER in its minimal DER form: high bit clear, first byte never zero (a zero
  // before a byte under 0x80 is padding DER forbids: 1 certificate in 256 failed to parse).
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  const ecdsaWithSha256 = seq(oid("1.2.840.10045.4.3.2"));
  const name = seq(set(seq(oid("2.5.4.3"), utf8(opts.commonName))));
  const san = seq(
    ...opts.hosts.map((h) => (isIP(h) ? der(0x87, ipBytes(h)) : der(0x82, Buffer.from(h, "ascii")))),
  );
  const extensions = explicit(
    3,
    seq(
      seq(oid("2.5.29.17"), octets(san)),
      seq(oid("2.5.29.37"), octets(seq(oid("1.3.6.1.5.5.7.3.1")))), // extKeyUsage: serverAuth
      seq(oid("2.5.29.19"), der(0x01, Buffer.from([0xff])), octets(seq())), // basicConstraints CA:false, critical
    ),
  );
  const tbs = seq(
    explicit(0, der(0x02, Buffer.from([2]))),
    der(0x02, serial),
    ecdsaWithSha256,
    name,
    seq(utcTime(notBefore), utcTime(notAfter)),
    name,
    publicKey.export({ type: "spki", format: "der" }),
    extensions,
  );
  const signature = sign("sha256", tbs, privateKey);
  const certDer = seq(tbs, ecdsaWithSha256, der(0x03, Buffer.concat([Buffer.from([0]), signature])));
  const b64 = certDer.toString("base64").replace(/(.{64})/g, "$1\n");
  const cert = `-----BEGIN CERTIFICATE-----\n${b64.replace(/\n$/, "")}\n-----END CERTIFICATE-----\n`;
  new X509Certificate(cert); // throws if the encoding were wrong
  return { cert, key: privateKey.export({ type: "pkcs8", format: "pem" }).toString() };
}
