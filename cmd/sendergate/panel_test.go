package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/sendergate/sendergate/internal/dnstest"
	"github.com/sendergate/sendergate/internal/tcpfwd"
	"github.com/sendergate/sendergate/relay/relaytest"
	"github.com/sendergate/sendergate/store/storetest"
)

// panelRecord is a row of the records table, as the page shows it.
type panelRecord struct {
	Purpose string `json:"purpose"`
	Host    string `json:"host"`
	Type    string `json:"type"`
	Value   string `json:"value"`
	Status  string `json:"status"`
}

const readRecords = `Array.from(document.querySelectorAll("#records-table tbody tr[data-purpose]")).map(tr => ({
	purpose: tr.dataset.purpose, host: tr.querySelector("td.host code").textContent,
	type: tr.children[1].textContent, value: tr.querySelector("td.value code").textContent,
	status: tr.children[3].querySelector(".badge").textContent}))`

// noKeyInPage fails when the key is anywhere in the page's HTML.
func (b *tab) noKeyInPage(key, where string) {
	b.t.Helper()
	if strings.Contains(eval[string](b, `document.documentElement.outerHTML`), key) {
		b.t.Errorf("%s: the key is in the page's HTML", where)
	}
}

// TestPanelWorkflow does, in a real Chromium against the real binary, what
// an organization does in the panel: sign in with its key, create SMTP
// accounts, add a domain with Advanced Settings, copy the records into its
// DNS (the test customer DNS), verify, grant one account (and SMTP then
// refuses the other), add an address and confirm it through the
// confirmation page's button, delete the domain, sign out. It checks the
// accessibility of each view, that the page talks only to the admin
// listener, and that the key is in no URL, no log line and no page HTML.
func TestPanelWorkflow(t *testing.T) {
	chromiumPath(t)
	t.Parallel()
	up := relaytest.NewServer(t)
	cust := dnstest.NewServer(t)
	in := startDaemon(t, daemonOpts{upstream: up.Addr, customer: cust})
	adminKey := in.adminKey(t)
	if code := in.call(t, adminKey, "POST", "/v1/orgs", `{"name":"acme"}`, nil); code != 201 {
		t.Fatalf("create org: %d", code)
	}
	var k struct{ ID, Key string }
	if code := in.call(t, adminKey, "POST", "/v1/orgs/acme/keys", "", &k); code != 201 {
		t.Fatalf("create org key: %d", code)
	}
	key := k.Key

	b := openBrowser(t, in.admin, 90*time.Second)
	t.Logf("screenshots in %s", b.shots)

	// Sign in: a wrong key is refused next to the field, the right one
	// opens the organization (an organization key needs no choice).
	b.do(chromedp.Navigate(b.base + "/"))
	b.waitFor("the sign-in form", `!document.getElementById("view-signin").hidden`)
	b.press(kb.Tab)
	if got := eval[string](b, `document.activeElement.className`); got != "skip" {
		t.Errorf("the first Tab stop is %q, want the skip link", got)
	}
	b.shot("sign-in")
	b.checkAccessibility("sign-in")
	b.fill("textbox", "API key", "sgk_nosuchkey.0123456789")
	b.click("button", "Sign in")
	b.waitFor("the refusal", `document.getElementById("signin-key-error").textContent.includes("not accepted")`)
	b.fill("textbox", "API key", key)
	b.press(kb.Enter)
	b.waitFor("the domain list", `!document.getElementById("view-domains").hidden && document.querySelector("#domain-table tr[data-domain]")`)
	if got := b.text(`#domain-table tr[data-domain="acme.sandbox.sg.localhost"]`); !strings.Contains(got, "Sandbox") || !strings.Contains(got, "Verified") {
		t.Errorf("sandbox row = %q, want it marked Sandbox and Verified", got)
	}
	if got := b.text("#org-name"); got != "acme" {
		t.Errorf("organization shown = %q", got)
	}
	b.noKeyInPage(key, "domain list")
	b.checkAccessibility("domain list")

	// The sandbox domain's Preview: nothing to publish, verify or delete,
	// and its access cannot be restricted, with the reason.
	b.clickIn(`#domain-table tr[data-domain="acme.sandbox.sg.localhost"]`, "button", "Preview")
	b.waitFor("the sandbox preview", `!document.getElementById("view-domain").hidden && document.getElementById("domain-title").textContent === "acme.sandbox.sg.localhost"`)
	if got := b.text("#access-body"); !strings.Contains(got, "cannot be restricted") {
		t.Errorf("sandbox access = %q, want why it cannot be restricted", got)
	}
	if eval[bool](b, `!document.getElementById("verify").hidden || !document.getElementById("delete-domain").hidden`) {
		t.Error("the sandbox domain offers Verify or Delete")
	}
	b.click("button", "All domains")

	// SMTP accounts: each password is shown once, can be copied, and
	// leaves the page when the user is done.
	b.click("button", "SMTP accounts")
	b.waitFor("the accounts view", `!document.getElementById("view-accounts").hidden`)
	type account struct{ user, pass string }
	accounts := map[string]account{}
	for _, name := range []string{"billing-app", "marketing-app"} {
		b.fill("textbox", "Account name", name)
		b.click("button", "Create account")
		b.waitFor("the password of "+name, `!document.getElementById("secret").hidden && document.getElementById("secret-password").textContent.length >= 26`)
		a := account{b.text("#secret-username"), b.text("#secret-password")}
		if a.user != name+"@acme" || !strings.Contains(b.text("#secret"), "shown only once") {
			t.Errorf("%s: username %q, notice %q", name, a.user, b.text("#secret"))
		}
		if name == "billing-app" {
			b.clickIn("#secret dd:nth-of-type(2)", "button", "Copy")
			if got := eval[string](b, `navigator.clipboard.readText()`); got != a.pass {
				t.Errorf("Copy put %q on the clipboard, want the password", got)
			}
			b.checkAccessibility("a new account's password")
		}
		b.click("button", "I have stored the password")
		b.waitFor("the password to go", `document.getElementById("secret").hidden`)
		if strings.Contains(eval[string](b, `document.documentElement.outerHTML`), a.pass) {
			t.Errorf("%s: the password stays in the page after the user is done", name)
		}
		accounts[name] = a
	}
	b.waitFor("both accounts listed", `document.querySelectorAll("#account-table tr[data-account]").length === 2`)
	b.checkAccessibility("SMTP accounts")

	// + Add Domain with Advanced Settings. Errors of the API show next to
	// the field they name, as text (a name that is markup stays text).
	b.click("button", "Domains")
	b.click("button", "+ Add Domain")
	b.waitFor("the add form", `!document.getElementById("view-add").hidden`)
	if eval[bool](b, `document.getElementById("advanced").open`) {
		t.Error("Advanced Settings is open before the user opens it")
	}
	b.fill("textbox", "Domain name", `<img src=x id=pwn>`)
	b.click("button", "Next")
	b.waitFor("the name error", `!document.getElementById("add-name-error").hidden`)
	if got := b.text("#add-name-error"); got == "" || eval[bool](b, `document.getElementById("pwn") !== null`) {
		t.Errorf("name error %q; markup in the input must stay text", got)
	}
	if !eval[bool](b, `document.getElementById("add-name").getAttribute("aria-invalid") === "true"`) {
		t.Error("the domain name field is not marked invalid")
	}
	b.fill("textbox", "Domain name", "news.example.com")
	b.do(chromedp.Focus("Advanced Settings", byRole("", "Advanced Settings", "#add-form")))
	b.press(kb.Enter) // opens with the keyboard
	b.waitFor("Advanced Settings to open", `document.getElementById("advanced").open`)
	b.fill("textbox", "Return Path label", "mailing")
	if got := b.text("#return-path-preview"); got != "mailing.news.example.com" {
		t.Errorf("return path preview = %q", got)
	}
	b.fill("textbox", "Tracking subdomain label", "click")
	b.fill("textbox", "DKIM selector", "ab")
	b.choose("DMARC policy", "none")
	if !eval[bool](b, `document.getElementById("add-dmarc-pct").disabled && !document.getElementById("add-dmarc-rua").disabled`) {
		t.Error("with DMARC policy none, PCT must be disabled and RUA enabled")
	}
	b.choose("DMARC policy", "quarantine")
	if got := eval[string](b, `document.getElementById("add-dmarc-policy").value`); got != "quarantine" {
		t.Fatalf("DMARC policy = %q after choosing quarantine", got)
	}
	b.fill("textbox", "RUA address (aggregate reports)", "dmarc@example.com")
	b.fill("spinbutton", "PCT (percent of failing mail the policy applies to)", "50")
	b.click("button", "Next")
	b.waitFor("the selector error", `!document.getElementById("add-selector-error").hidden`)
	if got := b.text("#add-selector-error"); !strings.Contains(got, "3 to 7") {
		t.Errorf("selector error = %q", got)
	}
	b.fill("textbox", "DKIM selector", "mkt1")
	b.shotOf("#view-add", "add-form-advanced")
	b.checkAccessibility("add form, Advanced Settings open")
	b.click("button", "Next")
	b.waitFor("the new domain", `!document.getElementById("view-domain").hidden && document.getElementById("domain-title").textContent === "news.example.com"`)

	// The records: read from the page, copied, published, verified.
	recs := eval[[]panelRecord](b, readRecords)
	want := map[string]string{"mkt1._domainkey.news.example.com": "dkim", "mkt1b._domainkey.news.example.com": "dkim",
		"mailing.news.example.com": "return_path", "click.news.example.com": "tracking", "_dmarc.news.example.com": "dmarc"}
	if len(recs) != len(want) {
		t.Fatalf("records table: %+v", recs)
	}
	for _, r := range recs {
		if want[r.Host] != r.Purpose || r.Type != "CNAME" || !strings.HasSuffix(r.Value, ".sg.localhost") || r.Status != "Not checked yet" {
			t.Errorf("record %+v", r)
		}
	}
	if got := b.text("#domain-badge"); got != "Pending" {
		t.Errorf("new domain badge = %q, want Pending", got)
	}
	b.shot("records-pending")
	// Verify before publishing: each record says what is wrong, in words.
	b.click("button", "Verify")
	b.waitFor("the check", `document.querySelectorAll("#records-table .record-reason").length === 5`)
	for _, r := range eval[[]panelRecord](b, readRecords) {
		if r.Status != "Missing" {
			t.Errorf("unpublished record %s: %s, want Missing", r.Host, r.Status)
		}
	}
	if got := b.text(`#records-table tr[data-purpose="dkim"] .record-reason`); !strings.Contains(got, recs[0].Host) || !strings.Contains(got, recs[0].Value) {
		t.Errorf("reason for the missing DKIM record = %q, want what is expected where", got)
	}
	b.shotOf("#records-card", "records-missing")
	b.clickIn(`#records-table tr[data-purpose="dkim"] td.value`, "button", "Copy")
	if got := eval[string](b, `navigator.clipboard.readText()`); got != recs[0].Value {
		t.Errorf("Copy of the DKIM value put %q on the clipboard, want %q", got, recs[0].Value)
	}
	b.click("button", "Copy all as a zone-file snippet")
	snippet := eval[string](b, `navigator.clipboard.readText()`)
	published := 0
	for _, line := range strings.Split(strings.TrimSpace(snippet), "\n") {
		line, _, _ = strings.Cut(line, ";") // comments
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 5 || f[2] != "IN" || f[3] != "CNAME" || !strings.HasSuffix(f[0], ".") {
			t.Fatalf("zone-file line %q", line)
		}
		cust.PublishCNAME(strings.TrimSuffix(f[0], "."), strings.TrimSuffix(f[4], "."))
		published++
	}
	if published != 5 {
		t.Fatalf("the zone-file snippet has %d records:\n%s", published, snippet)
	}
	b.click("button", "Verify")
	b.waitFor("Verified", `document.getElementById("domain-badge").textContent.includes("Verified")`)
	for _, r := range eval[[]panelRecord](b, readRecords) {
		if r.Status != "OK" {
			t.Errorf("after Verify, record %s: %s", r.Host, r.Status)
		}
	}
	if got := b.text("#events"); !strings.Contains(got, "Verified") || !strings.Contains(got, "Added") {
		t.Errorf("events timeline = %q", got)
	}
	b.shotOf("#records-card", "records-verified")

	// DKIM keys: the one signing and the next one published at the second
	// selector; Rotate now switches to it (after sendergate checked the
	// customer's CNAME resolves to it) and the old key shows as retired,
	// still published, with the date it stops being.
	b.waitFor("the DKIM keys", `document.querySelector("#dkim-table tr[data-state=next]") !== null`)
	if got := b.text(`#dkim-table tr[data-state="active"]`); !strings.Contains(got, "Signing") || !strings.Contains(got, "mkt1") || strings.Contains(got, "mkt1b") {
		t.Errorf("active key row = %q, want Signing with mkt1", got)
	}
	if got := b.text(`#dkim-table tr[data-state="next"]`); !strings.Contains(got, "mkt1b") {
		t.Errorf("next key row = %q, want mkt1b", got)
	}
	if got := b.text("#dkim-rotation"); !strings.Contains(got, "possible now") {
		t.Errorf("rotation = %q, want it possible now", got)
	}
	b.click("button", "Rotate now")
	b.waitFor("the rotation", `document.querySelector("#dkim-table tr[data-state=retired]") !== null`)
	if got := b.text(`#dkim-table tr[data-state="active"]`); !strings.Contains(got, "mkt1b") || !strings.Contains(got, "Signing since") {
		t.Errorf("after Rotate now, active key row = %q, want mkt1b signing", got)
	}
	if got := b.text(`#dkim-table tr[data-state="retired"]`); !strings.Contains(got, "mkt1") || !strings.Contains(got, "Published until") {
		t.Errorf("retired key row = %q, want mkt1 published until a date", got)
	}
	if got := b.text("#dkim-rotation"); !strings.Contains(got, "possible from") || !eval[bool](b, `document.getElementById("rotate").hidden`) {
		t.Errorf("rotation after the switch = %q (Rotate now hidden: %v), want waiting for the retired key", got, eval[bool](b, `document.getElementById("rotate").hidden`))
	}
	if got := b.text("#events"); !strings.Contains(got, "DKIM key rotated") {
		t.Errorf("events after the rotation = %q", got)
	}
	b.shotOf("#dkim-card", "dkim-rotated")
	b.checkAccessibility("DKIM keys after a rotation")

	// Access: grant billing-app only; SMTP then refuses marketing-app.
	if !eval[bool](b, `document.getElementById("access-all").checked`) {
		t.Error("a new domain's access is not all accounts")
	}
	b.click("radio", "Only the accounts ticked below")
	b.click("checkbox", "billing-app")
	b.click("button", "Save access")
	b.waitFor("the saved access", `document.getElementById("access-now").textContent.includes("only billing-app")`)
	b.shotOf("#access", "access")
	b.checkAccessibility("domain preview")
	b.noKeyInPage(key, "domain preview")

	// A limit set through the API, for the Usage view to show against.
	if code := in.call(t, key, "PUT", "/v1/orgs/acme/smtp-accounts/billing-app/limits", `{"per_hour":50}`, nil); code != 200 {
		t.Fatalf("set billing-app's limits: %d", code)
	}
	if err := submit(t, in.smtp, accounts["billing-app"].user, accounts["billing-app"].pass, "news@news.example.com", "x@example.org", "granted"); err != nil {
		t.Errorf("the granted account: %v", err)
	}
	err := submit(t, in.smtp, accounts["marketing-app"].user, accounts["marketing-app"].pass, "news@news.example.com", "x@example.org", "not granted")
	if code, text := smtpCode(err); code != 550 || !strings.HasPrefix(text, "5.7.1") || !strings.Contains(text, "news.example.com is not granted") {
		t.Errorf("the ungranted account: %d %s", code, text)
	}

	checkUsageView(t, b, in, key)

	// Email addresses: the API's 422 explained next to the field; an
	// address confirmed through the confirmation page's button.
	b.click("button", "Email addresses")
	b.waitFor("the addresses view", `!document.getElementById("view-addresses").hidden`)
	b.fill("textbox", "Email address", "someone@unverified.example")
	b.click("button", "Add address")
	b.waitFor("the 422", `!document.getElementById("address-email-error").hidden`)
	if got := b.text("#address-email-error"); !strings.Contains(got, "cannot be added yet") || !strings.Contains(got, "unverified.example") || !strings.Contains(got, "verified") {
		t.Errorf("422 explanation = %q", got)
	}
	up.ClearMessages()
	b.fill("textbox", "Email address", "contact@news.example.com")
	b.click("button", "Add address")
	b.waitFor("the pending address", `(document.querySelector('#address-table tr[data-email="contact@news.example.com"]') || {textContent: ""}).textContent.includes("Pending")`)
	msgs := up.Messages()
	if len(msgs) != 1 {
		t.Fatalf("confirmation mail: %d messages", len(msgs))
	}
	link := regexp.MustCompile(`http://[^\s"<>]+/confirm\?token=[A-Za-z0-9_-]+`).Find(msgs[0].Data)
	if link == nil {
		t.Fatalf("no link in:\n%s", msgs[0].Data)
	}
	b.do(chromedp.Navigate(string(link)))
	b.waitFor("the confirmation page", `document.querySelector("h1") && document.querySelector("h1").textContent.includes("Confirm")`)
	b.shot("confirm-page")
	if status := b.submitPage("button", "Confirm"); status != 200 {
		t.Errorf("pressing Confirm: HTTP %d", status)
	}
	b.waitFor("the confirmation", `document.querySelector("h1") && document.querySelector("h1").textContent === "Address confirmed"`)
	b.do(chromedp.Navigate(b.base + "/#addresses")) // the tab still holds the key
	b.waitFor("the confirmed address", `(document.querySelector('#address-table tr[data-email="contact@news.example.com"]') || {textContent: ""}).textContent.includes("Confirmed")`)
	b.shot("addresses")
	b.checkAccessibility("email addresses")

	// The domain list (with one more, pending, domain added through the
	// API), then Delete with its confirmation (Cancel first).
	if code := in.call(t, key, "POST", "/v1/orgs/acme/domains", `{"name":"promo.example.com"}`, nil); code != 201 {
		t.Fatalf("add promo.example.com: %d", code)
	}
	b.click("button", "Domains")
	b.waitFor("the verified domain in the list", `(document.querySelector('#domain-table tr[data-domain="news.example.com"]') || {textContent: ""}).textContent.includes("Verified")`)
	if got := b.text(`#domain-table tr[data-domain="promo.example.com"]`); !strings.Contains(got, "Pending") || !strings.Contains(got, "never") {
		t.Errorf("pending row = %q", got)
	}
	b.shot("domain-list")
	b.clickIn(`#domain-table tr[data-domain="news.example.com"]`, "button", "Preview")
	b.waitFor("the preview", `!document.getElementById("view-domain").hidden && document.getElementById("domain-title").textContent === "news.example.com"`)
	b.click("button", "Delete")
	b.waitFor("the confirmation dialog", `document.getElementById("confirm-dialog").open`)
	b.click("button", "Cancel")
	b.waitFor("the dialog to close", `!document.getElementById("confirm-dialog").open`)
	b.click("button", "Delete")
	b.click("button", "Delete news.example.com")
	b.waitFor("the list without it", `!document.getElementById("view-domains").hidden && !document.querySelector('#domain-table tr[data-domain="news.example.com"]')`)
	err = submit(t, in.smtp, accounts["billing-app"].user, accounts["billing-app"].pass, "news@news.example.com", "x@example.org", "deleted")
	if code, _ := smtpCode(err); code != 550 {
		t.Errorf("after Delete, mail from the domain: %v", err)
	}

	// Sign out: the tab forgets the key.
	b.click("button", "Sign out")
	b.waitFor("the sign-in form", `!document.getElementById("view-signin").hidden`)
	if eval[bool](b, `sessionStorage.getItem("sendergate.key") !== null`) {
		t.Error("the key is still in session storage after Sign out")
	}
	if eval[bool](b, `document.querySelectorAll("tbody tr").length > 0`) {
		t.Error("the organization's data stays in the page after Sign out")
	}

	// A key deleted while the tab holds it: the next call (401) returns to
	// the sign-in form, saying why.
	b.fill("textbox", "API key", key)
	b.click("button", "Sign in")
	b.waitFor("the domain list", `!document.getElementById("view-domains").hidden`)
	if code := in.call(t, adminKey, "DELETE", "/v1/orgs/acme/keys/"+k.ID, "", nil); code != 204 {
		t.Fatalf("delete the org key: %d", code)
	}
	b.click("button", "SMTP accounts")
	b.waitFor("the sign-in form", `!document.getElementById("view-signin").hidden && document.getElementById("signin-key-error").textContent.includes("not accepted")`)
	if eval[bool](b, `sessionStorage.getItem("sendergate.key") !== null`) {
		t.Error("a refused key stays in session storage")
	}

	checkRequests(t, b, key, 10)
	if log := in.log.String(); strings.Contains(log, key) || strings.Contains(log, accounts["billing-app"].pass) {
		t.Error("the key or a password is in the daemon log")
	}
}

// usageReport is the part of GET /v1/orgs/{org}/usage the Usage view shows.
type usageReport struct {
	Scopes []struct {
		Scope, Name  string
		Windows      map[string]struct{ Count, Limit int64 }
		RefusedToday int64 `json:"refused_today"`
	}
}

// checkUsageView opens Usage after mail was sent: each scope's row says,
// per window, the count of GET /v1/orgs/acme/usage against its limit
// ("1 of 50 recipients this hour" for billing-app, whose per_hour is 50;
// "no limit" where there is none), and the refusals of the day.
func checkUsageView(t *testing.T, b *tab, in *instance, key string) {
	t.Helper()
	b.click("button", "Usage")
	b.waitFor("the usage view", `!document.getElementById("view-usage").hidden && document.querySelector('#usage-table tr[data-scope="organization"]')`)
	var u usageReport
	if code := in.call(t, key, "GET", "/v1/orgs/acme/usage", "", &u); code != 200 {
		t.Fatalf("usage: %d", code)
	}
	when := map[string]string{"minute": "this minute", "hour": "this hour", "day": "today"}
	var sawLimit bool
	for _, sc := range u.Scopes {
		row := `#usage-table tr[data-scope="organization"]`
		if sc.Scope == "account" {
			row = `#usage-table tr[data-name="` + sc.Name + `"]`
		}
		got := b.text(row)
		for win, w := range sc.Windows {
			want := fmt.Sprintf("%d recipients %s (no limit)", w.Count, when[win])
			if w.Count == 1 {
				want = fmt.Sprintf("1 recipient %s (no limit)", when[win])
			}
			if w.Limit > 0 {
				want = fmt.Sprintf("%d of %d recipients %s", w.Count, w.Limit, when[win])
			}
			if !strings.Contains(got, want) {
				t.Errorf("usage of %s %s: the row says %q, want %q", sc.Scope, sc.Name, got, want)
			}
		}
		if want := fmt.Sprintf("%d recipient", sc.RefusedToday); !strings.Contains(got, want) || !strings.Contains(got, "refused today") {
			t.Errorf("usage of %s %s: the row says %q, want %s... refused today", sc.Scope, sc.Name, got, want)
		}
		if sc.Name == "billing-app" {
			sawLimit = true
			if w := sc.Windows["hour"]; w.Limit != 50 || w.Count != 1 || !strings.Contains(got, "1 of 50 recipients this hour") {
				t.Errorf("billing-app's hour: API %+v, row %q; want 1 of 50", w, got)
			}
		}
		if sc.Scope == "organization" && sc.Windows["day"].Count < 1 {
			t.Errorf("the organization counted %d recipients today, want the message sent", sc.Windows["day"].Count)
		}
	}
	if !sawLimit || len(u.Scopes) != 3 {
		t.Errorf("usage scopes: %+v", u.Scopes)
	}
	if got := b.text("#usage-events"); !strings.Contains(got, "Limits changed") {
		t.Errorf("usage events = %q, want the limits change", got)
	}
	b.shotOf("#view-usage", "usage")
	b.checkAccessibility("usage")
}

// checkRequests: the page threw nothing and broke no CSP rule, every
// request went to the admin listener, no URL holds the key, API calls
// carried it as the bearer header and no other request carried any.
func checkRequests(t *testing.T, b *tab, key string, minBearer int) {
	t.Helper()
	for _, p := range b.pageProblems() {
		t.Errorf("the page: %s", p)
	}
	reqs := b.madeRequests()
	var bearer int
	for _, r := range reqs {
		if !strings.HasPrefix(r.url, b.base+"/") {
			t.Errorf("a request outside the admin listener: %s", r.url)
		}
		if strings.Contains(r.url, key) {
			t.Errorf("the key is in a URL: %s", r.url)
		}
		isAPI := strings.HasPrefix(r.url, b.base+"/v1/")
		if isAPI && r.authorization == "Bearer "+key {
			bearer++
		}
		if !isAPI && r.authorization != "" {
			t.Errorf("%s (not the API) carried Authorization %q", r.url, r.authorization)
		}
	}
	if bearer < minBearer {
		t.Errorf("only %d of %d requests were API calls with the key as bearer: %v", bearer, len(reqs), reqs)
	}
}

// TestPanelServiceUnavailable: signed in with the admin key, the panel
// creates an organization and switches between two; with the database
// cut, it says the service is temporarily unavailable (and keeps the user
// signed in: a 503 is not a wrong key); once it is back, the same page
// works again.
func TestPanelServiceUnavailable(t *testing.T) {
	chromiumPath(t)
	t.Parallel()
	fwd, dsn := tcpfwd.Target(t, storetest.PostgresDSN(t))
	in := startDaemon(t, daemonOpts{env: []string{"SENDERGATE_DATABASE=" + dsn}})
	adminKey := in.adminKey(t)
	if code := in.call(t, adminKey, "POST", "/v1/orgs", `{"name":"acme"}`, nil); code != 201 {
		t.Fatalf("create org: %d", code)
	}
	b := openBrowser(t, in.admin, 60*time.Second)

	// The admin key picks an organization, or creates one.
	b.do(chromedp.Navigate(b.base + "/"))
	b.fill("textbox", "API key", adminKey)
	b.click("button", "Sign in")
	b.waitFor("the organization choice", `!document.getElementById("view-orgs").hidden`)
	b.checkAccessibility("organization choice")
	b.fill("textbox", "New organization", "Globex")
	b.click("button", "Create organization")
	b.waitFor("the refusal", `!document.getElementById("new-org-error").hidden`)
	b.fill("textbox", "New organization", "globex")
	b.click("button", "Create organization")
	b.waitFor("globex's domains", `!document.getElementById("view-domains").hidden && document.querySelector('#domain-table tr[data-domain="globex.sandbox.sg.localhost"]')`)
	b.click("button", "Switch organization")
	b.waitFor("the organization choice", `!document.getElementById("view-orgs").hidden`)
	b.choose("Organization", "acme")
	b.click("button", "Open")
	b.waitFor("acme's domains", `!document.getElementById("view-domains").hidden && document.querySelector('#domain-table tr[data-domain="acme.sandbox.sg.localhost"]')`)

	fwd.Cut()
	b.click("button", "SMTP accounts")
	b.waitFor("the banner", `!document.getElementById("banner").hidden`)
	if got := b.text("#banner"); !strings.Contains(got, "the service is temporarily unavailable") && !strings.Contains(got, "The service is temporarily unavailable") {
		t.Errorf("banner = %q", got)
	}
	if eval[bool](b, `!document.getElementById("view-signin").hidden || sessionStorage.getItem("sendergate.key") === null`) {
		t.Error("a 503 signed the user out")
	}
	b.shot("unavailable")

	fwd.Restore()
	b.click("button", "SMTP accounts")
	b.waitFor("the accounts view", `!document.getElementById("view-accounts").hidden && document.getElementById("banner").hidden`)
	checkRequests(t, b, adminKey, 3)
}
