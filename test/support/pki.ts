// Throwaway certificates for the test servers (kube-apiserver, the Vault-API server, Dovecot,
// the HTTPS and webhook servers) and their clients: one CA per server, EC P-256 leaves valid
// for a week, made with @peculiar/x509; and the RSA key pair that signs service-account tokens.
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
const subtle = webcrypto.subtle;
const EC: webcrypto.EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
const EC_SIGN: webcrypto.EcdsaParams = { name: "ECDSA", hash: "SHA-256" };

export interface CertAndKey {
  certPem: string;
  keyPem: string;
}

export interface TestCa {
  caPem: string;
  /** A serverAuth certificate for these names (default localhost and 127.0.0.1). */
  issueServerCert(opts?: { dns?: string[]; ips?: string[]; cn?: string }): Promise<CertAndKey>;
  /** A clientAuth certificate, e.g. for "CN=admin, O=system:masters". */
  issueClientCert(subject: string): Promise<CertAndKey>;
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await subtle.exportKey("pkcs8", key), "PRIVATE KEY");
}

export async function createTestCa(name = "connector-controller-test-ca"): Promise<TestCa> {
  x509.cryptoProvider.set(webcrypto);
  const notBefore = new Date(Date.now() - 60 * 60 * 1000);
  const notAfter = new Date(Date.now() + 7 * 24 * 60 * 60 * 1000);
  const caKeys = (await subtle.generateKey(EC, true, ["sign", "verify"])) as CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${name}`,
    keys: caKeys,
    notBefore,
    notAfter,
    signingAlgorithm: EC_SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });

  const leaf = async (subject: string, usage: string, san?: x509.JsonGeneralNames): Promise<CertAndKey> => {
    const keys = (await subtle.generateKey(EC, true, ["sign", "verify"])) as CryptoKeyPair;
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([usage]),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
    ];
    if (san) extensions.push(new x509.SubjectAlternativeNameExtension(san));
    const cert = await x509.X509CertificateGenerator.create({
      subject,
      issuer: ca.subject,
      publicKey: keys.publicKey,
      signingKey: caKeys.privateKey,
      notBefore,
      notAfter,
      signingAlgorithm: EC_SIGN,
      extensions,
    });
    return { certPem: cert.toString("pem"), keyPem: await privateKeyPem(keys.privateKey) };
  };

  return {
    caPem: ca.toString("pem"),
    issueServerCert(opts = {}) {
      const dns = opts.dns ?? ["localhost"];
      const ips = opts.ips ?? ["127.0.0.1"];
      return leaf(`CN=${opts.cn ?? dns[0] ?? ips[0] ?? "test-server"}`, x509.ExtendedKeyUsage.serverAuth, [
        ...dns.map((value) => ({ type: "dns" as const, value })),
        ...ips.map((value) => ({ type: "ip" as const, value })),
      ]);
    },
    issueClientCert: (subject) => leaf(subject, x509.ExtendedKeyUsage.clientAuth),
  };
}

/** An RSA key pair (PEM) for RS256 signatures, which every token reviewer understands. */
export async function rsaSigningKeys(): Promise<{ publicKeyPem: string; privateKeyPem: string }> {
  const keys = (await subtle.generateKey(
    {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    },
    true,
    ["sign", "verify"],
  )) as CryptoKeyPair;
  return {
    publicKeyPem: x509.PemConverter.encode(await subtle.exportKey("spki", keys.publicKey), "PUBLIC KEY"),
    privateKeyPem: await privateKeyPem(keys.privateKey),
  };
}
