package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// A real headless Chromium (Debian's chromium), driven over the DevTools
// protocol. Controls are found as a person (or a screen reader) finds
// them: by their role and accessible name in Chromium's accessibility
// tree, then clicked with the mouse or typed into with the keyboard.

// chromiumPath finds the browser; without one the test is skipped, except
// in CI where it is a failure (.ci/run installs it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI needs Chromium for the panel tests (Debian package chromium; .ci/run installs it)")
	}
	t.Skip("Chromium not found (apt-get install chromium): panel browser tests skipped")
	return ""
}

// request is one request the page made, as Chromium reports it.
type request struct {
	url, authorization string
}

// tab is one browser tab on the panel.
type tab struct {
	t        *testing.T
	ctx      context.Context
	base     string // http://ADMIN
	shots    string // where screenshots go
	n        int
	mu       sync.Mutex
	requests []request
	problems []string // uncaught exceptions, CSP violations, errors the browser logged
}

// screenshotDir is $SENDERGATE_SCREENSHOTS (created) or a temp dir.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SENDERGATE_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// openBrowser starts Chromium with one tab that records every request it
// makes. The whole browser session is bounded by timeout.
func openBrowser(t *testing.T, admin string, timeout time.Duration) *tab {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.WindowSize(1100, 650),
		chromedp.Flag("lang", "en-US"),
	)
	if os.Geteuid() == 0 { // CI runs as root; Chromium's sandbox refuses root
		opts = append(opts, chromedp.NoSandbox)
	}
	ctx, cancelTimeout := context.WithTimeout(context.Background(), timeout)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc(); cancelTimeout() })
	b := &tab{t: t, ctx: bctx, base: "http://" + admin, shots: screenshotDir(t)}
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("start Chromium: %v", err)
	}
	if err := chromedp.Listen(bctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			auth, _ := e.Request.Headers["Authorization"].(string)
			b.requests = append(b.requests, request{url: e.Request.URL + e.Request.URLFragment, authorization: auth})
		case *runtime.EventExceptionThrown:
			b.problems = append(b.problems, "uncaught: "+e.ExceptionDetails.Text+" "+exceptionDescription(e))
		case *cdplog.EventEntryAdded:
			// Refused API calls (401, 422, ...) are logged as network
			// errors: those are the test's own doing.
			if e.Entry.Level == cdplog.EntryLevelError && e.Entry.Source != cdplog.EntrySourceNetwork {
				b.problems = append(b.problems, string(e.Entry.Source)+": "+e.Entry.Text)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	// The Copy buttons write to the clipboard; the test reads it back.
	for _, perm := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(bctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: perm, AllowWithoutSanitization: true},
			Setting:    browser.PermissionSettingGranted, Origin: b.base,
		}); err != nil {
			t.Fatalf("grant %s: %v", perm, err)
		}
	}
	return b
}

func (b *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v\npage text:\n%s", err, b.pageText())
	}
}

// pageText is what the page shows, for failure messages; it also saves a
// screenshot of it.
func (b *tab) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		b.t.Logf("screenshot of the failure: %s", b.save("failure", png))
	}
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	return s
}

// eval runs a JavaScript expression in the page and decodes its value.
func eval[T any](b *tab, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v\npage text:\n%s", expr, err, b.pageText())
	}
	return v
}

// waitFor waits until the expression is truthy (at most 10 s).
func (b *tab) waitFor(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+expr+")", chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		b.t.Fatalf("waiting for %s: %v\npage text:\n%s", what, err, b.pageText())
	}
}

// text returns the text of the element the CSS selector names.
func (b *tab) text(css string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(`(document.querySelector(%q) || {textContent: ""}).textContent.trim().replace(/\s+/g, " ")`, css))
}

// byRole finds elements by their role and accessible name in Chromium's
// accessibility tree, within the element scope names (CSS; "" = the whole
// document). Role "" matches any role. Hidden elements do not match.
func byRole(role, name, scope string) chromedp.QueryOption {
	return chromedp.ByFunc(func(ctx context.Context, t *chromedp.Target, n *chromedp.Node) ([]cdp.NodeID, error) {
		root := n.NodeID
		if scope != "" {
			r, err := cdp.Call(ctx, t, dom.QuerySelector, dom.QuerySelectorParams{NodeID: n.NodeID, Selector: scope})
			if err != nil || r.NodeID == 0 {
				return nil, err
			}
			root = r.NodeID
		}
		found, err := cdp.Call(ctx, t, accessibility.QueryAXTree, accessibility.QueryAXTreeParams{NodeID: root, AccessibleName: name, Role: role})
		if err != nil {
			return nil, err
		}
		var ids []cdp.BackendNodeID
		for _, ax := range found.Nodes {
			if !ax.Ignored && ax.BackendDOMNodeID != 0 {
				ids = append(ids, ax.BackendDOMNodeID)
			}
		}
		if len(ids) == 0 {
			return nil, nil
		}
		pushed, err := cdp.Call(ctx, t, dom.PushNodesByBackendIDsToFrontend, dom.PushNodesByBackendIDsToFrontendParams{BackendNodeIDs: ids})
		return pushed.NodeIDs, err
	})
}

// click clicks, with the mouse, the control with this role and name.
func (b *tab) click(role, name string) { b.clickIn("", role, name) }

func (b *tab) clickIn(scope, role, name string) {
	b.t.Helper()
	b.do(chromedp.Click(fmt.Sprintf("%s %q in %q", role, name, scope), byRole(role, name, scope)))
}

// submitPage clicks a button that submits a page's form (a navigation)
// and returns the HTTP status of the page it leads to.
func (b *tab) submitPage(role, name string) int64 {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Click(fmt.Sprintf("%s %q", role, name), byRole(role, name, "")))
	if err != nil {
		b.t.Fatalf("%s %q: %v\npage text:\n%s", role, name, err, b.pageText())
	}
	return resp.Status
}

// fill replaces the text of the field labelled label by typing text.
func (b *tab) fill(role, label, text string) {
	b.t.Helper()
	sel := fmt.Sprintf("%s %q", role, label)
	b.do(chromedp.Focus(sel, byRole(role, label, "")),
		chromedp.KeyEvent("a", chromedp.KeyModifiers(chromedp.ModifierCtrl)), // select what is there: typing replaces it
		chromedp.KeyEvent(text))
}

// choose picks the option whose text starts with option in the select
// labelled label, with the keyboard: focus it, then arrow down or up.
func (b *tab) choose(label, option string) {
	b.t.Helper()
	sel := fmt.Sprintf("combobox %q", label)
	b.do(chromedp.Focus(sel, byRole("combobox", label, "")))
	steps := eval[int](b, fmt.Sprintf(`(() => { const s = document.activeElement;
		const i = Array.from(s.options).findIndex(o => o.text.startsWith(%q));
		return i < 0 ? 1000 : i - s.selectedIndex; })()`, option))
	if steps == 1000 {
		b.t.Fatalf("select %q has no option %q", label, option)
	}
	key := kb.ArrowDown
	if steps < 0 {
		key, steps = kb.ArrowUp, -steps
	}
	b.do(chromedp.KeyEvent(strings.Repeat(key, steps)))
}

// press sends keys to whatever has the focus (kb.Tab, kb.Enter, " ").
func (b *tab) press(keys string) { b.t.Helper(); b.do(chromedp.KeyEvent(keys)) }

// shot saves a full-page PNG of what the page shows now.
func (b *tab) shot(name string) string {
	b.t.Helper()
	buf, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	return b.save(name, buf)
}

// shotOf saves a PNG of one element, without the transient notice that
// floats over the page (it would cover part of the element).
func (b *tab) shotOf(css, name string) string {
	b.t.Helper()
	eval[bool](b, `(document.getElementById("notice").textContent = "") === ""`)
	buf, err := chromedp.Run(b.ctx, chromedp.Screenshot(chromedp.CSS(css)))
	if err != nil {
		b.t.Fatalf("screenshot of %s: %v", css, err)
	}
	return b.save(name, buf)
}

func (b *tab) save(name string, png []byte) string {
	b.t.Helper()
	b.n++
	path := filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.n, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return path
}

func exceptionDescription(e *runtime.EventExceptionThrown) string {
	if e.ExceptionDetails.Exception != nil {
		return e.ExceptionDetails.Exception.Description
	}
	return ""
}

// pageProblems returns the exceptions and logged errors so far.
func (b *tab) pageProblems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// madeRequests returns the requests so far.
func (b *tab) madeRequests() []request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]request(nil), b.requests...)
}

// interactiveRoles are the roles of controls that must have a name.
var interactiveRoles = map[string]bool{
	"button": true, "link": true, "textbox": true, "checkbox": true, "radio": true, "combobox": true,
	"spinbutton": true, "searchbox": true, "listbox": true, "menuitem": true, "tab": true, "switch": true,
	"DisclosureTriangle": true,
}

// checkAccessibility checks the view as it is shown: every control in
// Chromium's accessibility tree has a name, every form field of the page
// (shown or not) has a label, and pressing Tab from the top reaches every
// visible control, each with a visible focus indicator.
func (b *tab) checkAccessibility(view string) {
	b.t.Helper()
	tree, err := chromedp.Call(b.ctx, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
	if err != nil {
		b.t.Fatal(err)
	}
	for _, n := range tree.Nodes {
		if n.Ignored || n.Role == nil {
			continue
		}
		var role, name string
		_ = json.Unmarshal(n.Role.Value, &role)
		if n.Name != nil {
			_ = json.Unmarshal(n.Name.Value, &name)
		}
		if interactiveRoles[role] && strings.TrimSpace(name) == "" {
			b.t.Errorf("%s: a %s without an accessible name (DOM node %d)", view, role, n.BackendDOMNodeID)
		}
	}
	unlabelled := eval[[]string](b, `Array.from(document.querySelectorAll("input, select, textarea"))
		.filter(e => e.type !== "hidden" && e.labels.length === 0 && !e.getAttribute("aria-label") && !e.getAttribute("aria-labelledby"))
		.map(e => e.outerHTML)`)
	for _, u := range unlabelled {
		b.t.Errorf("%s: a form field without a label: %s", view, u)
	}

	// Number the visible controls in document order, then Tab through
	// them from the skip link, the first control of every page.
	count := eval[int](b, `(() => {
		const sel = 'a[href], button, input, select, textarea, summary, [tabindex]:not([tabindex="-1"])';
		let i = 0;
		for (const e of document.querySelectorAll(sel)) {
			delete e.dataset.tabcheck;
			if (e.disabled || e.tabIndex < 0 || e.getClientRects().length === 0 || e.closest("[inert], dialog:not([open])")) continue;
			if (e.type === "radio" && !e.checked && document.querySelector('input[type=radio][name="' + e.name + '"]:checked')) continue; // one stop per radio group
			e.dataset.tabcheck = String(i++);
		}
		document.querySelector(".skip").focus(); // the first stop of every page
		return i;
	})()`)
	reached := map[string]bool{"0": true}
	for i := 0; i < count+5 && len(reached) < count; i++ {
		b.press(kb.Tab)
		f := eval[struct {
			Idx     string `json:"idx"`
			Outline string `json:"outline"`
			Desc    string `json:"desc"`
		}](b, `(() => { const e = document.activeElement; const s = getComputedStyle(e);
			return {idx: e.dataset.tabcheck || "", outline: s.outlineStyle + " " + s.outlineWidth, desc: e.outerHTML.slice(0, 120)}; })()`)
		if f.Idx == "" {
			continue
		}
		reached[f.Idx] = true
		if strings.HasPrefix(f.Outline, "none") || strings.HasSuffix(f.Outline, " 0px") {
			b.t.Errorf("%s: no visible focus (outline %s) on %s", view, f.Outline, f.Desc)
		}
	}
	b.t.Logf("%s: %d controls checked (name, label, Tab, focus)", view, count)
	if len(reached) < count {
		missed := eval[[]string](b, fmt.Sprintf(`Array.from(document.querySelectorAll("[data-tabcheck]"))
			.filter(e => !%s.includes(e.dataset.tabcheck)).map(e => e.outerHTML.slice(0, 120))`, jsStrings(reached)))
		b.t.Errorf("%s: Tab reached %d of %d controls; never: %v", view, len(reached), count, missed)
	}
}

func jsStrings(set map[string]bool) string {
	var xs []string
	for k := range set {
		xs = append(xs, k)
	}
	j, _ := json.Marshal(xs)
	return string(j)
}
