package dkim

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"
)

// msgauthSign is how Sign worked before it canonicalized itself: the same
// h= list, go-msgauth's signer. It is the reference Sign must match.
func msgauthSign(msg, domain, selector string, key crypto.Signer) (string, error) {
	br := bufio.NewReader(strings.NewReader(msg))
	header, names, err := readHeader(br)
	if err != nil {
		return "", err
	}
	s, err := msgauth.NewSigner(&msgauth.SignOptions{
		Domain: domain, Selector: selector, Signer: key, Hash: crypto.SHA256,
		HeaderCanonicalization: msgauth.CanonicalizationRelaxed,
		BodyCanonicalization:   msgauth.CanonicalizationRelaxed,
		HeaderKeys:             HeaderKeys(names),
	})
	if err != nil {
		return "", err
	}
	blankLine := "\r\n"
	if rest := msg[len(header):]; strings.HasPrefix(rest, "\n") {
		blankLine = "\n"
	}
	_, err = io.WriteString(s, string(header)+blankLine)
	if err == nil {
		_, err = br.WriteTo(s)
	}
	if closeErr := s.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return "", err
	}
	return s.Signature(), nil
}

// sameSecond signs msg with Sign's implementation and with go-msgauth in
// the same second (go-msgauth reads the clock itself), so that both must
// give the same bytes: canonicalization, layout and (deterministic RSA
// PKCS#1 v1.5 and Ed25519) signature.
func sameSecond(t testing.TB, msg string, key crypto.Signer) (ours, ref string) {
	t.Helper()
	for range 5 {
		before := time.Now().Unix()
		ref, err := msgauthSign(msg, testDomain, testSelector, key)
		if err != nil {
			t.Fatalf("go-msgauth: %v", err)
		}
		if time.Now().Unix() != before {
			continue // the second turned: again
		}
		ours, err := signAt(strings.NewReader(msg), testDomain, testSelector, key, time.Unix(before, 0))
		if err != nil {
			t.Fatalf("Sign: %v", err)
		}
		return ours, ref
	}
	t.Fatal("could not sign twice within one second")
	return "", ""
}

// canonCases are messages whose canonicalization has a rule to get right.
var canonCases = map[string]string{
	"plain":                  testMessage(2048),
	"empty body":             "From: a@example.com\r\n\r\n",
	"blank-only body":        "From: a@example.com\r\n\r\n \t \r\n\t\r\n\r\n",
	"no final CRLF":          "From: a@example.com\r\n\r\nlast line",
	"trailing empty lines":   "From: a@example.com\r\n\r\nbody\r\n\r\n\r\n\r\n",
	"blank runs":             "From: a@example.com\r\n\r\n a \t b  \t\r\n\t c\r\n  \r\nd   \r\n",
	"lone LF":                "From: a@example.com\nSubject:  x\n\nline one\nline  two \n\n",
	"mixed line ends":        "From: a@example.com\r\nTo: b@example.org\n\r\none\ntwo\r\nthree\n\r\n",
	"lone CR":                "From: a@example.com\r\n\r\nbare\rCR \r\r\nend\r\n",
	"folded header":          "From: Alice\r\n  <a@example.com>\r\nSubject: one\r\n\ttwo  three \r\n\r\nx\r\n",
	"names in odd case":      "FROM: a@example.com\r\nsubject: s\r\nTo :b@example.org\r\nmessage-id:<1@x>\r\n\r\nx\r\n",
	"repeated fields":        "From: a@example.com\r\nTo: 1@example.org\r\nTo: 2@example.org\r\nCc: c\r\nTo: 3@example.org\r\n\r\nx\r\n",
	"resent blocks":          resentMessage,
	"field without a colon":  "From: a@example.com\r\nJunk line\r\nSubject: s\r\n\r\nx\r\n",
	"continuation first":     " leading: continuation\r\nFrom: a@example.com\r\n\r\nx\r\n",
	"empty value":            "From: a@example.com\r\nSubject:\r\nTo:   \r\n\r\nx\r\n",
	"8-bit":                  "From: =?utf-8?q?J=C3=B6rg?= <j@example.com>\r\nSubject: Gr\xc3\xbc\xc3\x9fe \xff\r\n\r\nK\xc3\xb6ln \xfe\xff  \r\n",
	"long line":              "From: a@example.com\r\n\r\n" + strings.Repeat("x", 10000) + "  \r\n" + strings.Repeat("y ", 5000) + "\r\n",
	"long body run at flush": "From: a@example.com\r\n\r\n" + strings.Repeat("z", bodyFlush-1) + " " + strings.Repeat("w", bodyFlush+1) + "\r\n",
	"long subject":           "From: a@example.com\r\nSubject: " + strings.Repeat("word ", 300) + "\r\n\r\nx\r\n",
}

func TestSignMatchesGoMsgauth(t *testing.T) {
	for _, alg := range []Algorithm{RSA2048, Ed25519} {
		key := testKey(t, alg)
		for name, msg := range canonCases {
			t.Run(string(alg)+"/"+name, func(t *testing.T) {
				ours, ref := sameSecond(t, msg, key)
				if ours != ref {
					t.Fatalf("signature field differs from go-msgauth's\n ours %q\n  ref %q", ours, ref)
				}
				if name == "continuation first" {
					return // prepended, the field takes the message's first line as its continuation
				}
				if err := verifySigned(ours+msg, key.Public()); err != nil {
					t.Fatalf("go-msgauth does not verify it: %v", err)
				}
			})
		}
	}
}

// randomMessage builds a message from pieces chosen to hit the
// canonicalization rules: blanks, line ends of every kind, folding,
// repeated and odd-case names, long runs.
func randomMessage(r *rand.Rand) string {
	names := []string{"From", "from", "Subject", "To", "Cc", "Sender", "Resent-From", "Date", "Message-ID", "X-Other", "REPLY-TO"}
	blanks := []string{" ", "\t", "  ", " \t "}
	ends := []string{"\r\n", "\r\n", "\r\n", "\n"}
	var b strings.Builder
	b.WriteString("From: a@example.com" + ends[r.IntN(len(ends))])
	for range r.IntN(8) {
		b.WriteString(names[r.IntN(len(names))])
		b.WriteString(blanks[r.IntN(len(blanks))][:r.IntN(2)] + ":")
		for range 1 + r.IntN(3) {
			b.WriteString(blanks[r.IntN(len(blanks))] + "v" + fmt.Sprint(r.IntN(100)))
		}
		if r.IntN(4) == 0 {
			b.WriteString(ends[r.IntN(len(ends))] + blanks[r.IntN(len(blanks))] + "folded")
		}
		b.WriteString(ends[r.IntN(len(ends))])
	}
	b.WriteString(ends[r.IntN(len(ends))])
	pieces := []string{"word", "x", blanks[0], blanks[1], blanks[2], blanks[3], "\r\n", "\n", "\r\n\r\n", "\r", strings.Repeat("long", 300)}
	for range r.IntN(400) {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

func TestSignMatchesGoMsgauthRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(14, uint64(time.Now().UnixNano())))
	key := testKey(t, Ed25519)
	for i := range 300 {
		msg := randomMessage(r)
		ours, ref := sameSecond(t, msg, key)
		if ours != ref {
			t.Fatalf("message %d %q:\n ours %q\n  ref %q", i, msg, ours, ref)
		}
	}
}

// FuzzSignMatchesGoMsgauth: for any message with a header, Sign gives
// go-msgauth's signature field.
func FuzzSignMatchesGoMsgauth(f *testing.F) {
	for _, msg := range canonCases {
		f.Add(msg)
	}
	key := testKey(f, Ed25519)
	f.Fuzz(func(t *testing.T, msg string) {
		if _, _, err := readHeader(bufio.NewReader(strings.NewReader(msg))); err != nil {
			t.Skip("no complete header")
		}
		if _, err := msgauthSign(msg, testDomain, testSelector, key); err != nil {
			t.Skip("go-msgauth refuses it")
		}
		if ours, ref := sameSecond(t, msg, key); ours != ref {
			t.Fatalf("message %q:\n ours %q\n  ref %q", msg, ours, ref)
		}
	})
}

// TestBodyHasherChunking: the body hash does not depend on how the body
// is cut into writes.
func TestBodyHasherChunking(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		msg := randomMessage(r)
		whole := newBodyHasher(sha256.New())
		whole.Write([]byte(msg))
		want := whole.sum()
		cut := newBodyHasher(sha256.New())
		for rest := []byte(msg); len(rest) > 0; {
			n := min(len(rest), 1+r.IntN(7))
			cut.Write(rest[:n])
			rest = rest[n:]
		}
		if got := cut.sum(); !bytes.Equal(got, want) {
			t.Fatalf("body hash of %q changes with the write sizes", msg)
		}
	}
}

// BenchmarkSignVsGoMsgauth compares Sign with the go-msgauth signer it
// replaced, on the 10 KiB message of BenchmarkSignEd25519.
func BenchmarkSignVsGoMsgauth(b *testing.B) {
	key := testKey(b, Ed25519)
	msg := testMessage(10 * 1024)
	for name, sign := range map[string]func() error{
		"sendergate": func() error { _, err := Sign(strings.NewReader(msg), testDomain, testSelector, key); return err },
		"go-msgauth": func() error { _, err := msgauthSign(msg, testDomain, testSelector, key); return err },
	} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				if err := sign(); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
		})
	}
}

// FuzzSplitFields: the CRLF fast path splits exactly as the general one.
func FuzzSplitFields(f *testing.F) {
	for _, seed := range []string{
		"From: a@b\r\nTo: c@d\r\n",
		"Subject: a\r\n b\r\n\tc\r\nX: y\r\n",
		" leading: continuation\r\nA: b\r\n",
		"A: b\r\n\r\n c\r\n",
		"A: b\r\r\nB: \rc\r\n",
		"A: b\nB: c\r\n",
		"A: b\r\nB: c",
		"\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, header []byte) {
		fast, ok := splitCRLFFields(string(header))
		if !ok {
			return
		}
		if want := splitAnyFields(header); !slices.Equal(fast, want) {
			t.Fatalf("splitCRLFFields(%q) = %q, want %q", header, fast, want)
		}
	})
}
