package dkim

import (
	"slices"
	"strings"
	"testing"
)

// resentMessage has a Sender and two resent blocks (RFC 5322 3.6.6), the
// newest on top.
const resentMessage = "Resent-From: Desk <desk@example.com>\r\n" +
	"Resent-Sender: robot@example.com\r\n" +
	"Resent-To: third@example.org\r\n" +
	"Resent-Date: Tue, 3 Jun 2025 09:00:00 +0000\r\n" +
	"Resent-Message-ID: <r2@example.com>\r\n" +
	"Resent-From: first@example.com\r\n" +
	"Resent-Cc: second@example.org\r\n" +
	"Resent-Date: Mon, 2 Jun 2025 11:00:00 +0000\r\n" +
	"Resent-Message-ID: <r1@example.com>\r\n" +
	"From: Alice <alice@example.com>\r\n" +
	"Sender: assistant@example.com\r\n" +
	"To: bob@example.org\r\n" +
	"Subject: Quarterly report\r\n" +
	"Date: Mon, 2 Jun 2025 10:00:00 +0000\r\n" +
	"Message-ID: <1234@example.com>\r\n" +
	"\r\n" +
	"Body.\r\n"

func TestHeaderKeys(t *testing.T) {
	tests := []struct {
		name   string
		fields []string
		want   map[string]int // times listed in h=
	}{
		{
			name:   "absent fields are listed once, so they cannot be added",
			fields: []string{"From", "To", "Subject"},
			want: map[string]int{"From": 2, "Subject": 2, "Sender": 1, "To": 1, "Resent-From": 1, "Resent-Sender": 1,
				"Resent-To": 1, "Resent-Cc": 1, "Resent-Date": 1, "Resent-Message-ID": 1},
		},
		{
			name:   "present oversigned fields are listed once more than they occur",
			fields: []string{"resent-from", "Resent-Sender", "RESENT-FROM", "From", "Sender", "Resent-Date", "Resent-Date", "Resent-Message-ID"},
			want:   map[string]int{"From": 2, "Sender": 2, "Resent-From": 3, "Resent-Sender": 2, "Resent-Date": 3, "Resent-Message-ID": 2, "Subject": 1},
		},
		{
			name:   "other fields are signed as often as they occur",
			fields: []string{"From", "To", "To", "Received", "Received"},
			want:   map[string]int{"To": 2, "Received": 0, "Return-Path": 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := HeaderKeys(tt.fields)
			for f, n := range tt.want {
				if got := countFold(keys, f); got != n {
					t.Errorf("%s listed %d times, want %d: %v", f, got, n, keys)
				}
			}
		})
	}
}

func TestSignOversignsAuthorsAndResentFields(t *testing.T) {
	key := testKey(t, Ed25519)
	signed := signMessage(t, resentMessage, key)
	v, err := verify(t, signed, key)
	if err != nil {
		t.Fatalf("a signed message with Sender and resent blocks does not verify: %v", err)
	}
	for f, n := range map[string]int{"Sender": 2, "Resent-From": 3, "Resent-Sender": 2, "Resent-To": 2, "Resent-Cc": 2, "Resent-Date": 3, "Resent-Message-ID": 3} {
		if got := countFold(v.HeaderKeys, f); got != n {
			t.Errorf("h= lists %s %d times, want %d: %v", f, got, n, v.HeaderKeys)
		}
	}

	tampers := []struct{ name, field string }{
		{"another Sender", "Sender: mallory@evil.example\r\n"},
		{"another Resent-From", "Resent-From: ceo@bank.example\r\n"},
		{"another Resent-Sender", "Resent-Sender: ceo@bank.example\r\n"},
		{"another Resent-To", "Resent-To: victim@example.org\r\n"},
		{"another Resent-Cc", "Resent-Cc: victim@example.org\r\n"},
		{"another Resent-Date", "Resent-Date: Wed, 4 Jun 2025 09:00:00 +0000\r\n"},
		{"another Resent-Message-ID", "Resent-Message-ID: <r3@evil.example>\r\n"},
	}
	for _, tt := range tampers {
		t.Run(tt.name+" on top", func(t *testing.T) {
			if _, err := verify(t, tt.field+signed, key); err == nil {
				t.Fatalf("signature still verifies after adding %q", tt.field)
			}
		})
	}
	t.Run("relay adds Received on top", func(t *testing.T) {
		if _, err := verify(t, "Received: from relay.example.net\r\n"+signed, key); err != nil {
			t.Fatalf("verification failed: %v", err)
		}
	})
}

// Sender and Resent-* are oversigned even when the message has none: the
// h= list makes them "must stay absent".
func TestSignAbsentAuthorFieldsCannotBeAdded(t *testing.T) {
	for _, alg := range []Algorithm{RSA2048, Ed25519} {
		key := testKey(t, alg)
		signed := signMessage(t, testMessage(256), key)
		for _, field := range []string{
			"Sender: mallory@evil.example\r\n",
			"Resent-From: ceo@bank.example\r\n",
			"Resent-Sender: ceo@bank.example\r\n",
			"Resent-To: victim@example.org\r\n",
			"Resent-Date: Wed, 4 Jun 2025 09:00:00 +0000\r\n",
		} {
			name, _, _ := strings.Cut(field, ":")
			t.Run(string(alg)+"/"+name, func(t *testing.T) {
				for _, at := range []string{"top", "after From"} {
					tampered := field + signed
					if at != "top" {
						tampered = strings.Replace(signed, "To: ", field+"To: ", 1)
					}
					if _, err := verify(t, tampered, key); err == nil {
						t.Fatalf("signature still verifies with %q added at the %s", field, at)
					}
				}
			})
		}
	}
}

func TestDefaultHeaderKeysOversignAbsentAuthors(t *testing.T) {
	for _, f := range []string{"Sender", "Resent-From", "Resent-Sender"} {
		if !slices.Contains(DefaultHeaderKeys, f) {
			t.Errorf("DefaultHeaderKeys lacks %s: %v", f, DefaultHeaderKeys)
		}
	}
}
