package bounce

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sendergate/sendergate/dnsname"
)

// Errors of Decode. Each is returned wrapped with context; test with
// errors.Is.
var (
	// ErrMalformed: the id is not a bounce id of this format.
	ErrMalformed = errors.New("bounce: malformed id")
	// ErrBadMAC: the id's MAC does not verify under the secret for the
	// domain (forged, tampered, another secret or another domain).
	ErrBadMAC = errors.New("bounce: bad MAC")
	// ErrExpired: the id verifies but is older than the maximum age.
	ErrExpired = errors.New("bounce: expired")
)

// Layout of a decoded id: version (1 byte), message id (8 bytes), hours
// since the Unix epoch (3 bytes, good until the year 3883), for version 2
// the first rcptLen bytes of SHA-256 over the one recipient's address
// (lowercased, its domain in A-label form), then the first macLen bytes of
// HMAC-SHA256 over all that and the return-path domain. Version 1 (22
// bytes) is 36 base32 characters, version 2 (26 bytes) 42: "bounce+" and
// the id are at most 49 octets, under RFC 5321 4.5.3.1.1's 64.
const (
	version    = 1
	versionFor = 2 // bound to one recipient
	msgIDLen   = 8
	timeLen    = 3
	rcptLen    = 4
	macLen     = 10 // 80 bits
	payload    = 1 + msgIDLen + timeLen
	rawLen     = payload + macLen
	rawLenFor  = payload + rcptLen + macLen
	localPart  = "bounce+"
)

// enc is lowercase base32 without padding: receivers may lowercase local
// parts, and Decode lowercases before decoding.
var enc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Codec encodes and verifies VERP bounce ids under a secret shared by all
// instances. It needs no database lookup. A Codec is safe for concurrent
// use.
type Codec struct {
	secret []byte
}

// NewCodec returns a codec keyed with secret (at least 16 random bytes
// are advised; the slice is copied).
func NewCodec(secret []byte) *Codec {
	return &Codec{secret: append([]byte(nil), secret...)}
}

// Encode returns the ID part of bounce+ID@domain for message msgID (16 hex
// digits, as gate.NewID makes) sent at now through return-path domain
// domain. A msgID that is not 16 hex digits is an error.
func (c *Codec) Encode(msgID, domain string, now time.Time) (string, error) {
	return c.EncodeFor(msgID, domain, "", now)
}

// EncodeFor is Encode for a message to the one recipient rcpt: the id
// also binds that address, so a bounce or complaint through it can only
// suppress rcpt (see ID.Covers). rcpt "" is Encode.
func (c *Codec) EncodeFor(msgID, domain, rcpt string, now time.Time) (string, error) {
	id, err := hex.DecodeString(msgID)
	if err != nil || len(id) != msgIDLen {
		return "", fmt.Errorf("bounce: message id %q is not 16 hex digits", msgID)
	}
	var raw [rawLenFor]byte
	raw[0] = version
	copy(raw[1:], id)
	putHours(raw[1+msgIDLen:payload], now)
	n := payload
	if rcpt != "" {
		raw[0] = versionFor
		h := rcptHash(rcpt)
		n += copy(raw[n:], h[:])
	}
	copy(raw[n:], c.mac(raw[:n], domain))
	return enc.EncodeToString(raw[:n+macLen]), nil
}

// ID is a verified bounce id.
type ID struct {
	MessageID string    // 16 lowercase hex digits
	Sent      time.Time // the hour the message was sent
	rcpt      []byte    // for a version 2 id, the recipient's hash
}

// Covers reports whether a report about addr may act on this id: any
// address for an id of a message with several recipients, only its one
// recipient for an id made by EncodeFor.
func (id ID) Covers(addr string) bool {
	if id.rcpt == nil {
		return true
	}
	h := rcptHash(addr)
	return hmac.Equal(id.rcpt, h[:])
}

// Decode verifies id (the part after "bounce+") for return-path domain
// domain and returns the message id (16 lowercase hex digits) and the hour
// it was sent. The case of id and domain does not matter. An id older than
// maxAge at now (maxAge > 0) is ErrExpired; ids dated more than a day
// ahead of now are ErrMalformed.
func (c *Codec) Decode(id, domain string, now time.Time, maxAge time.Duration) (string, time.Time, error) {
	v, err := c.DecodeID(id, domain, now, maxAge)
	return v.MessageID, v.Sent, err
}

// DecodeID is Decode returning the whole ID, recipient binding included.
func (c *Codec) DecodeID(id, domain string, now time.Time, maxAge time.Duration) (ID, error) {
	var n int
	switch len(id) {
	case enc.EncodedLen(rawLen):
		n = rawLen
	case enc.EncodedLen(rawLenFor):
		n = rawLenFor
	default:
		return ID{}, fmt.Errorf("id of %d characters: %w", len(id), ErrMalformed)
	}
	lower := strings.ToLower(id)
	raw, err := enc.DecodeString(lower)
	if err != nil || len(raw) != n || (n == rawLen && raw[0] != version) || (n == rawLenFor && raw[0] != versionFor) ||
		enc.EncodeToString(raw) != lower { // the last character's unused bits set: not the id Encode made
		return ID{}, fmt.Errorf("id %q: %w", id, ErrMalformed)
	}
	body := raw[:n-macLen]
	if !hmac.Equal(raw[n-macLen:], c.mac(body, domain)) {
		return ID{}, fmt.Errorf("id %q for %s: %w", id, domain, ErrBadMAC)
	}
	sent := getHours(raw[1+msgIDLen : payload])
	if sent.After(now.Add(24 * time.Hour)) {
		return ID{}, fmt.Errorf("id %q dated %s, in the future: %w", id, sent.Format(time.RFC3339), ErrMalformed)
	}
	if maxAge > 0 && now.Sub(sent) > maxAge+time.Hour { // +1h: the hour is truncated
		return ID{}, fmt.Errorf("id %q sent %s: %w", id, sent.Format(time.RFC3339), ErrExpired)
	}
	v := ID{MessageID: hex.EncodeToString(raw[1 : 1+msgIDLen]), Sent: sent}
	if n == rawLenFor {
		v.rcpt = raw[payload : payload+rcptLen]
	}
	return v, nil
}

// rcptHash hashes an address as EncodeFor binds it: lowercased, angle
// brackets and an "rfc822;" type dropped, the domain in A-label form (a
// domain that does not convert is hashed lowercased as given).
func rcptHash(addr string) [rcptLen]byte {
	addr = strings.TrimSpace(addr)
	if t, rest, ok := strings.Cut(addr, ";"); ok && strings.EqualFold(strings.TrimSpace(t), "rfc822") {
		addr = strings.TrimSpace(rest)
	}
	addr = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(addr, "<"), ">"))
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		if d, err := dnsname.Normalize(addr[at+1:]); err == nil {
			addr = addr[:at+1] + d
		}
	}
	sum := sha256.Sum256([]byte(addr))
	var h [rcptLen]byte
	copy(h[:], sum[:])
	return h
}

// mac is the truncated HMAC-SHA256 over the payload and the lowercased,
// dot-trimmed domain.
func (c *Codec) mac(p []byte, domain string) []byte {
	h := hmac.New(sha256.New, c.secret)
	h.Write(p)
	h.Write([]byte{0})
	h.Write([]byte(strings.TrimSuffix(strings.ToLower(domain), ".")))
	return h.Sum(nil)[:macLen]
}

func putHours(b []byte, t time.Time) {
	var full [4]byte
	binary.BigEndian.PutUint32(full[:], uint32(max(t.Unix()/3600, 0)))
	copy(b, full[1:])
}

func getHours(b []byte) time.Time {
	h := int64(b[0])<<16 | int64(b[1])<<8 | int64(b[2])
	return time.Unix(h*3600, 0).UTC()
}

// ParseAddress splits a bounce address bounce+ID@domain (angle brackets
// allowed, any case) into its ID and its lowercased domain; ok is false
// for any other address.
func ParseAddress(rcpt string) (id, domain string, ok bool) {
	rcpt = strings.TrimSuffix(strings.TrimPrefix(rcpt, "<"), ">")
	at := strings.LastIndexByte(rcpt, '@')
	if at < 0 {
		return "", "", false
	}
	local, domain := rcpt[:at], strings.TrimSuffix(strings.ToLower(rcpt[at+1:]), ".")
	if len(local) <= len(localPart) || !strings.EqualFold(local[:len(localPart)], localPart) || domain == "" {
		return "", "", false
	}
	id = strings.ToLower(local[len(localPart):])
	if strings.ContainsAny(id, "+@\" ") || strings.Contains(domain, "@") {
		return "", "", false
	}
	return id, domain, true
}
