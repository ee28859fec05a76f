import { describe, expect, it } from "vitest";
import {
  canonicalHost,
  egressDeniedMessage,
  hostAllowed,
  urlHost,
} from "../../controller/src/drivers/egress.ts";

const LIST = ["*.example.com", "imap.gmail.com", "localhost", "127.0.0.1", "::1", "Mail.Example.ORG"];

describe("egress allowlist", () => {
  it("matches exact names case-insensitively", () => {
    expect(hostAllowed("imap.gmail.com", LIST)).toBe(true);
    expect(hostAllowed("IMAP.Gmail.COM", LIST)).toBe(true);
    expect(hostAllowed("mail.example.org", LIST)).toBe(true);
    expect(hostAllowed("localhost", LIST)).toBe(true);
    expect(hostAllowed("LOCALHOST", LIST)).toBe(true);
  });

  it("does not treat an exact entry as a prefix or suffix", () => {
    expect(hostAllowed("localhost.evil.com", LIST)).toBe(false);
    expect(hostAllowed("evil-localhost", LIST)).toBe(false);
    expect(hostAllowed("imap.gmail.com.evil.com", LIST)).toBe(false);
    expect(hostAllowed("xímap.gmail.com", LIST)).toBe(false);
    expect(hostAllowed("gmail.com", LIST)).toBe(false);
    expect(hostAllowed("a.imap.gmail.com", LIST)).toBe(false);
  });

  it("matches *.suffix at any depth below the suffix, never the apex or a look-alike", () => {
    expect(hostAllowed("a.example.com", LIST)).toBe(true);
    expect(hostAllowed("a.b.example.com", LIST)).toBe(true);
    expect(hostAllowed("A.Example.Com", LIST)).toBe(true);
    expect(hostAllowed("example.com", LIST)).toBe(false);
    expect(hostAllowed("badexample.com", LIST)).toBe(false);
    expect(hostAllowed("example.com.evil.net", LIST)).toBe(false);
    expect(hostAllowed("a.example.com.evil.net", LIST)).toBe(false);
  });

  it("refuses trailing dots, brackets, ports, userinfo and other tricks", () => {
    for (const h of [
      "localhost.",
      "a.example.com.",
      "[127.0.0.1]",
      "[::1]",
      "localhost:80",
      "user@localhost",
      "localhost/",
      "localhost%00",
      "local%68ost",
      " localhost",
      "localhost ",
      "localhost\n",
      "loc\u0430lhost", // Cyrillic a
      "..example.com",
      "a..example.com",
      "*.example.com",
      "-a.example.com",
      "",
    ]) {
      expect(hostAllowed(h, LIST), JSON.stringify(h)).toBe(false);
    }
  });

  it("accepts only canonical IPv4 and matches IPv6 by value", () => {
    expect(hostAllowed("127.0.0.1", LIST)).toBe(true);
    expect(hostAllowed("::1", LIST)).toBe(true);
    expect(hostAllowed("0:0:0:0:0:0:0:1", LIST)).toBe(true);
    // Alternative IPv4 spellings resolve to 127.0.0.1 but are not it: refused.
    for (const h of [
      "127.1",
      "2130706433",
      "0x7f.0.0.1",
      "0177.0.0.1",
      "127.000.000.001",
      "::ffff:127.0.0.1",
    ]) {
      expect(hostAllowed(h, LIST), h).toBe(false);
    }
    expect(hostAllowed("127.0.0.2", LIST)).toBe(false);
    expect(hostAllowed("fe80::1%eth0", ["fe80::1"])).toBe(false);
  });

  it("never lets a wildcard match an IP address", () => {
    expect(hostAllowed("10.0.0.1", ["*.0.0.1"])).toBe(false);
    expect(hostAllowed("10.0.0.1", ["*.1"])).toBe(false);
  });

  it("ignores invalid entries and empty lists", () => {
    expect(hostAllowed("localhost", undefined)).toBe(false);
    expect(hostAllowed("localhost", [])).toBe(false);
    expect(hostAllowed("a.example.com", ["*"])).toBe(false);
    expect(hostAllowed("a.example.com", ["a.*.com"])).toBe(false);
    expect(hostAllowed("a.example.com", ["*.example.com."])).toBe(false);
    expect(hostAllowed("localhost", ["localhost."])).toBe(false);
    expect(hostAllowed("127.0.0.1", ["[127.0.0.1]"])).toBe(false);
  });

  it("takes URL hosts as the URL parser canonicalises them", () => {
    expect(urlHost(new URL("https://[::1]:8443/x"))).toBe("::1");
    expect(hostAllowed(urlHost(new URL("https://[::1]:8443/x")), LIST)).toBe(true);
    expect(urlHost(new URL("https://LOCALHOST/"))).toBe("localhost");
    // The URL parser turns this spelling into the address that will be connected to.
    expect(urlHost(new URL("http://2130706433/"))).toBe("127.0.0.1");
    expect(hostAllowed(urlHost(new URL("https://localhost.:443/")), LIST)).toBe(false);
    expect(urlHost(new URL("https://evil.com\\@localhost/"))).toBe("evil.com");
    expect(hostAllowed(urlHost(new URL("https://localhost@evil.com/")), LIST)).toBe(false);
  });

  it("canonicalHost classifies hosts", () => {
    expect(canonicalHost("Example.COM")).toEqual({ kind: "dns", value: "example.com" });
    expect(canonicalHost("10.1.2.3")).toEqual({ kind: "ipv4", value: "10.1.2.3" });
    expect(canonicalHost("2001:DB8:0:0::1")).toEqual({ kind: "ipv6", value: "2001:db8::1" });
    expect(canonicalHost("a".repeat(64) + ".com")).toBeUndefined();
  });

  it("names the host and the type in a stable message", () => {
    expect(egressDeniedMessage("evil.com", "imap")).toBe(
      "host evil.com is not in the egress allowlist of type imap",
    );
    expect(egressDeniedMessage("bad host\n", "http")).toBe(
      'host "bad host\\n" is not in the egress allowlist of type http',
    );
  });
});
