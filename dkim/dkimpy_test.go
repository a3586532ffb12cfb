package dkim

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// dkimpyScript verifies the message on stdin with dkimpy (python3-dkim), an
// implementation independent of go-msgauth. The key record comes from the
// environment instead of DNS. It prints "pass" or "fail".
const dkimpyScript = `
import os, sys, dkim
txt = os.environ["DKIM_TXT"].encode()
name = os.environ["DKIM_NAME"].encode()
def dnsfunc(n, timeout=5):
    return txt if n.rstrip(b".") == name else None
ok = dkim.verify(sys.stdin.buffer.read(), dnsfunc=dnsfunc)
print("pass" if ok else "fail")
`

// dkimpyPython returns the interpreter that runs dkimverify, the one that has
// the dkim module, or skips the test when python3-dkim is not installed.
func dkimpyPython(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("dkimverify")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("dkimverify (python3-dkim) is required in CI: %v", err)
		}
		t.Skip("dkimverify (python3-dkim) not installed")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	first, err := bufio.NewReader(f).ReadString('\n')
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	interp, ok := strings.CutPrefix(strings.TrimSpace(first), "#!")
	if !ok {
		t.Fatalf("%s has no #! line", path)
	}
	return strings.Fields(interp)[0]
}

func TestSignVerifiesWithDkimpy(t *testing.T) {
	python := dkimpyPython(t)
	tests := []struct {
		name   string
		alg    Algorithm
		msg    string // testMessage(4096) when empty
		tamper func(string) string
		want   string
	}{
		{name: "rsa Sender and resent blocks", alg: RSA2048, msg: resentMessage, tamper: func(s string) string { return s }, want: "pass"},
		{name: "ed25519 Resent-From added", alg: Ed25519, msg: resentMessage,
			tamper: func(s string) string { return "Resent-From: ceo@bank.example\r\n" + s }, want: "fail"},
		{name: "rsa absent Sender added", alg: RSA2048, tamper: func(s string) string { return "Sender: ceo@bank.example\r\n" + s }, want: "fail"},
		{name: "rsa", alg: RSA2048, tamper: func(s string) string { return s }, want: "pass"},
		{name: "ed25519", alg: Ed25519, tamper: func(s string) string { return s }, want: "pass"},
		{name: "rsa From changed", alg: RSA2048, tamper: func(s string) string { return strings.Replace(s, "alice@", "mallory@", 1) }, want: "fail"},
		{name: "ed25519 body changed", alg: Ed25519, tamper: func(s string) string { return strings.Replace(s, "fox", "cat", 1) }, want: "fail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := testKey(t, tt.alg)
			txt, err := TXTValue(key.Public())
			if err != nil {
				t.Fatal(err)
			}
			msg := tt.msg
			if msg == "" {
				msg = testMessage(4096)
			}
			signed := tt.tamper(signMessage(t, msg, key))
			cmd := exec.Command(python, "-c", dkimpyScript)
			cmd.Env = append(os.Environ(), "DKIM_TXT="+txt, "DKIM_NAME="+testSelector+"._domainkey."+testDomain)
			cmd.Stdin = strings.NewReader(signed)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("dkimpy: %v\n%s", err, out)
			}
			if got := strings.TrimSpace(string(out)); got != tt.want {
				t.Fatalf("dkimpy says %q, want %q", got, tt.want)
			}
		})
	}
}
