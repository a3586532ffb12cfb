package admin_test

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/sendergate/sendergate/admin"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/store/storetest"
)

// base32Lower is the alphabet of generated secrets: 5 bits per character.
var base32Lower = regexp.MustCompile(`^[a-z2-7]+$`)

func assertStrongSecret(t *testing.T, what, s string) {
	t.Helper()
	if !base32Lower.MatchString(s) || len(s)*5 < 128 {
		t.Errorf("%s %q: want >= 128 bits of lowercase base32 (>= 26 characters)", what, s)
	}
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		s := admin.NewSecret(20)
		if len(s) != 32 {
			t.Fatalf("NewSecret(20) = %q, want 32 characters", s)
		}
		assertStrongSecret(t, "secret", s)
		if seen[s] {
			t.Fatalf("NewSecret repeated %q", s)
		}
		seen[s] = true
	}
}

// TestSecretsNeverLeak drives every kind of secret through the API, then
// checks that each appeared in exactly the response that created it: not
// in any read, not in the log, and not stored in plain.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		var secrets []string
		o := e.createOrg("acme")
		secrets = append(secrets, o.key, testAdminKey)
		var k2 struct{ ID, Key string }
		e.do("POST", "/v1/orgs/acme/keys", o.key, nil).must(t, http.StatusCreated, &k2)
		secrets = append(secrets, k2.Key)
		for _, k := range []string{o.key, k2.Key} {
			_, secret, _ := strings.Cut(k, ".")
			assertStrongSecret(t, "org key secret", secret)
		}

		var passwords []string
		for _, name := range []string{"one", "two"} {
			passwords = append(passwords, e.createAccount(o, name).Password)
		}
		var rot credentials
		e.do("POST", "/v1/orgs/acme/smtp-accounts/one/password", o.key, nil).must(t, http.StatusOK, &rot)
		passwords = append(passwords, rot.Password)
		seen := map[string]bool{}
		for _, p := range passwords {
			assertStrongSecret(t, "password", p)
			if seen[p] {
				t.Errorf("password %q generated twice", p)
			}
			seen[p] = true
		}
		secrets = append(secrets, passwords...)

		e.verifiedDomain(o, map[string]any{"name": "example.com", "return_path": "mail", "dmarc": map[string]any{"policy": "reject"}})
		e.do("PUT", "/v1/orgs/acme/domains/example.com/access", o.key, map[string]any{"restricted": true, "accounts": []string{"one"}}).must(t, http.StatusOK, nil)
		e.do("POST", "/v1/orgs/acme/addresses", o.key, map[string]string{"email": "news@example.com"}).must(t, http.StatusAccepted, nil)
		tok := e.lastToken("news@example.com")
		secrets = append(secrets, tok)
		e.do("POST", "/v1/confirm", "", map[string]string{"token": tok}).must(t, http.StatusOK, nil)
		e.do("POST", "/v1/orgs/acme/addresses", o.key, map[string]string{"email": "help@example.com"}).must(t, http.StatusAccepted, nil)
		tok2 := e.lastToken("help@example.com")
		secrets = append(secrets, tok2)
		page := e.do("GET", "/confirm?token="+tok2, "", nil)
		page.must(t, http.StatusOK, nil)
		e.submit(e.url+"/confirm?token="+tok2, parseForms(t, page.body)[0], map[string]string{"Origin": e.url}).must(t, http.StatusOK, nil)
		e.do("GET", "/confirm?token="+tok2, "", nil).must(t, http.StatusConflict, nil)

		var reads strings.Builder
		for _, p := range []string{"/v1/orgs", "/v1/orgs/acme", "/v1/orgs/acme/smtp-accounts", "/v1/orgs/acme/domains",
			"/v1/orgs/acme/domains/example.com", "/v1/orgs/acme/domains/example.com/events", "/v1/orgs/acme/addresses",
			"/v1/orgs/acme/domains/acme." + testSandbox} {
			for _, key := range []string{testAdminKey, o.key} {
				r := e.do("GET", p, key, nil)
				r.must(t, http.StatusOK, nil)
				reads.Write(r.body)
			}
		}
		if strings.Contains(reads.String(), "PRIVATE KEY") || strings.Contains(reads.String(), "password") {
			t.Error("a read response carries a private key or a password field")
		}

		logs := e.logs.String()
		if !strings.Contains(logs, "path=/v1/orgs/acme/smtp-accounts") || !strings.Contains(logs, "status=201") {
			t.Fatalf("request log not captured:\n%s", logs)
		}
		for _, s := range secrets {
			sum := sha256.Sum256([]byte(s))
			for where, text := range map[string]string{"a read response": reads.String(), "the log": logs} {
				if strings.Contains(text, s) || strings.Contains(text, hex.EncodeToString(sum[:])) {
					t.Errorf("secret %q (or its hash) appears in %s", s, where)
				}
			}
		}

		// Stored hashed: neither the password nor the key is in the store.
		acct, err := st.AccountByName(t.Context(), mustOrgID(t, st, "acme"), "one")
		if err != nil {
			t.Fatal(err)
		}
		if acct.PasswordHash == rot.Password || strings.Contains(acct.PasswordHash, rot.Password) {
			t.Errorf("password stored in plain: %q", acct.PasswordHash)
		}
		k, err := st.APIKeyByID(t.Context(), o.keyID)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(k.Hash, o.key) || strings.Contains(o.key, k.Hash) {
			t.Errorf("key stored in plain: %q", k.Hash)
		}
	})
}
