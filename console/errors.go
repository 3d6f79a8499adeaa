package console

import (
	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/auth"
)

func abort(c *gin.Context, status int, detail string) {
	c.AbortWithStatusJSON(status, errorBody{Detail: detail})
}

// denyJSON answers a request the API's middleware refused.
func denyJSON(c *gin.Context, err *auth.Error) { abort(c, err.Status, err.Msg) }

// require refuses API callers without scope.
func require(scope auth.Scope) gin.HandlerFunc { return auth.Require(scope, denyJSON) }
