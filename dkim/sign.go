package dkim

import (
	"crypto"
	"fmt"
	"io"
	"slices"

	msgauth "github.com/emersion/go-msgauth/dkim"
)

// signedHeaderKeys is the h= list Sign uses (RFC 6376 5.4, 5.4.1): the fields
// a reader sees or a client acts on. From and Subject appear twice: the second
// entry matches no field in a well-formed message and is hashed as empty
// (RFC 6376 5.4.2), so a second From or Subject added in transit breaks the
// signature ("oversigning"). The same holds for every listed field that is
// absent at signing time: it cannot be added later without invalidating the
// signature, which is the intent. Trace fields that relays add or rewrite
// (Received, Return-Path) are never signed.
var signedHeaderKeys = [...]string{
	"From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID",
	"In-Reply-To", "References", "Content-Type", "MIME-Version",
	"List-Id", "List-Unsubscribe", "List-Unsubscribe-Post",
	"From", "Subject",
}

// DefaultHeaderKeys lists the header fields Sign signs, in h= order, with From
// and Subject repeated to oversign them. It is a copy for callers to inspect
// (a milter logging its choices, a test); changing it does not change what
// Sign signs.
var DefaultHeaderKeys = slices.Clone(signedHeaderKeys[:])

// Sign reads a whole RFC 5322 message (header, the empty line, body; CRLF
// line endings; the empty line is required even when the body is empty) from r and returns the complete "DKIM-Signature: ...\r\n" header
// field to prepend to it. The signature uses relaxed/relaxed
// canonicalization (RFC 6376 3.4), SHA-256, d=domain, s=selector and the
// DefaultHeaderKeys set. key is an *rsa.PrivateKey or ed25519.PrivateKey
// (RFC 8463), parsed once by the caller with ParsePrivateKey.
//
// The message is streamed through the hasher, never buffered whole: a caller
// holding it in memory passes a *bytes.Reader and the bytes are not copied.
func Sign(r io.Reader, domain, selector string, key crypto.Signer) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	s, err := msgauth.NewSigner(&msgauth.SignOptions{
		Domain:                 domain,
		Selector:               selector,
		Signer:                 key,
		Hash:                   crypto.SHA256,
		HeaderCanonicalization: msgauth.CanonicalizationRelaxed,
		BodyCanonicalization:   msgauth.CanonicalizationRelaxed,
		// go-msgauth only reads the list; it is unexported, so no caller
		// can change it between signatures.
		HeaderKeys: signedHeaderKeys[:],
	})
	if err != nil {
		return "", fmt.Errorf("dkim: sign for %s (s=%s): %w", domain, selector, err)
	}
	if _, err := io.Copy(s, r); err != nil {
		s.Close() // stops the signer's goroutine; the copy error is the one to report
		return "", fmt.Errorf("dkim: sign for %s (s=%s): read message: %w", domain, selector, err)
	}
	if err := s.Close(); err != nil {
		return "", fmt.Errorf("dkim: sign for %s (s=%s): %w", domain, selector, err)
	}
	return s.Signature(), nil
}
