package msg

import (
	"bufio"
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
)

var fuzzSeeds = []string{
	"From: a@example.com\r\n\r\nbody",
	"From: \"ceo@bank.example\" <x@evil.example>\r\nSender: s@x.example\r\n\r\n",
	"From: =?utf-8?q?ceo=40bank.example?= <x@evil.example>\n\n",
	"From: a@example.com, b@example.org\r\nSender: (c) s@x\r\n\r\n",
	"From: G: a@b;\r\n\r\n",
	"From: x@bänk.example (c (d) \\) e)\r\n Subject: x\r\n\r\n",
	" bad\r\n",
	"From: a@[1.2.3.4]\r\n",
}

func FuzzReadHeader(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(in), 16)
		h, err := ReadHeader(r)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) && !errors.Is(err, ErrLineTooLong) {
				t.Fatalf("error without SMTP reply material: %v", err)
			}
			return
		}
		var buf bytes.Buffer
		if _, err := h.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		if h.Size() != buf.Len() {
			t.Fatalf("Size = %d, WriteTo wrote %d", h.Size(), buf.Len())
		}
		// What we write reads back as the same fields.
		h2, err := ReadHeader(bufio.NewReader(&buf))
		if err != nil || len(h2.Fields) != len(h.Fields) {
			t.Fatalf("round trip: %v, %d fields, want %d", err, len(h2.Fields), len(h.Fields))
		}
		for i := range h.Fields {
			if !bytes.Equal(h.Fields[i].Raw, h2.Fields[i].Raw) || !bytes.HasSuffix(h.Fields[i].Raw, []byte("\r\n")) {
				t.Fatalf("field %d: %q became %q", i, h.Fields[i].Raw, h2.Fields[i].Raw)
			}
		}
	})
}

func FuzzAuthors(f *testing.F) {
	for _, s := range []string{
		"a@example.com", "Alice <a@EXAMPLE.com>", "\"a@b\" <x@y.example>", "=?utf-8?q?a=40b?= <x@y>",
		"a@b, c@d", "G: a@b;", "(c) a@b (d)", "a@bänk.example", "", "<>", "\"unterminated",
	} {
		f.Add(s, "")
		f.Add(s, "s@example.net")
	}
	f.Fuzz(func(t *testing.T, from, sender string) {
		in := "From: " + from + "\r\n"
		if sender != "" {
			in += "Sender: " + sender + "\r\n"
		}
		h, err := ReadHeader(bufio.NewReader(strings.NewReader(in + "\r\n")))
		if err != nil {
			return
		}
		addrs, s, err := Authors(h)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != 550 {
				t.Fatalf("Authors error is not a 550 *Error: %v", err)
			}
			return
		}
		if len(addrs) == 0 {
			t.Fatal("Authors succeeded without a From mailbox")
		}
		if len(addrs) > 1 && s == "" {
			t.Fatal("several From mailboxes accepted without Sender")
		}
		if s != "" {
			addrs = append(addrs, s)
		}
		for _, a := range addrs {
			norm, domain, err := NormalizeAddress(a)
			if err != nil {
				if !strings.Contains(err.Error(), strconv.Quote(a)) {
					t.Fatalf("NormalizeAddress(%q) error does not name the address: %v", a, err)
				}
				continue
			}
			if !strings.HasSuffix(norm, "@"+domain) || domain != strings.ToLower(domain) {
				t.Fatalf("NormalizeAddress(%q) = %q, %q", a, norm, domain)
			}
			if again, _, err := NormalizeAddress(norm); err != nil || again != norm {
				t.Fatalf("NormalizeAddress not idempotent: %q -> %q -> %q, %v", a, norm, again, err)
			}
		}
	})
}

func BenchmarkReadHeaderAuthors(b *testing.B) {
	hdr := strings.Join([]string{
		"Received: from client.example (client.example [192.0.2.7])\r\n\tby mx.example.com with ESMTPS id 4Z1abc;\r\n\tTue, 04 Mar 2025 05:06:07 +0000",
		"From: \"Billing Team\" <billing@example.com>",
		"To: Customer <customer@example.org>",
		"Cc: audit@example.org",
		"Reply-To: support@example.com",
		"Subject: =?utf-8?q?Your_invoice_n=C2=B0_1234?=",
		"Date: Tue, 04 Mar 2025 05:06:07 +0000",
		"Message-ID: <20250304050607.abcdef@example.com>",
		"MIME-Version: 1.0",
		"Content-Type: multipart/alternative;\r\n boundary=\"b1_abcdef0123456789\"",
		"Content-Transfer-Encoding: 7bit",
		"List-Unsubscribe: <https://example.com/u/abcdef>, <mailto:unsub@example.com>",
		"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
		"X-Mailer: app/1.2",
		"X-Campaign: spring-2025",
	}, "\r\n") + "\r\n\r\nbody\r\n"
	b.SetBytes(int64(len(hdr)))
	b.ReportAllocs()
	for b.Loop() {
		h, err := ReadHeader(bufio.NewReader(strings.NewReader(hdr)))
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := Authors(h); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzAuthorMailboxes(f *testing.F) {
	f.Add("a@example.com", "", "", "")
	f.Add("a@example.com, b@bänk.example", "s@x.example", "r@one.example, q@two.example", "rs@three.example")
	f.Add("x@ａ.example", "", "", "")
	f.Add("a@example.com", "", "x@a\u00ad.example", "")
	f.Add("a@example.com", "", "G: x@y;", "x@y, z@w")
	f.Fuzz(func(t *testing.T, from, sender, resentFrom, resentSender string) {
		in := "From: " + from + "\r\n"
		for _, f := range []struct{ name, value string }{{"Sender", sender}, {"Resent-From", resentFrom}, {"Resent-Sender", resentSender}} {
			if f.value != "" {
				in += f.name + ": " + f.value + "\r\n"
			}
		}
		h, err := ReadHeader(bufio.NewReader(strings.NewReader(in + "\r\n")))
		if err != nil {
			return
		}
		set, err := AuthorMailboxes(h)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != 550 || e.Enhanced != [3]int{5, 6, 0} {
				t.Fatalf("AuthorMailboxes error is not a 550 5.6.0 *Error: %v", err)
			}
			for i := 0; i < len(e.Message); i++ {
				if c := e.Message[i]; c < ' ' || c > '~' {
					t.Fatalf("refusal text is not printable ASCII: %q", e.Message)
				}
			}
			return
		}
		if len(set.Mailboxes) == 0 || !strings.HasSuffix(set.Mailboxes[0], "@"+set.Domain) {
			t.Fatalf("AuthorMailboxes = %+v: the first mailbox is not of Domain", set)
		}
		seen := map[string]bool{}
		for _, m := range set.Mailboxes {
			if again, _, err := NormalizeAddress(m); err != nil || again != m {
				t.Fatalf("mailbox %q is not normalized: %q, %v", m, again, err)
			}
			if seen[m] {
				t.Fatalf("mailbox %q listed twice in %q", m, set.Mailboxes)
			}
			seen[m] = true
		}
		// Every mailbox Authors returns is among those to authorize.
		fromList, s, err := Authors(h)
		if err != nil {
			t.Fatalf("Authors refused what AuthorMailboxes accepted: %v", err)
		}
		if s != "" {
			fromList = append(fromList, s)
		}
		for _, a := range fromList {
			if n, _, _ := NormalizeAddress(a); !seen[n] {
				t.Fatalf("author %q (%q) missing from %q", a, n, set.Mailboxes)
			}
		}
	})
}
