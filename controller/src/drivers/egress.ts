// Egress allowlist: the host a driver will contact must be listed by its type version
// BEFORE anything is resolved or connected.
//
// Entries are exact host names, IP addresses, or `*.suffix` patterns. Matching is
// case-insensitive and strict: a host that is not a plain DNS name or IP literal (a
// trailing dot, brackets, userinfo, a port, percent-escapes, whitespace, non-ASCII) never
// matches, so `localhost.`, `[127.0.0.1]` or `localhost.evil.com` are not `localhost`.
// `*.example.com` matches any name below example.com (a.example.com, a.b.example.com) but
// not example.com itself, and never an IP address.
import { isIPv4, isIPv6 } from "node:net";

const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;
// Decimal dotted quad without leading zeros, the only IPv4 spelling we accept.
const DOTTED_QUAD =
  /^(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}$/;

export type HostKind = "dns" | "ipv4" | "ipv6";

export interface CanonicalHost {
  kind: HostKind;
  /** Lower-case name, dotted-quad IPv4, or compressed lower-case IPv6 (without brackets). */
  value: string;
}

/**
 * The canonical form of a host as written in a config field or an allowlist, or undefined
 * when it is not a plain host name or IP literal. Nothing is resolved.
 */
export function canonicalHost(raw: string): CanonicalHost | undefined {
  if (typeof raw !== "string" || raw.length === 0 || raw.length > 253) return undefined;
  const host = raw.toLowerCase();
  if (DOTTED_QUAD.test(host)) return { kind: "ipv4", value: host };
  if (isIPv6(host) && !host.includes("%")) {
    // Compress through the WHATWG URL parser: ::0:1 and ::1 are the same address.
    try {
      const h = new URL(`http://[${host}]/`).hostname;
      return { kind: "ipv6", value: h.slice(1, -1) };
    } catch {
      return undefined;
    }
  }
  if (isIPv4(host)) return undefined; // unreachable with DOTTED_QUAD, kept for clarity
  const labels = host.split(".");
  if (!labels.every((l) => LABEL.test(l))) return undefined;
  const last = labels[labels.length - 1] ?? "";
  // An all-numeric (or 0x-hex) last label is an IPv4 spelling such as 127.1 or 0x7f.1,
  // which resolvers turn into an address: not a name, and not a canonical IP either.
  if (/^[0-9]+$/.test(last) || /^0x[0-9a-f]*$/.test(last)) return undefined;
  return { kind: "dns", value: host };
}

/**
 * The host of a URL as the URL parser sees it (IDN to punycode, IPv4 spellings to a
 * dotted quad, IPv6 without brackets), ready for {@link hostAllowed}.
 */
export function urlHost(url: URL): string {
  const h = url.hostname;
  return h.startsWith("[") && h.endsWith("]") ? h.slice(1, -1) : h;
}

/** Does the allowlist permit this host? Invalid hosts and invalid entries never match. */
export function hostAllowed(host: string, allowlist: readonly string[] | undefined): boolean {
  const h = canonicalHost(host);
  if (!h || !allowlist) return false;
  for (const entry of allowlist) {
    if (typeof entry !== "string") continue;
    if (entry.startsWith("*.")) {
      if (h.kind !== "dns") continue;
      const suffix = canonicalHost(entry.slice(2));
      if (!suffix || suffix.kind !== "dns") continue;
      if (h.value.endsWith(`.${suffix.value}`)) return true;
      continue;
    }
    const e = canonicalHost(entry);
    if (e && e.kind === h.kind && e.value === h.value) return true;
  }
  return false;
}

/** The message of an egress refusal; the host is shown JSON-quoted when it is not a plain host. */
export function egressDeniedMessage(host: string, typeName: string): string {
  const shown = canonicalHost(host) ? host : JSON.stringify(host.slice(0, 260));
  return `host ${shown} is not in the egress allowlist of type ${typeName}`;
}
