// Small RSA keys are needed to test that ParsePrivateKey refuses them.
//go:debug rsa1024min=0

package dkim

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	msgauth "github.com/emersion/go-msgauth/dkim"
)

const (
	testDomain   = "example.com"
	testSelector = "sg1"
)

// keyCache holds one generated key per algorithm: RSA generation is slow and
// every test needs a key, none needs a fresh one.
var keyCache sync.Map

// testKey returns a key of alg as the daemon holds it: generated, stored
// as PEM and parsed again, so an RSA key signs with OpenSSL where
// RSASigner says so.
func testKey(t testing.TB, alg Algorithm) crypto.Signer {
	t.Helper()
	if k, ok := keyCache.Load(alg); ok {
		return k.(crypto.Signer)
	}
	k, err := GenerateKey(alg)
	if err != nil {
		t.Fatalf("GenerateKey(%s): %v", alg, err)
	}
	pemText, err := MarshalPrivateKey(k)
	if err != nil {
		t.Fatalf("MarshalPrivateKey(%s): %v", alg, err)
	}
	if k, err = ParsePrivateKey(pemText); err != nil {
		t.Fatalf("ParsePrivateKey(%s): %v", alg, err)
	}
	actual, _ := keyCache.LoadOrStore(alg, k)
	return actual.(crypto.Signer)
}

// testMessage returns a CRLF message whose body is at least bodySize bytes.
func testMessage(bodySize int) string {
	var b strings.Builder
	b.WriteString("Received: from client.example.net by mx.example.com; Mon, 2 Jun 2025 10:00:00 +0000\r\n")
	b.WriteString("From: Alice <alice@example.com>\r\n")
	b.WriteString("To: bob@example.org\r\n")
	b.WriteString("Subject: Quarterly   report\r\n")
	b.WriteString("Date: Mon, 2 Jun 2025 10:00:00 +0000\r\n")
	b.WriteString("Message-ID: <1234@example.com>\r\n")
	b.WriteString("MIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	b.WriteString("\r\n")
	line := "The quick brown fox jumps over the lazy dog.  \r\n"
	for b.Len() < bodySize || bodySize == 0 {
		b.WriteString(line)
		if bodySize == 0 {
			break
		}
	}
	return b.String()
}

// signMessage signs msg and returns the signed message (signature prepended).
func signMessage(t testing.TB, msg string, key crypto.Signer) string {
	t.Helper()
	sig, err := Sign(strings.NewReader(msg), testDomain, testSelector, key)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return sig + msg
}

// verify checks signed with go-msgauth, serving TXTValue(pub) as the key record.
func verify(t *testing.T, signed string, key crypto.Signer) (*msgauth.Verification, error) {
	t.Helper()
	txt, err := TXTValue(key.Public())
	if err != nil {
		t.Fatalf("TXTValue: %v", err)
	}
	want := testSelector + "._domainkey." + testDomain
	lookup := func(name string) ([]string, error) {
		if name != want {
			return nil, fmt.Errorf("unexpected lookup %q", name)
		}
		return []string{txt}, nil
	}
	vs, err := msgauth.VerifyWithOptions(strings.NewReader(signed), &msgauth.VerifyOptions{LookupTXT: lookup})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if len(vs) != 1 {
		t.Fatalf("got %d verifications, want 1", len(vs))
	}
	return vs[0], vs[0].Err
}

func TestSignVerifies(t *testing.T) {
	tests := []struct {
		name     string
		alg      Algorithm
		bodySize int
		wantAlgo string
	}{
		{name: "rsa", alg: RSA2048, bodySize: 2048, wantAlgo: "a=rsa-sha256"},
		{name: "ed25519", alg: Ed25519, bodySize: 2048, wantAlgo: "a=ed25519-sha256"},
		{name: "rsa empty body", alg: RSA2048, bodySize: 0, wantAlgo: "a=rsa-sha256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := testKey(t, tt.alg)
			msg := testMessage(tt.bodySize)
			signed := signMessage(t, msg, key)
			v, err := verify(t, signed, key)
			if err != nil {
				t.Fatalf("verification failed: %v", err)
			}
			if v.Domain != testDomain {
				t.Errorf("d= %q, want %q", v.Domain, testDomain)
			}
			if !slices.Equal(v.HeaderKeys, DefaultHeaderKeys) {
				t.Errorf("h= %v, want %v", v.HeaderKeys, DefaultHeaderKeys)
			}
			tags := signatureTags(t, strings.TrimSuffix(signed, msg))
			for _, tag := range []string{tt.wantAlgo, "c=relaxed/relaxed", "s=" + testSelector, "d=" + testDomain} {
				if !slices.Contains(tags, tag) {
					t.Errorf("signature lacks %q: %q", tag, tags)
				}
			}
		})
	}
}

// signatureTags unfolds a DKIM-Signature field and returns its tags with all
// whitespace removed, e.g. "c=relaxed/relaxed".
func signatureTags(t *testing.T, field string) []string {
	t.Helper()
	value, ok := strings.CutPrefix(field, "DKIM-Signature:")
	if !ok || !strings.HasSuffix(field, "\r\n") {
		t.Fatalf("not a DKIM-Signature field ending in CRLF: %q", field)
	}
	value = strings.Join(strings.Fields(value), "")
	return strings.Split(value, ";")
}

func TestSignTampering(t *testing.T) {
	tests := []struct {
		name       string
		tamper     func(signed string) string
		wantVerify bool
	}{
		{name: "untouched", tamper: func(s string) string { return s }, wantVerify: true},
		{
			name:       "relay adds Received on top",
			tamper:     func(s string) string { return "Received: from relay.example.net\r\n" + s },
			wantVerify: true,
		},
		{
			name: "relaxed: header whitespace refolded",
			tamper: func(s string) string {
				return strings.Replace(s, "Subject: Quarterly   report", "Subject:  Quarterly\r\n report", 1)
			},
			wantVerify: true,
		},
		{
			name:   "From changed",
			tamper: func(s string) string { return strings.Replace(s, "alice@example.com", "mallory@example.com", 1) },
		},
		{
			name:   "body changed",
			tamper: func(s string) string { return strings.Replace(s, "lazy dog", "lazy cat", 1) },
		},
		{
			name:   "body appended",
			tamper: func(s string) string { return s + "Buy now!\r\n" },
		},
		{
			name:   "second From added (oversigned)",
			tamper: func(s string) string { return strings.Replace(s, "To: ", "From: mallory@example.net\r\nTo: ", 1) },
		},
		{
			name:   "second Subject added (oversigned)",
			tamper: func(s string) string { return strings.Replace(s, "To: ", "Subject: urgent\r\nTo: ", 1) },
		},
		{
			name:   "absent Reply-To added",
			tamper: func(s string) string { return strings.Replace(s, "To: ", "Reply-To: mallory@example.net\r\nTo: ", 1) },
		},
	}
	for _, alg := range []Algorithm{RSA2048, Ed25519} {
		key := testKey(t, alg)
		signed := signMessage(t, testMessage(1024), key)
		for _, tt := range tests {
			t.Run(string(alg)+"/"+tt.name, func(t *testing.T) {
				_, err := verify(t, tt.tamper(signed), key)
				if got := err == nil; got != tt.wantVerify {
					t.Fatalf("verifies = %v (err %v), want %v", got, err, tt.wantVerify)
				}
			})
		}
	}
}

func TestSignHeaderKeys(t *testing.T) {
	for _, never := range []string{"Received", "Return-Path"} {
		for _, k := range DefaultHeaderKeys {
			if strings.EqualFold(k, never) {
				t.Errorf("DefaultHeaderKeys contains %s", never)
			}
		}
	}
	for _, twice := range []string{"From", "Subject"} {
		if n := countFold(DefaultHeaderKeys, twice); n != 2 {
			t.Errorf("%s appears %d times in DefaultHeaderKeys, want 2", twice, n)
		}
	}
	// Changing the exported copy must not change what Sign signs.
	saved := slices.Clone(DefaultHeaderKeys)
	t.Cleanup(func() { copy(DefaultHeaderKeys, saved) })
	DefaultHeaderKeys[1] = "Received"
	key := testKey(t, Ed25519)
	v, err := verify(t, signMessage(t, testMessage(100), key), key)
	if err != nil {
		t.Fatalf("verification failed: %v", err)
	}
	if slices.Contains(v.HeaderKeys, "Received") {
		t.Errorf("h= follows the mutated DefaultHeaderKeys: %v", v.HeaderKeys)
	}
}

func countFold(list []string, s string) int {
	n := 0
	for _, k := range list {
		if strings.EqualFold(k, s) {
			n++
		}
	}
	return n
}

func TestSignErrors(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		msg      string
		domain   string
		selector string
		key      crypto.Signer
	}{
		{name: "no key", msg: testMessage(10), domain: testDomain, selector: testSelector},
		{name: "ecdsa key", msg: testMessage(10), domain: testDomain, selector: testSelector, key: ecKey},
		{name: "no domain", msg: testMessage(10), selector: testSelector, key: testKey(t, Ed25519)},
		{name: "no selector", msg: testMessage(10), domain: testDomain, key: testKey(t, Ed25519)},
		{name: "header never ends", msg: "From: a@example.com\r\n", domain: testDomain, selector: testSelector, key: testKey(t, Ed25519)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := Sign(strings.NewReader(tt.msg), tt.domain, tt.selector, tt.key)
			if err == nil {
				t.Fatalf("Sign succeeded with %q, want an error", sig)
			}
		})
	}
}

func TestSignReadError(t *testing.T) {
	boom := errors.New("connection reset")
	r := ioReaderFunc(func([]byte) (int, error) { return 0, boom })
	if _, err := Sign(r, testDomain, testSelector, testKey(t, Ed25519)); !errors.Is(err, boom) {
		t.Fatalf("Sign error = %v, want it to wrap %v", err, boom)
	}
}

type ioReaderFunc func([]byte) (int, error)

func (f ioReaderFunc) Read(p []byte) (int, error) { return f(p) }

func BenchmarkSignRSA2048(b *testing.B) { benchmarkSign(b, RSA2048) }

func BenchmarkSignEd25519(b *testing.B) { benchmarkSign(b, Ed25519) }

func benchmarkSign(b *testing.B, alg Algorithm) {
	key := testKey(b, alg)
	msg := []byte(testMessage(10 * 1024))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		if _, err := Sign(bytes.NewReader(msg), testDomain, testSelector, key); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// Keys ----------------------------------------------------------------------

func TestAlgorithmValid(t *testing.T) {
	tests := []struct {
		alg  Algorithm
		want bool
	}{
		{alg: RSA2048, want: true},
		{alg: Ed25519, want: true},
		{alg: "rsa", want: false},
		{alg: "RSA-2048", want: false},
		{alg: "", want: false},
	}
	for _, tt := range tests {
		if got := tt.alg.Valid(); got != tt.want {
			t.Errorf("Algorithm(%q).Valid() = %v, want %v", tt.alg, got, tt.want)
		}
	}
	if _, err := GenerateKey("dsa"); err == nil {
		t.Error("GenerateKey(dsa) succeeded")
	}
}

func TestKeyRoundTrip(t *testing.T) {
	tests := []struct {
		name      string
		alg       Algorithm
		txtPrefix string
		pLen      int // decoded length of p=, 0 = not checked
	}{
		{name: "rsa", alg: RSA2048, txtPrefix: "v=DKIM1; k=rsa; p="},
		{name: "ed25519", alg: Ed25519, txtPrefix: "v=DKIM1; k=ed25519; p=", pLen: ed25519.PublicKeySize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := testKey(t, tt.alg)
			pemText, err := MarshalPrivateKey(key)
			if err != nil {
				t.Fatalf("MarshalPrivateKey: %v", err)
			}
			if !strings.HasPrefix(pemText, "-----BEGIN PRIVATE KEY-----\n") {
				t.Errorf("PEM does not start with a PKCS#8 block: %.40q", pemText)
			}
			parsed, err := ParsePrivateKey(pemText)
			if err != nil {
				t.Fatalf("ParsePrivateKey: %v", err)
			}
			if !parsed.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
				t.Fatal("parsed key differs from the generated one")
			}
			txt, err := TXTValue(parsed.Public())
			if err != nil {
				t.Fatalf("TXTValue: %v", err)
			}
			p, ok := strings.CutPrefix(txt, tt.txtPrefix)
			if !ok {
				t.Fatalf("TXTValue = %q, want prefix %q", txt, tt.txtPrefix)
			}
			raw, err := base64.StdEncoding.DecodeString(p)
			if err != nil {
				t.Fatalf("p= is not base64: %v", err)
			}
			if tt.pLen != 0 && len(raw) != tt.pLen {
				t.Errorf("p= decodes to %d bytes, want %d", len(raw), tt.pLen)
			}
			fromPrivate, err := TXTValue(parsed)
			if err != nil || fromPrivate != txt {
				t.Errorf("TXTValue(private) = %q, %v; want %q", fromPrivate, err, txt)
			}
		})
	}
}

func TestParsePrivateKeyPKCS1(t *testing.T) {
	key := unwrapKey(testKey(t, RSA2048)).(*rsa.PrivateKey)
	pemText := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	parsed, err := ParsePrivateKey(string(pemText))
	if err != nil {
		t.Fatalf("ParsePrivateKey(PKCS#1): %v", err)
	}
	if !key.Equal(unwrapKey(parsed)) {
		t.Fatal("parsed PKCS#1 key differs")
	}
}

func TestParsePrivateKeyErrors(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 512)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := func(k any) string {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	tests := []struct {
		name string
		pem  string
	}{
		{name: "empty", pem: ""},
		{name: "not PEM", pem: "hello"},
		{name: "public key block", pem: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"},
		{name: "corrupt DER", pem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
		{name: "rsa 512", pem: pkcs8(small)},
		{name: "ecdsa", pem: pkcs8(ecKey)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if k, err := ParsePrivateKey(tt.pem); err == nil {
				t.Fatalf("ParsePrivateKey succeeded with %T", k)
			}
		})
	}
}

func TestTXTValueErrors(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pub  crypto.PublicKey
	}{
		{name: "nil", pub: nil},
		{name: "ecdsa", pub: ecKey.Public()},
		{name: "short ed25519", pub: ed25519.PublicKey(make([]byte, 16))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if v, err := TXTValue(tt.pub); err == nil {
				t.Fatalf("TXTValue succeeded: %q", v)
			}
		})
	}
}

func FuzzParsePrivateKey(f *testing.F) {
	for _, alg := range []Algorithm{RSA2048, Ed25519} {
		pemText, err := MarshalPrivateKey(testKey(f, alg))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(pemText)
	}
	f.Add("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n")
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, pemText string) {
		key, err := ParsePrivateKey(pemText)
		if err != nil {
			return
		}
		again, err := MarshalPrivateKey(key)
		if err != nil {
			t.Fatalf("parsed key does not marshal: %v", err)
		}
		if _, err := ParsePrivateKey(again); err != nil {
			t.Fatalf("marshalled key does not parse: %v", err)
		}
		if _, err := TXTValue(key.Public()); err != nil {
			t.Fatalf("parsed key has no TXT value: %v", err)
		}
	})
}
