// Package egress is the outbound-connection policy shared by the tools that
// make HTTP requests on a model's behalf (http_fetch and declarative HTTP
// tools).
//
// It exists because a model chooses the URLs those tools fetch, and a model can
// be steered by whatever text it reads: without a guard, one prompt injection
// could make the engine fetch http://169.254.169.254/ (cloud credentials),
// http://localhost:6379/ or an intranet admin page from inside the deployment.
// The policy refuses loopback, private, link-local, multicast, documentation,
// benchmarking and every other address the IANA special-purpose registries
// mark as not globally reachable, unless an operator lists the host in
// allowed_hosts, and when allowed_hosts is
// set it refuses every other host.
//
// Addresses are checked when the connection is made (net.Dialer.Control), on
// the IP actually dialled, so a host name that resolves to a public address at
// check time and to a private one at connect time (DNS rebinding) is still
// refused. Redirects are re-checked hop by hop, and proxies from the
// environment are ignored because a proxy would make the dialled address the
// proxy's rather than the target's.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"
)

// MaxRedirects is how many redirects a policy's client follows before giving up.
const MaxRedirects = 5

// Policy decides which hosts HTTP-based tools may reach. The zero value allows
// every public address and refuses internal ones.
type Policy struct {
	// AllowedHosts are hosts (or host:port) that may be reached even if they
	// resolve to private/loopback addresses; when non-empty, ONLY these hosts
	// may be reached at all. Names match exactly and case-insensitively; an
	// entry without a port matches every port.
	AllowedHosts []string
}

// RefusedError reports a connection the policy refused. Tools show its message
// to the model as is, so it says what was refused, why, and how an operator
// can permit it.
type RefusedError struct {
	Host   string     // the host as written in the URL
	IP     netip.Addr // the resolved address, if the refusal is about an address
	Reason string     // why, in words
}

func (e *RefusedError) Error() string {
	target := e.Host
	if e.IP.IsValid() && e.IP.String() != e.Host {
		if target == "" {
			target = e.IP.String()
		} else {
			target = fmt.Sprintf("%s (%s)", e.Host, e.IP)
		}
	}
	return fmt.Sprintf("refusing to connect to %s: %s", target, e.Reason)
}

// Client returns an *http.Client that enforces the policy on every connection
// and redirect. timeout bounds a whole request including reading the body; 0
// means no limit beyond the caller's context.
func (p Policy) Client(timeout time.Duration) *http.Client {
	p.AllowedHosts = slices.Clone(p.AllowedHosts) // later edits by the caller do not change the client
	return &http.Client{
		Transport: checkingTransport{policy: p, next: p.transport(&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second})},
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > MaxRedirects {
				return fmt.Errorf("stopped after %d redirects", MaxRedirects)
			}
			return p.CheckURL(req.URL)
		},
	}
}

// transport dials through a copy of dialer with the policy's address check in
// its Control hook. A Control the dialer already has runs after the check and
// only for addresses the check let through; tests use it to record what would
// have been connected to and stop there.
func (p Policy) transport(dialer *net.Dialer) *http.Transport {
	return &http.Transport{
		// No Proxy: with a proxy the dialled address would be the proxy's and the
		// address check below would be meaningless.
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, fmt.Errorf("invalid address %q: %w", addr, err)
			}
			allowed := p.allows(host, port)
			if len(p.AllowedHosts) > 0 && !allowed {
				return nil, p.notListed(host)
			}
			d := *dialer
			if !allowed {
				// Checked per dialled IP, after resolution: the only point at
				// which the address cannot change any more. Control runs
				// before connect(2), so a refused address is never contacted.
				next := dialer.Control
				d.Control = func(network, address string, c syscall.RawConn) error {
					if err := checkDialAddress(host, address); err != nil {
						return err
					}
					if next != nil {
						return next(network, address, c)
					}
					return nil
				}
			}
			return d.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// checkingTransport applies CheckURL before each request, so refusals of hosts
// and schemes happen before any DNS lookup and read clearly; the dialer still
// checks the addresses.
type checkingTransport struct {
	policy Policy
	next   http.RoundTripper
}

func (t checkingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.policy.CheckURL(req.URL); err != nil {
		if req.Body != nil {
			req.Body.Close() // RoundTrip must close the body, even on errors
		}
		return nil, err
	}
	return t.next.RoundTrip(req)
}

// CheckURL is the early, user-facing check run before any request: scheme,
// allowed_hosts, and literal IP addresses (and localhost) that are blocked.
// Host names are checked again, on their resolved addresses, when connecting.
func (p Policy) CheckURL(u *url.URL) error {
	if u == nil {
		return errors.New("missing URL")
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	case "":
		return fmt.Errorf("URL %q has no scheme: write an absolute http:// or https:// URL", u.Redacted())
	default:
		return fmt.Errorf("refusing URL scheme %q: only http and https are allowed", u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("URL %q has no host", u.Redacted())
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if strings.EqualFold(u.Scheme, "https") {
			port = "443"
		}
	}
	if p.allows(host, port) {
		return nil
	}
	if len(p.AllowedHosts) > 0 {
		return p.notListed(host)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if reason := blockedReason(ip); reason != "" {
			return &RefusedError{Host: host, IP: ip.Unmap(), Reason: reason + hint}
		}
	}
	if isLocalhostName(host) {
		return &RefusedError{Host: host, Reason: "loopback addresses are blocked" + hint}
	}
	return nil
}

// AllowHint ends the reason of a refusal an allowed_hosts entry would lift;
// callers that know which allowed_hosts field applies replace it with a
// precise one.
const AllowHint = "; add the host to allowed_hosts to permit it"

const hint = AllowHint

func (p Policy) notListed(host string) error {
	return &RefusedError{Host: host, Reason: fmt.Sprintf("the host is not in allowed_hosts (%s)", strings.Join(p.AllowedHosts, ", "))}
}

// allows reports whether host:port matches an allowed_hosts entry.
func (p Policy) allows(host, port string) bool {
	host = normalizeHost(host)
	for _, entry := range p.AllowedHosts {
		h, pt := splitEntry(entry)
		if h == host && (pt == "" || pt == port) {
			return true
		}
	}
	return false
}

// splitEntry splits an allowed_hosts entry into a normalized host and an
// optional port. A bare IPv6 address ("::1") has colons but no port.
func splitEntry(entry string) (host, port string) {
	entry = strings.TrimSpace(entry)
	if _, err := netip.ParseAddr(strings.Trim(entry, "[]")); err == nil {
		return normalizeHost(entry), ""
	}
	if h, pt, err := net.SplitHostPort(entry); err == nil {
		return normalizeHost(h), pt
	}
	return normalizeHost(entry), ""
}

// normalizeHost makes equal hosts compare equal: case, a trailing dot,
// brackets and the many spellings of one IPv6 address.
func normalizeHost(h string) string {
	h = strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip.Unmap().WithZone("").String()
	}
	return h
}

func isLocalhostName(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}

// checkDialAddress is the dial-time check of one resolved address ("ip:port").
// It fails closed: an address it cannot parse is refused.
func checkDialAddress(host, address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &RefusedError{Host: host, Reason: fmt.Sprintf("cannot check the address %q", address)}
	}
	if reason := blockedReason(ap.Addr()); reason != "" {
		return &RefusedError{Host: host, IP: ap.Addr().Unmap().WithZone(""), Reason: reason + hint}
	}
	return nil
}

// A specialRange is one not-globally-reachable entry of the IANA IPv4 and
// IPv6 Special-Purpose Address Registries
// (https://www.iana.org/assignments/iana-ipv4-special-registry and
// https://www.iana.org/assignments/iana-ipv6-special-registry, RFC 6890),
// plus multicast and the IPv6 space outside global unicast. Addresses that
// embed an IPv4 address (IPv4-mapped, NAT64, 6to4) are judged by the
// embedded address before this table is consulted.
type specialRange struct {
	prefix netip.Prefix
	reason string
}

// specialRanges is checked in order; the first match decides, so narrower
// entries with their own reason come before the wider ones containing them.
var specialRanges = func() []specialRange {
	const (
		unspecified = "unspecified addresses are blocked"
		loopback    = "loopback addresses are blocked"
		private     = "private addresses are blocked"
		linkLocal   = "link-local addresses (including cloud metadata services) are blocked"
		multicast   = "multicast addresses are blocked"
		docs        = "documentation addresses are blocked"
		reserved    = "reserved addresses are blocked"
	)
	r := func(prefix, reason string) specialRange {
		return specialRange{netip.MustParsePrefix(prefix), reason}
	}
	return []specialRange{
		// IPv4 special-purpose registry, entries with "Globally Reachable: False".
		r("0.0.0.0/8", unspecified), // "this network"; 0.0.0.0 reaches the local host
		r("10.0.0.0/8", private),
		r("100.64.0.0/10", "carrier-grade NAT (100.64.0.0/10) addresses are blocked"), // often internal in clouds
		r("127.0.0.0/8", loopback),
		r("169.254.0.0/16", linkLocal),
		r("172.16.0.0/12", private),
		// IETF protocol assignments, all of it: a few /32s in it are anycast
		// services a tool has no reason to call, and DS-Lite/NAT64 discovery
		// addresses in it are local.
		r("192.0.0.0/24", "IETF protocol assignment addresses (192.0.0.0/24) are blocked"),
		r("192.0.2.0/24", docs), // TEST-NET-1
		r("192.88.99.0/24", "6to4 relay anycast addresses (192.88.99.0/24, deprecated by RFC 7526) are blocked"),
		r("192.168.0.0/16", private),
		r("198.18.0.0/15", "benchmarking addresses (198.18.0.0/15) are blocked"), // RFC 2544; used for internal test networks
		r("198.51.100.0/24", docs), // TEST-NET-2
		r("203.0.113.0/24", docs),  // TEST-NET-3
		r("224.0.0.0/4", multicast),
		r("255.255.255.255/32", "broadcast addresses are blocked"), // before 240/4, for its own reason
		r("240.0.0.0/4", reserved),                                 // "Reserved for future use"

		// IPv6 special-purpose registry, entries with "Globally Reachable: False".
		r("::/128", unspecified),
		r("::1/128", loopback),
		r("64:ff9b:1::/48", "local-use NAT64 addresses (64:ff9b:1::/48) are blocked"), // RFC 8215: the translator and the embedded address are local
		r("100::/64", "discard-only addresses (100::/64) are blocked"),
		r("2001::/32", "Teredo addresses (2001::/32) are blocked"), // the embedded server and client addresses are not checkable
		r("2001:2::/48", "benchmarking addresses (2001:2::/48) are blocked"),
		r("2001::/23", "IETF protocol assignment addresses (2001::/23) are blocked"), // after the globally reachable exceptions (globalInReserved)
		r("2001:db8::/32", docs),
		r("3fff::/20", docs), // RFC 9637
		r("5f00::/16", "SRv6 segment identifiers (5f00::/16) are blocked"),
		r("fc00::/7", private), // unique local
		r("fe80::/10", linkLocal),
		r("fec0::/10", "site-local addresses are blocked"), // deprecated by RFC 3879 but still routed internally by some
		r("ff00::/8", multicast),
	}
}()

// globalInReserved are the entries inside 2001::/23 that the IPv6 registry
// marks globally reachable (anycast services, AMT, AS112, ORCHIDv2, DRIP).
var globalInReserved = []netip.Prefix{
	netip.MustParsePrefix("2001:1::1/128"),
	netip.MustParsePrefix("2001:1::2/128"),
	netip.MustParsePrefix("2001:1::3/128"),
	netip.MustParsePrefix("2001:3::/32"),
	netip.MustParsePrefix("2001:4:112::/48"),
	netip.MustParsePrefix("2001:20::/28"),
	netip.MustParsePrefix("2001:30::/28"),
}

var (
	nat64         = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052 well-known NAT64: the low 32 bits are an IPv4 address
	sixToFour     = netip.MustParsePrefix("2002::/16")    // RFC 3056 6to4: bits 16-47 are an IPv4 address
	globalUnicast = netip.MustParsePrefix("2000::/3")     // the only IPv6 space allocated for global unicast
)

// blockedReason says why ip must not be reached, or "" if it may.
func blockedReason(ip netip.Addr) string {
	ip = ip.WithZone("")
	if !ip.IsValid() {
		return "invalid addresses are blocked"
	}
	// IPv4-mapped (::ffff:127.0.0.1), NAT64 (64:ff9b::7f00:1) and 6to4
	// (2002:7f00:1::) forms reach the embedded IPv4 address, so they are
	// judged by it.
	switch {
	case ip.Is4In6():
		ip = ip.Unmap()
	case nat64.Contains(ip):
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:]))
	case sixToFour.Contains(ip):
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[2:6]))
	}
	for _, g := range globalInReserved {
		if g.Contains(ip) {
			return ""
		}
	}
	for _, sr := range specialRanges {
		if sr.prefix.Contains(ip) {
			return sr.reason
		}
	}
	if ip.Is6() && !globalUnicast.Contains(ip) {
		// Everything else outside 2000::/3 is unassigned or reserved by the
		// IETF (IPv6 Address Space registry), including the deprecated
		// IPv4-compatible ::a.b.c.d form.
		return "reserved addresses are blocked"
	}
	return ""
}
