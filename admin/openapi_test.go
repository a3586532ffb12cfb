package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/sendergate/sendergate/store/storetest"
)

// loadOpenAPI reads the document the server embeds.
func loadOpenAPI(t *testing.T) (raw []byte, doc map[string]any) {
	t.Helper()
	raw, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	return raw, doc
}

var methods = []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}

// documentedRoutes lists "METHOD /path" for every operation of the document.
func documentedRoutes(t *testing.T, doc map[string]any) []string {
	t.Helper()
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		t.Fatal("no paths object")
	}
	var out []string
	for p, item := range paths {
		for m := range item.(map[string]any) {
			if slices.Contains(methods, m) {
				out = append(out, strings.ToUpper(m)+" "+p)
			}
		}
	}
	sort.Strings(out)
	return out
}

var handleRE = regexp.MustCompile(`\.Handle(?:Func)?\("([A-Z]+) (/[^"]*)"`)

// registeredRoutes lists the method-bound patterns the package's non-test
// sources register on the mux (the "/" catch-all has no method).
func registeredRoutes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range handleRE.FindAllStringSubmatch(string(src), -1) {
			out = append(out, m[1]+" "+m[2])
		}
	}
	sort.Strings(out)
	return out
}

func TestOpenAPIDocument(t *testing.T) {
	_, doc := loadOpenAPI(t)
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Errorf("openapi = %q, want 3.x", v)
	}
	if doc["info"] == nil {
		t.Error("info missing")
	}
	var refs int
	walkRefs(doc, func(ref string) {
		refs++
		if !resolves(doc, ref) {
			t.Errorf("$ref %q does not resolve", ref)
		}
	})
	if refs < 50 {
		t.Errorf("only %d $refs: the document lost its components", refs)
	}
	schemes, _ := doc["components"].(map[string]any)["securitySchemes"].(map[string]any)
	bearer, _ := schemes["bearerAuth"].(map[string]any)
	if bearer["type"] != "http" || bearer["scheme"] != "bearer" {
		t.Errorf("bearerAuth = %v, want http bearer", bearer)
	}
	if sec, _ := json.Marshal(doc["security"]); string(sec) != `[{"bearerAuth":[]}]` {
		t.Errorf("global security = %s, want bearerAuth", sec)
	}
}

// TestOpenAPIOperations checks what every operation says: unauthenticated
// routes opt out of bearerAuth, the others document 401, path parameters
// are declared, and error responses use the Error schema.
func TestOpenAPIOperations(t *testing.T) {
	_, doc := loadOpenAPI(t)
	public := []string{"GET /healthz", "GET /v1/openapi.json", "GET /metrics", "POST /v1/confirm", "GET /confirm", "POST /confirm",
		"GET /", "GET /assets/{file}"}
	paramRE := regexp.MustCompile(`\{(\w+)\}`)
	for _, route := range documentedRoutes(t, doc) {
		method, path, _ := strings.Cut(route, " ")
		op := doc["paths"].(map[string]any)[path].(map[string]any)[strings.ToLower(method)].(map[string]any)
		sec, hasSec := op["security"].([]any)
		resp := op["responses"].(map[string]any)
		if slices.Contains(public, route) {
			if !hasSec || len(sec) != 0 {
				t.Errorf("%s: want security: [] (no bearer key)", route)
			}
		} else {
			if hasSec {
				t.Errorf("%s: overrides the global bearerAuth", route)
			}
			if resp["401"] == nil {
				t.Errorf("%s: no 401 response", route)
			}
		}
		var declared []string
		params, _ := op["parameters"].([]any)
		for _, p := range params {
			pm := p.(map[string]any)
			if r, ok := pm["$ref"].(string); ok {
				pm = lookup(doc, r).(map[string]any)
			}
			if pm["in"] == "path" {
				declared = append(declared, pm["name"].(string))
			}
		}
		for _, m := range paramRE.FindAllStringSubmatch(path, -1) {
			if !slices.Contains(declared, m[1]) {
				t.Errorf("%s: path parameter %s not declared", route, m[1])
			}
		}
		for code, r := range resp {
			if code[0] != '4' || path == "/confirm" {
				continue
			}
			b, _ := json.Marshal(r)
			if s := string(b); !strings.Contains(s, "#/components/schemas/Error") && !strings.Contains(s, "#/components/responses/") {
				t.Errorf("%s %s: error response without the Error schema: %s", route, code, s)
			}
		}
	}
}

func walkRefs(v any, fn func(string)) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "$ref" {
				fn(s)
			} else {
				walkRefs(e, fn)
			}
		}
	case []any:
		for _, e := range x {
			walkRefs(e, fn)
		}
	}
}

// lookup follows a local JSON pointer ("#/a/b"); nil when it leads nowhere.
func lookup(doc map[string]any, ref string) any {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	var cur any = doc
	for _, tok := range strings.Split(rest, "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[tok]
	}
	return cur
}

func resolves(doc map[string]any, ref string) bool { return lookup(doc, ref) != nil }

// TestOpenAPIMatchesRegisteredRoutes compares the document with the
// patterns in the sources, both ways, and asks the running server for
// every documented route: none may reach the "no such route" catch-all.
func TestOpenAPIMatchesRegisteredRoutes(t *testing.T) {
	_, doc := loadOpenAPI(t)
	documented := documentedRoutes(t, doc)
	registered := registeredRoutes(t)
	if len(registered) < 20 {
		t.Fatalf("found only %d registered routes in the sources: %v", len(registered), registered)
	}
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("registered but not documented: %s", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(registered, r) {
			t.Errorf("documented but not registered: %s", r)
		}
	}

	e := newEnv(t, storetest.SQLite(t), withMetrics(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("# metrics\n"))
	})))
	fill := strings.NewReplacer("{org}", "no-such-org", "{id}", "k1", "{name}", "app", "{domain}", "example.com",
		"{email}", "a@example.com")
	for _, route := range append(documented, "PATCH /v1/orgs", "GET /v1/nothing") {
		method, path, _ := strings.Cut(route, " ")
		r := e.do(method, fill.Replace(path), testAdminKey, "{}")
		reached := !isCatchAll(r)
		if want := slices.Contains(documented, route); reached != want {
			t.Errorf("%s: answered %d %s; want served by a handler: %v", route, r.status, r.body, want)
		}
	}
}

func isCatchAll(r response) bool {
	var body struct{ Error apiErr }
	return r.status == http.StatusNotFound && json.Unmarshal(r.body, &body) == nil &&
		strings.HasPrefix(body.Error.Message, "no such route")
}

func TestOpenAPIServed(t *testing.T) {
	raw, _ := loadOpenAPI(t)
	e := newEnv(t, storetest.SQLite(t))
	r := e.do("GET", "/v1/openapi.json", "", nil)
	r.must(t, http.StatusOK, nil)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if string(r.body) != string(raw) {
		t.Error("served document differs from openapi.json")
	}
}

// TestOpenAPIValidator validates the document with kin-openapi, an
// independent OpenAPI 3 implementation: schema, references, parameters.
func TestOpenAPIValidator(t *testing.T) {
	raw, _ := loadOpenAPI(t)
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatalf("openapi.json does not load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI 3 document: %v", err)
	}
}
