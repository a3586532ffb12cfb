package postfixtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMainCFParses writes the main.cf of every option and asks postconf
// what Postfix makes of it: each setting as given, the extra lines
// replacing the generated ones, and no warning (a misspelt parameter name
// or a parameter set twice is one).
func TestMainCFParses(t *testing.T) {
	postconf := NeedTool(t, "postconf")
	dir := t.TempDir()
	o := Options{
		Relayhost:    "[127.0.0.1]:2526",
		Transports:   map[string]string{"dead.example": "error:5.1.1 user unknown", ".bounce.sg.localhost": "smtp:[127.0.0.1]:2525"},
		RelayDomains: []string{"mailing.shop.example", "bounce.sg.localhost"},
		MyNetworks:   []string{"127.0.0.1/32"},
		Milter:       "inet:127.0.0.1:8891",
		Policy:       "inet:127.0.0.1:10040",
		SASL:         []Account{{User: "app", Realm: "acme", Password: "x"}},
		MainCF:       []string{"queue_run_delay = 2s", "relayhost = [127.0.0.1]:2527"},
	}
	cf, err := o.mainCF(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), []byte(cf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "master.cf"), []byte(masterCFFor(2500)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(postconf, "-c", dir, "-n")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("postconf -n: %v\n%s\nmain.cf:\n%s", err, stderr.String(), cf)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, " = ")
		got[k] = v
	}
	for k, want := range map[string]string{
		"relayhost":                    "[127.0.0.1]:2527", // MainCF wins
		"queue_run_delay":              "2s",
		"mynetworks":                   "127.0.0.1/32",
		"relay_domains":                "mailing.shop.example bounce.sg.localhost",
		"transport_maps":               "texthash:" + filepath.Join(dir, "transport"),
		"smtpd_milters":                "inet:127.0.0.1:8891",
		"milter_default_action":        "tempfail",
		"smtpd_sasl_auth_enable":       "yes",
		"smtpd_recipient_restrictions": "check_policy_service inet:127.0.0.1:10040, permit_mynetworks, permit_sasl_authenticated, permit_auth_destination, reject",
	} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
	if want := ".bounce.sg.localhost smtp:[127.0.0.1]:2525\ndead.example error:5.1.1 user unknown\n"; transportMap(o.Transports) != want {
		t.Errorf("transport table:\n%s\nwant:\n%s", transportMap(o.Transports), want)
	}
}

// TestMainCFDefaults: without options nothing relays (mynetworks is a
// loopback address tests do not use), no AUTH, milter or policy service.
func TestMainCFDefaults(t *testing.T) {
	cf, err := Options{}.mainCF("/x")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nmynetworks = 127.0.0.2/32\n", "\nrelayhost = \n", "\nqueue_directory = /x/queue\n",
		"\nsmtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination\n"} {
		if !strings.Contains(cf, want) {
			t.Errorf("main.cf lacks %q:\n%s", strings.TrimSpace(want), cf)
		}
	}
	for _, absent := range []string{"smtpd_sasl_auth_enable", "smtpd_milters", "check_policy_service", "transport_maps"} {
		if strings.Contains(cf, absent) {
			t.Errorf("main.cf has %s without the option:\n%s", absent, cf)
		}
	}
	for _, o := range []Options{{Relayhost: "x\nmynetworks = 0.0.0.0/0"}, {MainCF: []string{"a = b\nmynetworks = 0.0.0.0/0"}}, {MainCF: []string{"no setting"}}} {
		if _, err := o.mainCF("/x"); err == nil {
			t.Errorf("%+v: written into main.cf, want an error", o)
		}
	}
}
