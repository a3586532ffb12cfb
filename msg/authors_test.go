package msg

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestAuthors(t *testing.T) {
	tests := []struct {
		name       string
		header     string
		wantFrom   []string
		wantSender string
		wantErr    bool
	}{
		{name: "single From", header: "From: Alice <alice@example.com>\r\n", wantFrom: []string{"alice@example.com"}},
		{name: "bare addr-spec", header: "From: alice@example.com\r\n", wantFrom: []string{"alice@example.com"}},
		{name: "uppercase domain kept raw", header: "From: alice@EXAMPLE.Com\r\n", wantFrom: []string{"alice@EXAMPLE.Com"}},
		{name: "trailing root dot dropped", header: "From: alice@example.com.\r\n", wantFrom: []string{"alice@example.com"}},
		{name: "trailing root dot in angle brackets", header: "From: Alice <alice@example.com.>\r\n", wantFrom: []string{"alice@example.com"}},
		{name: "dot in a display name kept", header: "From: Dr. Q. Alice <alice@example.com>\r\n", wantFrom: []string{"alice@example.com"}},
		{name: "IDN U-label", header: "From: x@bänk.example\r\n", wantFrom: []string{"x@bänk.example"}},
		{name: "two From fields", header: "From: a@example.com\r\nFrom: ceo@bank.example\r\n", wantErr: true},
		{name: "two From fields, different case and space before colon", header: "From: a@example.com\r\nfrom : ceo@bank.example\r\n", wantErr: true},
		{name: "two mailboxes without Sender", header: "From: a@example.com, b@example.org\r\n", wantErr: true},
		{
			name:       "two mailboxes with Sender",
			header:     "From: a@example.com, b@example.org\r\nSender: s@example.net\r\n",
			wantFrom:   []string{"a@example.com", "b@example.org"},
			wantSender: "s@example.net",
		},
		{name: "one mailbox with Sender", header: "From: a@example.com\r\nSender: <s@example.net>\r\n", wantFrom: []string{"a@example.com"}, wantSender: "s@example.net"},
		{name: "Sender with two mailboxes", header: "From: a@example.com\r\nSender: s@example.net, t@example.net\r\n", wantErr: true},
		{name: "unparseable Sender", header: "From: a@example.com\r\nSender: not an address\r\n", wantErr: true},
		{name: "two Sender fields", header: "From: a@example.com\r\nSender: s@example.net\r\nSender: t@example.net\r\n", wantErr: true},
		{name: "empty Sender", header: "From: a@example.com\r\nSender:\r\n", wantErr: true},
		{name: "display name that looks like an address", header: "From: \"ceo@bank.example\" <x@evil.example>\r\n", wantFrom: []string{"x@evil.example"}},
		{name: "encoded word display name", header: "From: =?utf-8?q?ceo=40bank.example?= <x@evil.example>\r\n", wantFrom: []string{"x@evil.example"}},
		{name: "encoded word alone is no address", header: "From: =?utf-8?q?ceo=40bank.example?=\r\n", wantErr: true},
		{name: "encoded word in addr-spec", header: "From: =?utf-8?q?ceo?=@bank.example\r\n", wantErr: true},
		{name: "unknown charset in display name", header: "From: =?windows-1252?q?Andr=E9?= <andre@example.com>\r\n", wantFrom: []string{"andre@example.com"}},
		{name: "group syntax", header: "From: Team: a@example.com, b@example.com;\r\nSender: a@example.com\r\n", wantErr: true},
		{name: "empty group", header: "From: undisclosed-recipients:;\r\n", wantErr: true},
		{name: "missing From", header: "Subject: hi\r\n", wantErr: true},
		{name: "empty From", header: "From:\r\n", wantErr: true},
		{name: "blank From", header: "From:   \r\n", wantErr: true},
		{name: "trailing comment", header: "From: x@evil.example (ceo@bank.example)\r\n", wantFrom: []string{"x@evil.example"}},
		{name: "leading comment", header: "From: (ceo@bank.example) x@evil.example\r\n", wantFrom: []string{"x@evil.example"}},
		{name: "nested comment with quoted-pair", header: "From: Al (a (b\\) c) d) <al@example.com>\r\n", wantFrom: []string{"al@example.com"}},
		{name: "unterminated comment", header: "From: al@example.com (oops\r\n", wantErr: true},
		{name: "folded From", header: "From: Alice\r\n <alice@example.com>\r\n", wantFrom: []string{"alice@example.com"}},
		{name: "colon inside quoted display name", header: "From: \"Re: x\" <a@example.com>\r\n", wantFrom: []string{"a@example.com"}},
		{name: "address literal parses (NormalizeAddress refuses it)", header: "From: a@[192.0.2.1]\r\n", wantFrom: []string{"a@[192.0.2.1]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _, err := readHeaderString(t, tt.header+"\r\n")
			if err != nil {
				t.Fatalf("ReadHeader: %v", err)
			}
			from, sender, err := Authors(h)
			if tt.wantErr {
				var e *Error
				if !errors.As(err, &e) || e.Code != 550 || e.Enhanced != [3]int{5, 6, 0} {
					t.Fatalf("Authors = %q, %q, %v; want a 550 5.6.0 *Error", from, sender, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authors: %v", err)
			}
			if !slices.Equal(from, tt.wantFrom) || sender != tt.wantSender {
				t.Errorf("Authors = %q, %q; want %q, %q", from, sender, tt.wantFrom, tt.wantSender)
			}
		})
	}
}

func TestAuthorsNormalizedEqual(t *testing.T) {
	// The U-label, A-label and uppercase spellings of one mailbox compare equal
	// after NormalizeAddress; a subdomain does not.
	tests := []struct {
		name  string
		from  string
		equal bool
	}{
		{name: "A-label", from: "x@xn--bnk-qla.example", equal: true},
		{name: "uppercase U-label", from: "x@BÄNK.EXAMPLE", equal: true},
		{name: "uppercase A-label", from: "x@XN--BNK-QLA.Example", equal: true},
		{name: "subdomain", from: "x@mail.bänk.example", equal: false},
		{name: "different local part", from: "X@bänk.example", equal: false},
	}
	want, _, err := NormalizeAddress("x@bänk.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _, err := readHeaderString(t, "From: "+tt.from+"\r\n\r\n")
			if err != nil {
				t.Fatal(err)
			}
			from, _, err := Authors(h)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := NormalizeAddress(from[0])
			if err != nil {
				t.Fatal(err)
			}
			if (got == want) != tt.equal {
				t.Errorf("normalised %q vs %q: equal = %v, want %v", got, want, got == want, tt.equal)
			}
		})
	}
}

func TestAuthorMailboxes(t *testing.T) {
	tests := []struct {
		name       string
		header     string
		want       []string // Mailboxes
		wantDomain string
		wantText   string // in the refusal text; "" = success
	}{
		{name: "From only", header: "From: Alice <alice@EXAMPLE.com.>\r\n",
			want: []string{"alice@example.com"}, wantDomain: "example.com"},
		{name: "From and Sender", header: "From: a@example.com, b@bänk.example\r\nSender: s@example.net\r\n",
			want: []string{"a@example.com", "b@xn--bnk-qla.example", "s@example.net"}, wantDomain: "example.com"},
		{name: "Sender domain is not the d=", header: "Sender: s@example.net\r\nFrom: a@example.org\r\n",
			want: []string{"a@example.org", "s@example.net"}, wantDomain: "example.org"},
		{name: "Resent-From and Resent-Sender, each block", header: "Resent-From: r1@one.example, r2@two.example\r\n" +
			"Resent-Sender: rs@three.example\r\nResent-Date: Mon, 2 Jun 2025 10:00:00 +0000\r\n" +
			"Resent-From: <old@four.example>\r\nFrom: a@example.com\r\n",
			want:       []string{"a@example.com", "r1@one.example", "r2@two.example", "rs@three.example", "old@four.example"},
			wantDomain: "example.com"},
		{name: "each mailbox listed once", header: "From: a@example.com\r\nSender: a@EXAMPLE.com\r\nResent-From: a@example.com\r\n",
			want: []string{"a@example.com"}, wantDomain: "example.com"},
		{name: "lenient: Resent-From with several mailboxes and no Resent-Sender", header: "From: a@example.com\r\nresent-from: x@one.example, y@two.example\r\n",
			want: []string{"a@example.com", "x@one.example", "y@two.example"}, wantDomain: "example.com"},

		{name: "From rules still apply", header: "From: a@example.com\r\nFrom: b@example.com\r\n", wantText: "exactly one From"},
		{name: "empty Resent-From", header: "From: a@example.com\r\nResent-From:\r\n", wantText: "Resent-From header field"},
		{name: "Resent-From group", header: "From: a@example.com\r\nResent-From: G: x@one.example;\r\n", wantText: "not a group"},
		{name: "unparseable Resent-From", header: "From: a@example.com\r\nResent-From: not an address\r\n", wantText: "cannot parse Resent-From"},
		{name: "Resent-Sender with two mailboxes", header: "From: a@example.com\r\nResent-Sender: x@one.example, y@two.example\r\n", wantText: "exactly one mailbox"},
		{name: "address literal", header: "From: a@[192.0.2.1]\r\n", wantText: "address literal"},
		{name: "fullwidth From domain", header: "From: x@ａ.example\r\n",
			wantText: `From header field: address "x@\uff41.example" cannot be authorized: domain name contains U+FF41 FULLWIDTH LATIN SMALL LETTER A, which IDNA maps to "a"`},
		{name: "soft hyphen in From domain", header: "From: x@a\u00ad.example\r\n", wantText: "U+00AD SOFT HYPHEN"},
		{name: "zero width space in From domain", header: "From: x@a\u200b.example\r\n", wantText: "U+200B ZERO WIDTH SPACE"},
		{name: "zero width joiner in From domain", header: "From: x@a\u200d.example\r\n", wantText: "U+200D ZERO WIDTH JOINER"},
		{name: "zero width non-joiner in Sender domain", header: "From: a@example.com\r\nSender: x@a\u200cb.example\r\n",
			wantText: "Sender header field: address"},
		{name: "fullwidth Resent-From domain", header: "From: a@example.com\r\nResent-From: x@ｅｘａｍｐｌｅ.com\r\n",
			wantText: "Resent-From header field: address"},
		{name: "invisible Resent-Sender domain", header: "From: a@example.com\r\nResent-Sender: x@a\u00ad.example\r\n",
			wantText: "Resent-Sender header field: address"},
		{name: "reserved hyphens", header: "From: x@ab--cd.example\r\n", wantText: "third and fourth positions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _, err := readHeaderString(t, tt.header+"\r\n")
			if err != nil {
				t.Fatalf("ReadHeader: %v", err)
			}
			set, err := AuthorMailboxes(h)
			if tt.wantText != "" {
				var e *Error
				if !errors.As(err, &e) || e.Code != 550 || e.Enhanced != [3]int{5, 6, 0} {
					t.Fatalf("AuthorMailboxes = %+v, %v; want a 550 5.6.0 *Error", set, err)
				}
				if !strings.Contains(e.Message, tt.wantText) {
					t.Errorf("refusal %q does not contain %q", e.Message, tt.wantText)
				}
				if !isPrintableASCII(e.Message) {
					t.Errorf("refusal %q is not printable ASCII", e.Message)
				}
				return
			}
			if err != nil {
				t.Fatalf("AuthorMailboxes: %v", err)
			}
			if !slices.Equal(set.Mailboxes, tt.want) || set.Domain != tt.wantDomain {
				t.Errorf("AuthorMailboxes = %q, %q; want %q, %q", set.Mailboxes, set.Domain, tt.want, tt.wantDomain)
			}
		})
	}
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
