package console

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/api"
)

// The host check defends against DNS rebinding: a web page on a name the
// attacker controls (evil.example) re-points that name at 127.0.0.1 and is
// then, to the browser, same-origin with this server, so it can read the
// answers. Such requests carry the attacker's name in Host, so the server
// answers only requests whose Host is one of its own addresses or a name the
// operator allowed.
//
// Only the host is compared, never the port: the attacker chooses the port
// of its own URL, so ports stop nothing, while SSH tunnels and container
// port mappings change them legitimately.

// hostPolicy decides which Host headers the server answers.
type hostPolicy struct {
	any bool // the operator allowed every host ("*")
	// loopback: the server answers on loopback, so localhost and loopback
	// addresses are its own.
	loopback bool
	// anyIP: the server listens on every address (0.0.0.0 or ::), so any IP
	// address may be one of its own, including a NAT'd public address no
	// interface shows. An address is never a rebinding: a browser that
	// connects to an address sends that address, not a name.
	anyIP bool
	ip    netip.Addr // the address listened on, when not a wildcard
	names []hostName // names the operator allowed
}

// hostName is one allowed name: exact, or "*.example.com" for any
// subdomain; port is empty for any port.
type hostName struct {
	name     string
	wildcard bool
	port     string
}

// newHostPolicy builds the policy for a server listening on addr. allowed
// are the operator's names (AllowedHosts); "*" allows every host, but only
// with API keys (open is false): without keys the host check is all that
// keeps other sites' pages out.
func newHostPolicy(addr net.Addr, allowed []string, open bool) *hostPolicy {
	// A listener that is not TCP (a Unix socket) is reached only from this
	// machine, like loopback; a proxy in front may still pass browsers'
	// Host headers through, so the check stays.
	p := &hostPolicy{loopback: true}
	if tcp, ok := addr.(*net.TCPAddr); ok {
		p.loopback = false
		ip, _ := netip.AddrFromSlice(tcp.IP)
		ip = ip.Unmap()
		switch {
		case !ip.IsValid() || ip.IsUnspecified():
			p.anyIP, p.loopback = true, true
		case ip.IsLoopback():
			p.loopback, p.ip = true, ip
		default:
			p.ip = ip
		}
	}
	for _, a := range allowed {
		a = strings.ToLower(strings.TrimSpace(a))
		switch {
		case a == "":
		case a == "*":
			p.any = !open
		default:
			h := hostName{name: a}
			if host, port, err := net.SplitHostPort(a); err == nil {
				h.name, h.port = host, port
			}
			h.name = strings.TrimSuffix(strings.Trim(h.name, "[]"), ".")
			if rest, ok := strings.CutPrefix(h.name, "*."); ok {
				h.name, h.wildcard = rest, true
			}
			p.names = append(p.names, h)
		}
	}
	return p
}

// allows reports whether the server answers a request with this Host.
func (p *hostPolicy) allows(host string) bool { return p.any || p.own(host) }

// own reports whether host is one of the server's addresses or allowed
// names, whatever "*" says.
func (p *hostPolicy) own(hostport string) bool {
	if p == nil {
		return false
	}
	if hostport == "" {
		// Only HTTP/1.0 clients omit Host, and browsers are not among them.
		return true
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, ""
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap().WithZone("")
		if p.anyIP || ip == p.ip || p.loopback && ip.IsLoopback() {
			return true
		}
	} else if p.loopback && host == "localhost" {
		return true
	}
	for _, n := range p.names {
		if n.port != "" && n.port != port {
			continue
		}
		if host == n.name && !n.wildcard || n.wildcard && strings.HasSuffix(host, "."+n.name) {
			return true
		}
	}
	return false
}

// checkHost refuses requests for a Host the server does not answer to, with
// 421 Misdirected Request (the request reached a server it was not meant
// for), answered by refuse in the route group's format.
func (s *Server) checkHost(refuse func(c *gin.Context, msg string)) gin.HandlerFunc {
	return func(c *gin.Context) {
		if p := s.hosts.Load(); p != nil && p.allows(c.Request.Host) {
			return
		}
		refuse(c, "this server does not answer to the host "+quoteHost(c.Request.Host)+
			": if that name is yours (say, behind a reverse proxy), start troupe with --allowed-hosts "+quoteHost(hostOnly(c.Request.Host))+" (env TROUPE_ALLOWED_HOSTS)")
	}
}

// misdirectedAPI answers an API request for a Host the server does not
// answer to.
func (s *Server) misdirectedAPI(c *gin.Context, msg string) {
	s.api.Fail(c, &api.Error{Status: http.StatusMisdirectedRequest, Msg: msg})
}

// misdirectedPage answers a console request for a Host the server does not
// answer to.
func (s *Server) misdirectedPage(c *gin.Context, msg string) {
	s.ui.Problem(c, http.StatusMisdirectedRequest, "Unknown host", msg+".", "Open the console at the address the server listens on, such as http://127.0.0.1:7777/.")
}

// hostOnly strips the port from a Host header.
func hostOnly(hostport string) string {
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		return host
	}
	return hostport
}

// quoteHost quotes a Host header for a message, bounded: it is the caller's
// text.
func quoteHost(h string) string {
	if len(h) > 100 {
		h = h[:100] + "…"
	}
	return "\"" + strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' {
			return -1
		}
		return r
	}, h) + "\""
}
