package dkim

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	msgauth "github.com/emersion/go-msgauth/dkim"
)

// opensslBackend returns the process's OpenSSL backend, or skips the test
// where this build or machine has none (CI, building with cgo, must have
// it: libcrypto.so.3 is part of every Debian 12 install).
func opensslBackend(t testing.TB) rsaBackend {
	t.Helper()
	b := processBackend()
	if b.lib == nil {
		if os.Getenv("CI") == "true" && haveOpenSSLSigner && os.Getenv(EnvRSASigner) == "" {
			t.Fatalf("CI needs the OpenSSL signer: %s", b.impl)
		}
		t.Skipf("no OpenSSL signer: %s", b.impl)
	}
	return b
}

// rsaTestKeys generates one RSA key per size (sizes that are not a
// multiple of 8 give a signature with a leading zero byte now and then).
var rsaTestKeys = sync.OnceValues(func() (map[int]*rsa.PrivateKey, error) {
	sizes := []int{1024, 2047, 4096}
	keys := make(map[int]*rsa.PrivateKey, len(sizes))
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		firstErr error
	)
	for _, bits := range sizes {
		wg.Go(func() {
			k, err := rsa.GenerateKey(rand.Reader, bits)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("generate %d-bit key: %w", bits, err)
			}
			keys[bits] = k
		})
	}
	wg.Wait()
	return keys, firstErr
})

// differentialKeys returns the test keys of every size with the 2048-bit
// key the other tests use.
func differentialKeys(t *testing.T) map[int]*rsa.PrivateKey {
	t.Helper()
	keys, err := rsaTestKeys()
	if err != nil {
		t.Fatal(err)
	}
	all := map[int]*rsa.PrivateKey{2048: unwrapKey(testKey(t, RSA2048)).(*rsa.PrivateKey)}
	for bits, k := range keys {
		all[bits] = k
	}
	return all
}

func TestSelectBackend(t *testing.T) {
	tests := []struct {
		name, mode, path string
		want             string // ImplOpenSSL or ImplGo
		detail           string // substring of Detail
		needsOpenSSL     bool   // the case loads the real library
	}{
		{name: "forced go", mode: "go", want: ImplGo, detail: "SENDERGATE_RSA_SIGNER=go"},
		{name: "unknown mode", mode: "boringssl", want: ImplGo, detail: `"boringssl" is neither`},
		{name: "library missing", path: "/nonexistent/libcrypto.so.3", want: ImplGo, detail: "/nonexistent/libcrypto.so.3"},
		{name: "default", want: ImplOpenSSL, detail: "OpenSSL 3.", needsOpenSSL: true},
		{name: "explicit openssl", mode: "openssl", path: "libcrypto.so.3", want: ImplOpenSSL, detail: "libcrypto.so.3", needsOpenSSL: true},
	}
	if haveOpenSSLSigner {
		// A library that loads but is not OpenSSL 3.
		tests = append(tests, struct {
			name, mode, path string
			want             string
			detail           string
			needsOpenSSL     bool
		}{name: "not libcrypto", path: "libc.so.6", want: ImplGo, detail: "no symbol OpenSSL_version_num"})
	}
	key := unwrapKey(testKey(t, RSA2048)).(*rsa.PrivateKey)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needsOpenSSL {
				opensslBackend(t)
			}
			b := selectBackend(tt.mode, tt.path)
			if b.impl.Name != tt.want || !strings.Contains(b.impl.Detail, tt.detail) {
				t.Fatalf("selectBackend(%q, %q) = %s, want %s with %q", tt.mode, tt.path, b.impl, tt.want, tt.detail)
			}
			signer := b.wrap(key)
			if tt.want == ImplGo {
				if signer != crypto.Signer(key) {
					t.Fatalf("the Go backend wrapped the key as %T", signer)
				}
			} else if _, ok := signer.(rsaBacked); !ok {
				t.Fatalf("the OpenSSL backend gave %T", signer)
			}
			// Either way the signer makes the signature crypto/rsa makes.
			digest := sha256.Sum256([]byte(tt.name))
			got, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if want, _ := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:]); !bytes.Equal(got, want) {
				t.Fatal("signature differs from crypto/rsa's")
			}
		})
	}
}

// TestRSASignerEnvironment runs this test binary again with the
// environment a user sets and checks what ParsePrivateKey gives then.
func TestRSASignerEnvironment(t *testing.T) {
	if os.Getenv("SG_DKIM_HELPER") == "1" {
		helperSignerReport()
		return
	}
	tests := []struct {
		name string
		env  []string
		want string // the helper's report
	}{
		{name: "forced go", env: []string{EnvRSASigner + "=go"}, want: "go *rsa.PrivateKey pass"},
		{name: "library missing", env: []string{EnvLibcrypto + "=/nonexistent/libcrypto.so.3"}, want: "go *rsa.PrivateKey pass"},
	}
	if haveOpenSSLSigner && processBackend().lib != nil {
		tests = append(tests, struct {
			name string
			env  []string
			want string
		}{name: "default", want: "openssl *dkim.opensslKey pass"})
	}
	pemText, err := MarshalPrivateKey(testKey(t, RSA2048))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestRSASignerEnvironment$", "-test.count=1")
			cmd.Env = append(os.Environ(), "SG_DKIM_HELPER=1", "SG_DKIM_HELPER_KEY="+pemText, EnvRSASigner+"=", EnvLibcrypto+"=")
			cmd.Env = append(cmd.Env, tt.env...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("helper: %v\n%s", err, out)
			}
			report, _, _ := strings.Cut(string(out), "\n")
			if report != tt.want {
				t.Fatalf("helper reports %q, want %q\n%s", report, tt.want, out)
			}
		})
	}
}

// helperSignerReport prints, on one line, the RSA implementation, the type
// ParsePrivateKey returns for the key in SG_DKIM_HELPER_KEY and whether a
// message it signs verifies.
func helperSignerReport() {
	k, err := ParsePrivateKey(os.Getenv("SG_DKIM_HELPER_KEY"))
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	msg := testMessage(512)
	result := "fail"
	if sig, err := Sign(strings.NewReader(msg), testDomain, testSelector, k); err == nil {
		if verifySigned(sig+msg, k.Public()) == nil {
			result = "pass"
		}
	}
	fmt.Printf("%s %T %s\n", RSASigner().Name, k, result)
}

// verifySigned checks the one signature of signed with go-msgauth against
// pub, without a testing.T.
func verifySigned(signed string, pub crypto.PublicKey) error {
	txt, err := TXTValue(pub)
	if err != nil {
		return err
	}
	vs, err := msgauth.VerifyWithOptions(strings.NewReader(signed), &msgauth.VerifyOptions{
		LookupTXT: func(string) ([]string, error) { return []string{txt}, nil },
	})
	if err != nil {
		return err
	}
	if len(vs) != 1 {
		return fmt.Errorf("%d signatures", len(vs))
	}
	return vs[0].Err
}

func TestOpenSSLMatchesCryptoRSA(t *testing.T) {
	b := opensslBackend(t)
	for bits, key := range differentialKeys(t) {
		t.Run(fmt.Sprintf("rsa-%d", bits), func(t *testing.T) {
			t.Parallel()
			signer := b.wrap(key)
			digests := [][]byte{make([]byte, 32), bytes.Repeat([]byte{0xff}, 32)}
			for i := range 48 {
				d := sha256.Sum256(fmt.Appendf(nil, "message %d of %d bits", i, bits))
				digests = append(digests, d[:])
			}
			for i, d := range digests {
				got, err := signer.Sign(rand.Reader, d, crypto.SHA256)
				if err != nil {
					t.Fatalf("digest %d: %v", i, err)
				}
				want, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, d)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("digest %d: OpenSSL signature differs from crypto/rsa's\n got %x\nwant %x", i, got, want)
				}
			}
		})
	}
}

func TestOpenSSLSignerOptions(t *testing.T) {
	b := opensslBackend(t)
	key := unwrapKey(testKey(t, RSA2048)).(*rsa.PrivateKey)
	signer := b.wrap(key)
	d256 := sha256.Sum256([]byte("options"))
	d512 := sha512.Sum512([]byte("options"))
	tests := []struct {
		name    string
		digest  []byte
		opts    crypto.SignerOpts
		check   func(sig []byte) error // nil = expect an error
		wantErr string
	}{
		{name: "sha256 pkcs1v15", digest: d256[:], opts: crypto.SHA256, check: func(sig []byte) error {
			return rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, d256[:], sig)
		}},
		{name: "sha512 goes to crypto/rsa", digest: d512[:], opts: crypto.SHA512, check: func(sig []byte) error {
			return rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA512, d512[:], sig)
		}},
		{name: "pss goes to crypto/rsa", digest: d256[:], opts: &rsa.PSSOptions{Hash: crypto.SHA256}, check: func(sig []byte) error {
			return rsa.VerifyPSS(&key.PublicKey, crypto.SHA256, d256[:], sig, nil)
		}},
		{name: "short digest", digest: d256[:20], opts: crypto.SHA256, wantErr: "digest of 20 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := signer.Sign(rand.Reader, tt.digest, tt.opts)
			if tt.check == nil {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Sign = %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.check(sig); err != nil {
				t.Fatalf("signature does not verify: %v", err)
			}
		})
	}
}

// TestOpenSSLSignedMessagesVerify signs messages of every shape with
// OpenSSL-backed keys and has go-msgauth and dkimpy verify each signature,
// and fail each tampered copy.
func TestOpenSSLSignedMessagesVerify(t *testing.T) {
	b := opensslBackend(t)
	long := testMessage(100 * 1024)
	messages := map[string]string{
		"empty body":   testMessage(0),
		"10 KiB":       testMessage(10 * 1024),
		"100 KiB":      long,
		"resent":       resentMessage,
		"folded utf-8": "From: =?utf-8?q?J=C3=B6rg?= <jorg@example.com>\r\nSubject: Gr\xc3\xbc\xc3\x9fe\r\n aus   K\xc3\xb6ln\r\nTo: a@example.org,\r\n\tb@example.org\r\n\r\nK\xc3\xb6ln  \r\n\r\n\r\n",
	}
	type vector struct {
		Name, Msg, TXT string
		Want           bool
	}
	var vectors []vector
	for bits, key := range differentialKeys(t) {
		signer := b.wrap(key)
		txt, err := TXTValue(signer.Public())
		if err != nil {
			t.Fatal(err)
		}
		for name, msg := range messages {
			signed := signMessage(t, msg, signer)
			label := fmt.Sprintf("rsa-%d %s", bits, name)
			if v, err := verify(t, signed, signer); err != nil {
				t.Errorf("%s: go-msgauth: %v", label, err)
			} else if v.Domain != testDomain {
				t.Errorf("%s: d=%s", label, v.Domain)
			}
			tampered := strings.Replace(signed, "From: ", "From: x", 1)
			if _, err := verify(t, tampered, signer); err == nil {
				t.Errorf("%s: go-msgauth verifies a changed From", label)
			}
			vectors = append(vectors, vector{label, signed, txt, true}, vector{label + " tampered", tampered, txt, false})
		}
	}
	python := dkimpyPython(t)
	in, err := json.Marshal(vectors)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-c", dkimpyBatchScript)
	cmd.Env = append(os.Environ(), "DKIM_NAME="+testSelector+"._domainkey."+testDomain)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dkimpy: %v\n%s", err, out)
	}
	var got []bool
	if err := json.Unmarshal(out, &got); err != nil || len(got) != len(vectors) {
		t.Fatalf("dkimpy output %q (%v), want %d results", out, err, len(vectors))
	}
	for i, v := range vectors {
		if got[i] != v.Want {
			t.Errorf("%s: dkimpy says %v, want %v", v.Name, got[i], v.Want)
		}
	}
}

// dkimpyBatchScript verifies each {"Msg", "TXT"} of the JSON list on stdin
// with dkimpy and prints the list of results.
const dkimpyBatchScript = `
import json, os, sys, dkim
name = os.environ["DKIM_NAME"].encode()
out = []
for v in json.load(sys.stdin):
    txt = v["TXT"].encode()
    def dnsfunc(n, timeout=5, txt=txt):
        return txt if n.rstrip(b".") == name else None
    out.append(bool(dkim.verify(v["Msg"].encode("utf-8", "surrogateescape"), dnsfunc=dnsfunc)))
print(json.dumps(out))
`

// TestOpenSSLConcurrent signs from many goroutines at once with shared
// keys, one of them loaded into OpenSSL by whichever signature comes
// first, and checks every signature against crypto/rsa's (run it with
// -race).
func TestOpenSSLConcurrent(t *testing.T) {
	b := opensslBackend(t)
	keys := differentialKeys(t)
	shared := b.wrap(keys[2048])
	fresh := b.wrap(keys[1024]) // not used yet: the goroutines race to load it
	type job struct {
		signer crypto.Signer
		key    *rsa.PrivateKey
	}
	jobs := []job{{shared, keys[2048]}, {fresh, keys[1024]}}
	const workers, perWorker = 8, 30
	want := make(map[string][]byte) // "key/i" -> signature
	digest := func(i int) []byte { d := sha256.Sum256(fmt.Appendf(nil, "concurrent %d", i)); return d[:] }
	for j, jb := range jobs {
		for i := range perWorker {
			sig, err := rsa.SignPKCS1v15(nil, jb.key, crypto.SHA256, digest(i))
			if err != nil {
				t.Fatal(err)
			}
			want[fmt.Sprint(j, "/", i)] = sig
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start := make(chan struct{})
	for w := range workers {
		wg.Go(func() {
			<-start
			for i := range perWorker {
				j := (w + i) % len(jobs)
				sig, err := jobs[j].signer.Sign(rand.Reader, digest(i), crypto.SHA256)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(sig, want[fmt.Sprint(j, "/", i)]) {
					errs <- fmt.Errorf("worker %d: signature %d with key %d differs from crypto/rsa's", w, i, j)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestOpenSSLSignAllocs: a signature allocates only itself.
func TestOpenSSLSignAllocs(t *testing.T) {
	b := opensslBackend(t)
	signer := b.wrap(unwrapKey(testKey(t, RSA2048)).(*rsa.PrivateKey))
	d := sha256.Sum256([]byte("allocs"))
	sign := func() {
		if _, err := signer.Sign(nil, d[:], crypto.SHA256); err != nil {
			t.Fatal(err)
		}
	}
	sign() // loads the key, makes the first context
	if n := testing.AllocsPerRun(20, sign); n != 1 {
		t.Fatalf("%v allocations per signature, want 1 (the signature)", n)
	}
}

func TestParsePrivateKeyUsesOpenSSL(t *testing.T) {
	opensslBackend(t)
	rsaKey := testKey(t, RSA2048)
	if _, ok := rsaKey.(rsaBacked); !ok {
		t.Fatalf("ParsePrivateKey gave %T for an RSA key with %s", rsaKey, RSASigner())
	}
	if ed := testKey(t, Ed25519); func() bool { _, ok := ed.(rsaBacked); return ok }() {
		t.Fatalf("an Ed25519 key is wrapped: %T", ed)
	}
	// The wrapped key marshals as the key it wraps, and parses back.
	pemText, err := MarshalPrivateKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParsePrivateKey(pemText)
	if err != nil {
		t.Fatal(err)
	}
	if !unwrapKey(again).(*rsa.PrivateKey).Equal(unwrapKey(rsaKey)) {
		t.Fatal("round trip changed the key")
	}
}

// TestBuildsWithoutCgo: CGO_ENABLED=0 builds the package (and its tests)
// with the pure-Go signer.
func TestBuildsWithoutCgo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go tool")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool: %v", err)
	}
	cmd := exec.Command(goTool, "vet", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go vet: %v\n%s", err, out)
	}
}

func BenchmarkRSASign(b *testing.B) {
	key := unwrapKey(testKey(b, RSA2048)).(*rsa.PrivateKey)
	d := sha256.Sum256([]byte("bench"))
	signers := map[string]crypto.Signer{"go": key}
	if ob := processBackend(); ob.lib != nil {
		signers["openssl"] = ob.wrap(key)
	}
	for name, s := range signers {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				if _, err := s.Sign(nil, d[:], crypto.SHA256); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
		})
	}
}
