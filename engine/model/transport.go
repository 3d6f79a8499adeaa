package model

import "net/http"

// maxIdlePerVendor is how many idle connections to one vendor host are kept
// for reuse. Go's default is 2: a server with dozens of runs in flight
// against one vendor would then close and reopen (and re-handshake TLS) most
// of its connections on every request. Measured on the run benchmark at 32
// concurrent runs, the churn cost ~10% of the server's CPU.
const maxIdlePerVendor = 128

// vendorTransport is shared by every provider that does not bring its own
// client, so agents using the same vendor share its connections.
var vendorTransport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 4 * maxIdlePerVendor
	t.MaxIdleConnsPerHost = maxIdlePerVendor
	return t
}()

// HTTPClient returns the client vendor adapters use by default: no overall
// timeout (a long stream is legitimate; each call's context bounds it) and a
// transport that keeps enough idle connections per vendor for a busy server.
func HTTPClient() *http.Client {
	return &http.Client{Transport: vendorTransport}
}
