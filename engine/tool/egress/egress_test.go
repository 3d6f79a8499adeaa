package egress

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBlockedReason(t *testing.T) {
	for _, tc := range []struct {
		ip     string
		reason string // substring; "" means allowed
	}{
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"93.184.216.34", ""},
		{"2606:4700:4700::1111", ""},
		{"172.32.0.1", ""},  // just outside 172.16/12
		{"100.128.0.1", ""}, // just outside 100.64/10
		{"169.253.255.255", ""},
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"::1", "loopback"},
		{"10.0.0.1", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"fc00::1", "private"},
		{"fd12:3456::1", "private"},
		{"169.254.169.254", "link-local"},
		{"169.254.0.1", "link-local"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "unspecified"},
		{"::", "unspecified"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"ff02::1", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"100.64.0.1", "carrier-grade NAT"},
		{"100.127.255.255", "carrier-grade NAT"},
		{"::ffff:127.0.0.1", "loopback"},
		{"::ffff:169.254.169.254", "link-local"},
		{"::ffff:10.1.2.3", "private"},
		{"::ffff:8.8.8.8", ""},
		{"64:ff9b::a9fe:a9fe", "link-local"}, // NAT64 form of 169.254.169.254
		{"64:ff9b::808:808", ""},
		// The rest of the IANA special-purpose registries (not globally reachable).
		{"192.0.0.1", "IETF protocol assignment"},
		{"192.0.0.170", "IETF protocol assignment"},
		{"192.0.0.255", "IETF protocol assignment"},
		{"192.0.1.1", ""}, // just outside 192.0.0.0/24
		{"192.0.2.1", "documentation"},
		{"192.88.99.1", "6to4 relay"},
		{"198.18.0.1", "benchmarking"},
		{"198.19.255.255", "benchmarking"},
		{"198.17.255.255", ""}, // just below 198.18/15
		{"198.20.0.0", ""},     // just above it
		{"198.51.100.7", "documentation"},
		{"203.0.113.9", "documentation"},
		{"240.0.0.1", "reserved"},
		{"254.255.255.255", "reserved"},
		{"223.255.255.255", ""}, // just below multicast
		{"::ffff:198.18.0.1", "benchmarking"},
		{"::ffff:240.0.0.1", "reserved"},
		{"64:ff9b::c612:1", "benchmarking"}, // NAT64 form of 198.18.0.1
		{"64:ff9b:1::1", "local-use NAT64"},
		{"100::1", "discard-only"},
		{"2001::1", "Teredo"},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"},
		{"2001:2::1", "benchmarking"},
		{"2001:10::1", "IETF protocol assignment"},
		{"2001:1ff::1", "IETF protocol assignment"},
		{"2001:1::1", ""},     // PCP anycast, globally reachable
		{"2001:3::1", ""},     // AMT, globally reachable
		{"2001:4:112::1", ""}, // AS112-v6, globally reachable
		{"2001:20::1", ""},    // ORCHIDv2, globally reachable
		{"2001:200::1", ""},   // just outside 2001::/23 (a real allocation)
		{"2001:db8::1", "documentation"},
		{"3fff::1", "documentation"},
		{"3fff:fff::1", "documentation"},
		{"5f00::1", "SRv6"},
		{"fec0::1", "site-local"},
		{"2002:7f00:1::1", "loopback"},      // 6to4 form of 127.0.0.1
		{"2002:a9fe:a9fe::1", "link-local"}, // 6to4 form of 169.254.169.254
		{"2002:808:808::1", ""},             // 6to4 form of 8.8.8.8
		{"::7f00:1", "reserved"},            // deprecated IPv4-compatible form
		{"4000::1", "reserved"},             // outside 2000::/3
		{"ff05::1:3", "multicast"},          // site-local multicast
		{"2a00:1450:4001:81c::200e", ""},
	} {
		t.Run(tc.ip, func(t *testing.T) {
			got := blockedReason(netip.MustParseAddr(tc.ip))
			if tc.reason == "" {
				require.Empty(t, got)
			} else {
				require.Contains(t, got, tc.reason)
			}
		})
	}
}

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url     string
		allowed []string
		err     string // substring; "" means accepted
	}{
		{"https://example.com/path", nil, ""},
		{"http://8.8.8.8/", nil, ""},
		{"http://127.0.0.1:8080/", nil, "refusing to connect to 127.0.0.1: loopback addresses are blocked; add the host to allowed_hosts to permit it"},
		{"http://[::1]/", nil, "loopback"},
		{"http://[::ffff:127.0.0.1]/", nil, "loopback"},
		{"http://169.254.169.254/latest/meta-data/", nil, "link-local"},
		{"http://10.0.0.5/", nil, "private"},
		{"http://100.100.100.200/", nil, "carrier-grade NAT"},
		{"http://0.0.0.0/", nil, "unspecified"},
		{"http://localhost:3000/", nil, "loopback"},
		{"http://api.localhost/", nil, "loopback"},
		{"ftp://example.com/", nil, `refusing URL scheme "ftp"`},
		{"file:///etc/passwd", nil, `refusing URL scheme "file"`},
		{"//example.com/", nil, "no scheme"},
		{"http:///path", nil, "no host"},
		{"http://127.0.0.1/", []string{"127.0.0.1"}, ""},
		{"http://127.0.0.1:9000/", []string{"127.0.0.1"}, ""},
		{"http://127.0.0.1:9000/", []string{"127.0.0.1:9000"}, ""},
		{"http://127.0.0.1:9001/", []string{"127.0.0.1:9000"}, "not in allowed_hosts"},
		{"http://LOCALHOST./", []string{"localhost"}, ""},
		{"http://[::1]:8080/", []string{"::1"}, ""},
		{"http://[::1]:8080/", []string{"[::1]:8080"}, ""},
		{"https://api.example.com/", []string{"api.example.com"}, ""},
		{"https://api.example.com/", []string{"api.example.com:443"}, ""},
		{"http://api.example.com/", []string{"api.example.com:443"}, "not in allowed_hosts"},
		{"https://evil.example.com/", []string{"api.example.com"}, "refusing to connect to evil.example.com: the host is not in allowed_hosts (api.example.com)"},
		{"http://169.254.169.254/", []string{"api.example.com"}, "not in allowed_hosts"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			require.NoError(t, err)
			err = Policy{AllowedHosts: tc.allowed}.CheckURL(u)
			if tc.err == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.err)
			}
		})
	}
}

// TestDialCheck covers the connect-time check directly, since tests cannot
// make a public name resolve to a private address.
func TestDialCheck(t *testing.T) {
	require.NoError(t, checkDialAddress("example.com", "93.184.216.34:443"))
	err := checkDialAddress("rebind.example", "127.0.0.1:80")
	require.EqualError(t, err, "refusing to connect to rebind.example (127.0.0.1): loopback addresses are blocked; add the host to allowed_hosts to permit it")
	var re *RefusedError
	require.ErrorAs(t, err, &re)
	require.Equal(t, netip.MustParseAddr("127.0.0.1"), re.IP)
	require.ErrorContains(t, checkDialAddress("x", "[fe80::1%eth0]:80"), "link-local")
	require.ErrorContains(t, checkDialAddress("x", "not-an-address"), "cannot check")
}

func newServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	return srv, u.Host
}

func TestClientLoopback(t *testing.T) {
	srv, hostport := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	})
	host, _, _ := net.SplitHostPort(hostport)
	require.Equal(t, "127.0.0.1", host)

	_, err := Policy{}.Client(5 * time.Second).Get(srv.URL)
	require.ErrorContains(t, err, "refusing to connect to 127.0.0.1: loopback addresses are blocked")
	var re *RefusedError
	require.ErrorAs(t, err, &re)

	for _, allowed := range []string{"127.0.0.1", hostport} {
		resp, err := Policy{AllowedHosts: []string{allowed}}.Client(5 * time.Second).Get(srv.URL)
		require.NoError(t, err, allowed)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, "hello", string(body))
	}
}

// TestClientDialTimeCheck reaches the dial-time check through a host name
// ("localhost" resolves to loopback) with CheckURL bypassed, as it would be by
// a name that only resolves to a private address at connect time.
func TestClientDialTimeCheck(t *testing.T) {
	_, hostport := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	_, port, _ := net.SplitHostPort(hostport)
	c := Policy{}.Client(5 * time.Second)
	c.Transport = c.Transport.(checkingTransport).next // skip the early check
	_, err := c.Get("http://localhost:" + port + "/")
	require.ErrorContains(t, err, "refusing to connect to localhost (")
	require.ErrorContains(t, err, "loopback addresses are blocked")
}

func TestClientRedirects(t *testing.T) {
	_, otherHost := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "should not be reached")
	})
	var target string
	srv, hostport := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/blocked":
			http.Redirect(w, r, target, http.StatusFound)
		case "/metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
		case "/ok":
			http.Redirect(w, r, "/final", http.StatusFound)
		case "/final":
			io.WriteString(w, "final")
		default: // /loop/n redirects forever
			http.Redirect(w, r, r.URL.Path+"x", http.StatusFound)
		}
	})
	target = "http://" + otherHost + "/"

	// Only this server's host:port is allowed: a redirect to another port of
	// the same loopback address is refused.
	c := Policy{AllowedHosts: []string{hostport}}.Client(5 * time.Second)
	_, err := c.Get(srv.URL + "/blocked")
	require.ErrorContains(t, err, "refusing to connect to 127.0.0.1: the host is not in allowed_hosts")

	// With the loopback host allowed by name, metadata redirects are still refused.
	c = Policy{AllowedHosts: []string{"127.0.0.1"}}.Client(5 * time.Second)
	_, err = c.Get(srv.URL + "/metadata")
	require.ErrorContains(t, err, "169.254.169.254")

	resp, err := c.Get(srv.URL + "/ok")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, "final", string(body))

	_, err = c.Get(srv.URL + "/loop/")
	require.ErrorContains(t, err, "stopped after 5 redirects")
}

func TestClientIgnoresProxyEnvironment(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "direct") })
	resp, err := Policy{AllowedHosts: []string{"127.0.0.1"}}.Client(5 * time.Second).Get(srv.URL)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, "direct", string(body))
}

func TestRefusedErrorUnwrapsFromURLError(t *testing.T) {
	_, err := Policy{}.Client(time.Second).Get("http://10.1.2.3/")
	var ue *url.Error
	require.ErrorAs(t, err, &ue)
	var re *RefusedError
	require.True(t, errors.As(err, &re))
	require.True(t, strings.HasPrefix(re.Error(), "refusing to connect to 10.1.2.3: private"))
}

// TestDialerNeverConnectsToSpecialRanges goes through the real transport and
// dialer with the early URL check skipped, so the connect-time check is what
// refuses. The recording Control runs only for addresses the policy lets
// through, records them and fails, so nothing is ever connected to.
func TestDialerNeverConnectsToSpecialRanges(t *testing.T) {
	errRecorded := errors.New("recorded, not connected")
	var dialled []string
	d := &net.Dialer{Timeout: time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		dialled = append(dialled, address)
		return errRecorded
	}}
	c := &http.Client{Transport: Policy{}.transport(d)}
	for _, target := range []string{
		"192.0.0.170", "192.0.2.1", "192.88.99.1", "198.18.0.1", "198.51.100.7",
		"203.0.113.9", "240.0.0.1", "255.255.255.255", "100.64.0.1", "0.0.0.0",
	} {
		t.Run(target, func(t *testing.T) {
			_, err := c.Get("http://" + target + "/")
			var re *RefusedError
			require.ErrorAs(t, err, &re)
			require.Equal(t, target, re.IP.String())
		})
	}
	require.Empty(t, dialled)

	_, err := c.Get("http://8.8.8.8/")
	require.ErrorIs(t, err, errRecorded)
	require.Equal(t, []string{"8.8.8.8:80"}, dialled)
}
