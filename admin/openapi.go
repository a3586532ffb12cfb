package admin

import (
	_ "embed"
	"net/http"
)

// openAPI is the OpenAPI 3 document of this API; a test checks that it
// lists exactly the routes the server registers.
//
//go:embed openapi.json
var openAPI []byte

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPI)
}
