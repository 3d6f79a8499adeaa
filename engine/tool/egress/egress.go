// Package egress is the outbound-connection policy shared by the tools that
// make HTTP requests on a model's behalf (http_fetch and declarative HTTP
// tools).
//
// It exists because a model chooses the URLs those tools fetch, and a model can
// be steered by whatever text it reads: without a guard, one prompt injection
// could make the engine fetch http://169.254.169.254/ (cloud credentials),
// http://localhost:6379/ or an intranet admin page from inside the deployment.
// The policy refuses loopback, private, link-local and similar addresses
// unless an operator lists the host in allowed_hosts, and when allowed_hosts is
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
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
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
				// which the address cannot change any more.
				d.Control = func(_, address string, _ syscall.RawConn) error {
					return checkDialAddress(host, address)
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
	return &http.Client{
		Transport: checkingTransport{policy: p, next: transport},
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > MaxRedirects {
				return fmt.Errorf("stopped after %d redirects", MaxRedirects)
			}
			return p.CheckURL(req.URL)
		},
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

const hint = "; add the host to allowed_hosts to permit it"

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

var (
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")     // "this network"; 0.0.0.0 reaches the local host
	cgnat       = netip.MustParsePrefix("100.64.0.0/10") // carrier-grade NAT, often internal in clouds
	nat64       = netip.MustParsePrefix("64:ff9b::/96")  // NAT64: the low 32 bits are an IPv4 address
	broadcast   = netip.MustParseAddr("255.255.255.255") // limited broadcast
)

// blockedReason says why ip must not be reached, or "" if it may.
func blockedReason(ip netip.Addr) string {
	ip = ip.WithZone("")
	// IPv4-mapped (::ffff:127.0.0.1) and NAT64 (64:ff9b::7f00:1) forms reach
	// the embedded IPv4 address, so they are judged by it.
	if ip.Is4In6() {
		ip = ip.Unmap()
	} else if nat64.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:]))
	}
	switch {
	case !ip.IsValid():
		return "invalid addresses are blocked"
	case ip.IsUnspecified() || (ip.Is4() && thisNetwork.Contains(ip)):
		return "unspecified addresses are blocked"
	case ip.IsLoopback():
		return "loopback addresses are blocked"
	case ip.IsPrivate():
		return "private addresses are blocked"
	case ip.IsLinkLocalUnicast():
		return "link-local addresses (including cloud metadata services) are blocked"
	case ip.IsMulticast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast():
		return "multicast addresses are blocked"
	case ip == broadcast:
		return "broadcast addresses are blocked"
	case cgnat.Contains(ip):
		return "carrier-grade NAT (100.64.0.0/10) addresses are blocked"
	}
	return ""
}
