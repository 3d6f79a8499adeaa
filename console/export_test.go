package console

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/troupehq/troupe/console/ui/view"
)

// APIDocsBuilds is how many times s built its OpenAPI document and docs
// page.
func APIDocsBuilds(s *Server) int { return s.api.DocsBuilds() }

// MaxShownText is view.MaxShownText, for the tests outside the package.
const MaxShownText = view.MaxShownText

// Handler is s's router, for in-process requests (the fuzz test).
func Handler(s *Server) http.Handler { return s.router }

// Routes are the routes s registers, for the OpenAPI coverage test.
func Routes(s *Server) gin.RoutesInfo { return s.router.Routes() }
