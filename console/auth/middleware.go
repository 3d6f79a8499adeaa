package auth

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// Error is a request the middleware refused: 401 without a valid key, 403
// without a scope or for a cross-origin write. Its message is for the
// client.
type Error struct {
	Status int
	Msg    string
	// Scope is the scope a 403 for a missing scope lacks.
	Scope Scope
}

func (e *Error) Error() string { return e.Msg }

// StatusCode is the HTTP status the refusal is answered with.
func (e *Error) StatusCode() int { return e.Status }

// Deny answers a request the middleware turned away, in the format of the
// route group (the API's JSON error, a console page) and aborts it.
type Deny func(c *gin.Context, err *Error)

// set records the caller for the handlers and the middleware after.
func set(c *gin.Context, p Principal) { c.Set(principalKey, p) }

// Bearer resolves the caller of an API route from "Authorization: Bearer"
// or X-API-Key, refusing with 401 when there is no valid key. With no keys
// the server runs open and everyone is let through.
func Bearer(keys *Keyring, deny Deny) gin.HandlerFunc {
	return func(c *gin.Context) {
		if keys.Len() == 0 {
			set(c, Principal{})
			return
		}
		token := bearer(c.GetHeader("Authorization"))
		if token == "" {
			token = c.GetHeader("X-API-Key")
		}
		k, ok := keys.Lookup(token)
		if !ok {
			c.Header("WWW-Authenticate", `Bearer realm="troupe"`)
			msg := "missing API key: send Authorization: Bearer <key>"
			if token != "" {
				msg = "invalid API key"
			}
			deny(c, &Error{Status: http.StatusUnauthorized, Msg: msg})
			return
		}
		set(c, Principal{key: k})
	}
}

func bearer(h string) string {
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// Require refuses with 403 callers that lack scope. It runs after Bearer or
// Cookie.
func Require(scope Scope, deny Deny) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !Of(c).Has(scope) {
			deny(c, &Error{Status: http.StatusForbidden, Msg: fmt.Sprintf("this API key lacks the %s scope", scope), Scope: scope})
		}
	}
}

// CookieName is the cookie that holds the API key a console user signed in
// with. It is HttpOnly (scripts cannot read it) and SameSite=Strict, and
// only Cookie honours it: the API's routes, which allow other origins
// through CORS, never do.
const CookieName = "troupe_key"

// cookieAge is how long a console sign-in lasts.
const cookieAge = 7 * 24 * time.Hour

// Cookie resolves the caller of a console route from the key cookie (or an
// Authorization header, for scripts). Without a valid key it calls signIn,
// which sends the user to sign in and aborts the request.
func Cookie(keys *Keyring, signIn gin.HandlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		if keys.Len() == 0 {
			set(c, Principal{})
			return
		}
		token := bearer(c.GetHeader("Authorization"))
		if token == "" {
			token, _ = c.Cookie(CookieName)
		}
		if k, ok := keys.Lookup(token); ok {
			set(c, Principal{key: k})
			return
		}
		signIn(c)
	}
}

// SetCookie signs the browser in with key; secure marks the cookie for
// HTTPS only, for requests that came over TLS.
func SetCookie(w http.ResponseWriter, key string, secure bool) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: key, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: secure, MaxAge: int(cookieAge.Seconds())})
}

// ClearCookie signs the browser out.
func ClearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// CSRF refuses cross-origin writes (403), using the browser's Sec-Fetch-Site
// and Origin headers. Both call a request same-origin when the page came from
// the Host it is sent to, which proves nothing about a Host an attacker named
// and pointed at this server (DNS rebinding): the server's host check must
// refuse those before this runs.
func CSRF(deny Deny) gin.HandlerFunc {
	csrf := http.NewCrossOriginProtection()
	return func(c *gin.Context) {
		if err := csrf.Check(c.Request); err != nil {
			deny(c, &Error{Status: http.StatusForbidden, Msg: "cross-origin request refused: " + err.Error()})
		}
	}
}

// Document resolves the caller of an API page that people open in a
// browser (GET /docs). A request with a key header is an API call and gets
// Bearer's answer. A top-level navigation (Sec-Fetch-Dest: document, or an
// older browser asking for HTML) may use the console's sign-in cookie
// instead, and without a valid one is sent to sign in: a signed-in browser
// got a JSON 401 before. Fetches from scripts never use the cookie, so an
// origin allowed by CORS still cannot read the page with it.
func Document(keys *Keyring, deny Deny, signIn gin.HandlerFunc) gin.HandlerFunc {
	api := Bearer(keys, deny)
	return func(c *gin.Context) {
		if keys.Len() == 0 || c.GetHeader("Authorization") != "" || c.GetHeader("X-API-Key") != "" || !navigation(c.Request) {
			api(c)
			return
		}
		token, _ := c.Cookie(CookieName)
		if k, ok := keys.Lookup(token); ok {
			set(c, Principal{key: k})
			return
		}
		signIn(c)
	}
}

// navigation reports whether r is a browser loading a page, not a script's
// fetch.
func navigation(r *http.Request) bool {
	if dest := r.Header.Get("Sec-Fetch-Dest"); dest != "" {
		return dest == "document" && r.Header.Get("Sec-Fetch-Mode") == "navigate"
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}
