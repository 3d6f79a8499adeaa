package auth

import "github.com/gin-gonic/gin"

// Principal is who is calling: a key, or anyone when the server runs open.
// The zero value is the open server's caller, who may do everything.
type Principal struct {
	key *Key // nil when open
}

// principalKey is where the middleware keeps the Principal in a gin.Context.
const principalKey = "troupe.principal"

// Of returns the caller of a request the middleware has let through.
func Of(c *gin.Context) Principal {
	p, _ := c.Get(principalKey)
	pr, _ := p.(Principal)
	return pr
}

// Has reports whether the caller may act with scope.
func (p Principal) Has(s Scope) bool { return p.key == nil || p.key.Has(s) }

// UserID returns the user the caller acts as: a key's bound user wins over the
// user_id a request asks for; an unbound key (or open server) may act as any.
func (p Principal) UserID(requested string) string {
	if p.key != nil && p.key.UserID != "" {
		return p.key.UserID
	}
	return requested
}

// Bound reports whether the caller's key is tied to a user.
func (p Principal) Bound() bool { return p.key != nil && p.key.UserID != "" }

// Key returns the caller's key, or nil when the server runs open.
func (p Principal) Key() *Key { return p.key }
