package bounce

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCodecRoundTrip(t *testing.T) {
	c := NewCodec([]byte("0123456789abcdef0123456789abcdef"))
	sent := time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)
	now := sent.Add(48 * time.Hour)
	id, err := c.Encode("0123456789abcdef", "mailing.example.com", sent)
	if err != nil {
		t.Fatal(err)
	}
	if n := len("bounce+" + id); n >= 64 {
		t.Fatalf("local part of %d octets", n)
	}
	tampered := []byte(id)
	if tampered[5] == 'a' {
		tampered[5] = 'b'
	} else {
		tampered[5] = 'a'
	}
	tests := []struct {
		name    string
		codec   *Codec
		id      string
		domain  string
		now     time.Time
		maxAge  time.Duration
		wantErr error
	}{
		{name: "good", codec: c, id: id, domain: "mailing.example.com", now: now, maxAge: 720 * time.Hour},
		{name: "uppercase", codec: c, id: strings.ToUpper(id), domain: "MAILING.example.com.", now: now, maxAge: 720 * time.Hour},
		{name: "no max age", codec: c, id: id, domain: "mailing.example.com", now: now.Add(1e5 * time.Hour)},
		{name: "wrong secret", codec: NewCodec([]byte("other")), id: id, domain: "mailing.example.com", now: now, wantErr: ErrBadMAC},
		{name: "other domain", codec: c, id: id, domain: "mailing.example.org", now: now, wantErr: ErrBadMAC},
		{name: "tampered", codec: c, id: string(tampered), domain: "mailing.example.com", now: now, wantErr: ErrBadMAC},
		{name: "expired", codec: c, id: id, domain: "mailing.example.com", now: sent.Add(800 * time.Hour), maxAge: 720 * time.Hour, wantErr: ErrExpired},
		{name: "future", codec: c, id: id, domain: "mailing.example.com", now: sent.Add(-72 * time.Hour), wantErr: ErrMalformed},
		{name: "short", codec: c, id: id[:20], domain: "mailing.example.com", now: now, wantErr: ErrMalformed},
		{name: "not base32", codec: c, id: strings.Repeat("!", len(id)), domain: "mailing.example.com", now: now, wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgID, at, err := tt.codec.Decode(tt.id, tt.domain, tt.now, tt.maxAge)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msgID != "0123456789abcdef" || !at.Equal(sent.Truncate(time.Hour)) {
				t.Fatalf("got %s %s", msgID, at)
			}
		})
	}
}

func TestEncodeBadMsgID(t *testing.T) {
	if _, err := NewCodec(nil).Encode("xyz", "d.example", time.Now()); err == nil {
		t.Fatal("no error for a bad message id")
	}
}

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in         string
		id, domain string
		ok         bool
	}{
		{in: "bounce+abc@Mailing.Example.com", id: "abc", domain: "mailing.example.com", ok: true},
		{in: "<BOUNCE+ABC@x.example>", id: "abc", domain: "x.example", ok: true},
		{in: "bounce+@x.example"},
		{in: "user@x.example"},
		{in: "bounce+abc"},
		{in: "bounce+a+b@x.example"},
	}
	for _, tt := range tests {
		id, domain, ok := ParseAddress(tt.in)
		if id != tt.id || domain != tt.domain || ok != tt.ok {
			t.Errorf("ParseAddress(%q) = %q %q %v", tt.in, id, domain, ok)
		}
	}
}

func FuzzDecode(f *testing.F) {
	c := NewCodec([]byte("secret"))
	now := time.Unix(1_800_000_000, 0)
	id, _ := c.Encode("0123456789abcdef", "d.example", now)
	f.Add(id, "d.example")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, id, domain string) {
		msgID, sent, err := c.Decode(id, domain, now, 0)
		if err == nil {
			again, err := c.Encode(msgID, domain, sent)
			if err != nil || !strings.EqualFold(again, id) {
				t.Fatalf("decoded %q from %q but re-encodes to %q (%v)", msgID, id, again, err)
			}
		}
		ParseAddress(id + "@" + domain)
	})
}

// TestEncodeForBindsTheRecipient: an id for one recipient decodes to an
// ID that covers that address only (case and angle brackets aside), and
// its MAC covers the binding (the plain form of the same message does not
// verify with another recipient's hash spliced in).
func TestEncodeForBindsTheRecipient(t *testing.T) {
	c := NewCodec([]byte("0123456789abcdef0123456789abcdef"))
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	id, err := c.EncodeFor("0123456789abcdef", "d.example", "Bob@Example.com", now)
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.DecodeID(id, "d.example", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if v.MessageID != "0123456789abcdef" || !v.Covers("bob@example.com") || !v.Covers("rfc822; <BOB@example.com>") || v.Covers("alice@example.com") {
		t.Fatalf("decoded %+v: covers bob %v, alice %v", v, v.Covers("bob@example.com"), v.Covers("alice@example.com"))
	}
	other, _ := c.EncodeFor("0123456789abcdef", "d.example", "alice@example.com", now)
	if other == id {
		t.Fatal("two recipients got the same id")
	}
	// Splice alice's hash into bob's id: the MAC must fail.
	rawBob, _ := enc.DecodeString(id)
	rawAlice, _ := enc.DecodeString(other)
	copy(rawBob[payload:payload+rcptLen], rawAlice[payload:payload+rcptLen])
	if _, err := c.DecodeID(enc.EncodeToString(rawBob), "d.example", now, time.Hour); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("spliced id: %v, want ErrBadMAC", err)
	}
	plain, _ := c.Encode("0123456789abcdef", "d.example", now)
	if v, err := c.DecodeID(plain, "d.example", now, time.Hour); err != nil || !v.Covers("anyone@example.org") {
		t.Fatalf("an unbound id must cover any recipient: %v %v", v, err)
	}
}

// TestDecodeCanonical: only the string Encode made decodes; the same bytes
// spelled with the last character's unused bits set are malformed, so an
// id has one spelling.
func TestDecodeCanonical(t *testing.T) {
	c := NewCodec([]byte("0123456789abcdef0123456789abcdef"))
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for _, rcpt := range []string{"", "bob@example.com"} {
		id, err := c.EncodeFor("0123456789abcdef", "d.example", rcpt, now)
		if err != nil {
			t.Fatal(err)
		}
		alphabet := "abcdefghijklmnopqrstuvwxyz234567"
		pos := strings.IndexByte(alphabet, id[len(id)-1])
		other := id[:len(id)-1] + string(alphabet[pos^1]) // flips the lowest bit, unused in both lengths
		if raw1, _ := enc.DecodeString(id); string(raw1) != func() string { r, _ := enc.DecodeString(other); return string(r) }() {
			t.Fatalf("%q and %q decode differently; the test assumes the flipped bit is unused", id, other)
		}
		if _, err := c.DecodeID(other, "d.example", now, time.Hour); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q (%q respelled): %v, want ErrMalformed", other, id, err)
		}
		if _, err := c.DecodeID(id, "d.example", now, time.Hour); err != nil {
			t.Errorf("%q: %v", id, err)
		}
	}
}
