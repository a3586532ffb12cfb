package dkim

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// signedFields are the header fields Sign signs (RFC 6376 5.4, 5.4.1), in
// h= order: the fields a reader sees or a client acts on. Each is listed
// once for every occurrence in the message, and once when absent: an
// absent listed field is hashed as empty (RFC 6376 5.4.2), so it cannot be
// added later without breaking the signature. Trace fields that relays add
// or rewrite (Received, Return-Path) are never signed.
var signedFields = [...]string{
	"From", "Sender", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID",
	"In-Reply-To", "References", "Content-Type", "MIME-Version",
	"List-Id", "List-Unsubscribe", "List-Unsubscribe-Post",
	"Resent-From", "Resent-Sender", "Resent-To", "Resent-Cc", "Resent-Date", "Resent-Message-ID",
}

// oversigned are the signedFields listed once more than they occur
// ("oversigning", RFC 6376 8.15): the author identities the policy
// authorized (From, Sender, Resent-From, Resent-Sender, RFC 5322 3.6.2 and
// 3.6.6), the rest of every resent block, and Subject. A field of this set
// added in transit, even one more of a field that is present, breaks the
// signature.
var oversigned = [...]string{
	"From", "Sender", "Subject",
	"Resent-From", "Resent-Sender", "Resent-To", "Resent-Cc", "Resent-Date", "Resent-Message-ID",
}

// HeaderKeys returns the h= list Sign uses for a header with the given
// field names (case-insensitive, in any order): each of signedFields
// max(n, 1) times where n is its number of occurrences, then each
// oversigned field present once more, so that it is listed n+1 times.
func HeaderKeys(fieldNames []string) []string {
	var count [len(signedFields)]int
	for _, name := range fieldNames {
		for i, f := range signedFields {
			if strings.EqualFold(name, f) {
				count[i]++
				break
			}
		}
	}
	keys := make([]string, 0, len(signedFields)+len(oversigned)+len(fieldNames))
	for i, f := range signedFields {
		for range max(count[i], 1) {
			keys = append(keys, f)
		}
	}
	for i, f := range signedFields {
		if count[i] > 0 && slices.Contains(oversigned[:], f) {
			keys = append(keys, f)
		}
	}
	return keys
}

// DefaultHeaderKeys is the h= list Sign uses for a message with one From
// and one Subject field and none of the other oversigned fields: From and
// Subject appear twice. It is a copy for callers to inspect (a milter
// logging its choices, a test); changing it does not change what Sign signs.
var DefaultHeaderKeys = HeaderKeys([]string{"From", "Subject"})

// maxHeaderBytes bounds the header block Sign reads ahead to count fields;
// the gate refuses headers over 1 MiB before it signs.
const maxHeaderBytes = 2 << 20

// Sign reads a whole RFC 5322 message (header, the empty line, body; CRLF
// line endings; the empty line is required even when the body is empty)
// from r and returns the complete "DKIM-Signature: ...\r\n" header field to
// prepend to it. The signature uses relaxed/relaxed canonicalization
// (RFC 6376 3.4), SHA-256, d=domain, s=selector and the h= list HeaderKeys
// gives for the message's fields. key is what ParsePrivateKey returns (an
// RSA key, OpenSSL-backed where available, or an ed25519.PrivateKey, RFC
// 8463), parsed once by the caller; an *rsa.PrivateKey works too.
//
// Only the header is read ahead (to count its fields); the body is streamed
// through the hasher, never buffered: a caller holding the message in
// memory passes a *bytes.Reader or *net.Buffers and the body is not copied.
func Sign(r io.Reader, domain, selector string, key crypto.Signer) (string, error) {
	return signAt(r, domain, selector, key, time.Now())
}

// signAt is Sign with the signature timestamp (t=) given.
func signAt(r io.Reader, domain, selector string, key crypto.Signer, now time.Time) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("dkim: sign for %s (s=%s): %w", domain, selector, err)
	}
	if domain == "" {
		return fail(errors.New("no domain (d=)"))
	}
	if selector == "" {
		return fail(errors.New("no selector (s=)"))
	}
	// A small buffer: it holds header lines as they are read (a longer line
	// is read in pieces); the body passes it by (WriteTo below).
	br := bufio.NewReaderSize(r, 1024)
	header, names, err := readHeader(br)
	if err != nil {
		return fail(err)
	}
	body := newBodyHasher(sha256.New())
	// bufio.Reader.WriteTo hands what it buffered on, then lets r write
	// itself when r is an io.WriterTo (bytes.Reader, net.Buffers): the body
	// reaches the hasher in the caller's own slices.
	if _, err := br.WriteTo(body); err != nil {
		return fail(fmt.Errorf("read message: %w", err))
	}
	algo := "rsa-sha256"
	if _, ok := key.Public().(ed25519.PublicKey); ok {
		algo = "ed25519-sha256"
	}
	keys := HeaderKeys(names)
	// Sorted by name, as the field is laid out; b= comes last.
	tags := []signatureTag{
		{"a", algo},
		{"bh", base64.StdEncoding.EncodeToString(body.sum())},
		{"c", "relaxed/relaxed"},
		{"d", domain},
		{"h", strings.Join(keys, ":")},
		{"s", selector},
		{"t", formatTime(now.Unix())},
		{"v", "1"},
	}
	// The header hash (RFC 6376 3.7): the signed fields in h= order, then
	// this field with an empty b= and no final CRLF.
	h := sha256.New()
	for _, f := range pickFields(splitFields(header), keys) {
		io.WriteString(h, relaxedHeader(f))
	}
	io.WriteString(h, strings.TrimRight(relaxedHeader(formatSignature(tags, "")), "\r\n"))
	digest := h.Sum(nil)
	opts := crypto.SignerOpts(crypto.SHA256)
	if algo == "ed25519-sha256" {
		opts = crypto.Hash(0) // RFC 8463 3: Ed25519 signs the SHA-256 digest as its message
	}
	sig, err := key.Sign(rand.Reader, digest, opts)
	if err != nil {
		return fail(err)
	}
	return formatSignature(tags, base64.StdEncoding.EncodeToString(sig)), nil
}

// readHeader reads the header block up to and including the empty line
// and returns its bytes (without the empty line) and field names, as h= matches them: the text
// before the colon, blanks trimmed.
func readHeader(br *bufio.Reader) (header []byte, names []string, err error) {
	for {
		start := len(header)
		for {
			frag, err := br.ReadSlice('\n')
			header = append(header, frag...)
			if len(header) > maxHeaderBytes {
				return nil, nil, fmt.Errorf("header block is larger than %d bytes", maxHeaderBytes)
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if errors.Is(err, io.EOF) {
				return nil, nil, errors.New("the header never ends: no empty line before the end of the message")
			}
			if err != nil {
				return nil, nil, fmt.Errorf("read message: %w", err)
			}
			break
		}
		line := header[start:]
		if string(line) == "\r\n" || string(line) == "\n" {
			return header[:start], names, nil // the empty line ends the header
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // RFC 5322 2.2.3 continuation
		}
		if name, _, ok := bytes.Cut(line, []byte(":")); ok {
			names = append(names, string(bytes.TrimSpace(name)))
		}
	}
}
