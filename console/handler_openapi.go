package console

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// openapi answers GET /openapi.json with a document generated from the live
// snapshot.
func (s *Server) openapi(c *gin.Context) {
	c.JSON(http.StatusOK, s.openAPIDocument(s.opts.Engine.Current()))
}

// docs answers GET /docs with a readable page rendered from the same document.
func (s *Server) docs(c *gin.Context) {
	c.Data(http.StatusOK, "text/html; charset=utf-8", renderDocs(s.openAPIDocument(s.opts.Engine.Current())))
}
