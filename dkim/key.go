// Package dkim generates DKIM keys, renders their DNS TXT key records and
// signs outgoing messages for sendergate.
//
// It implements the signer side of DKIM (RFC 6376) with RSA-SHA256 and
// Ed25519-SHA256 (RFC 8463), following the key-size floor of RFC 8301, with
// fixed choices: relaxed/relaxed canonicalization, an explicit signed header
// set with the author fields and Subject oversigned, PKCS#8 PEM for stored
// keys. The signature field is byte for byte the one
// github.com/emersion/go-msgauth/dkim's signer makes (the tests compare
// them, and go-msgauth and dkimpy verify), computed in one pass without its
// goroutine, pipe and per-chunk copies. RSA signatures come from the system
// OpenSSL where it loads (see RSASigner), else from crypto/rsa.
package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
)

// Algorithm names a DKIM key algorithm as it appears in the admin API
// ("dkim_algorithm").
type Algorithm string

// The supported key algorithms. RSA2048 is the default (RFC 8301 requires
// verifiers to support RSA; Ed25519 support is still not universal).
const (
	RSA2048 Algorithm = "rsa-2048"
	Ed25519 Algorithm = "ed25519"
)

// rsaBits is the size of generated RSA keys; minRSABits is the smallest RSA
// key accepted for signing (RFC 8301 3.2: signers MUST use at least 1024).
const (
	rsaBits    = 2048
	minRSABits = 1024
)

// pemTypePKCS8 and pemTypePKCS1 are the PEM block types ParsePrivateKey
// accepts. PKCS#1 is what older opendkim-genkey writes.
const (
	pemTypePKCS8 = "PRIVATE KEY"
	pemTypePKCS1 = "RSA PRIVATE KEY"
)

// Valid reports whether a is one of the supported algorithms.
func (a Algorithm) Valid() bool {
	return a == RSA2048 || a == Ed25519
}

// GenerateKey creates a new private key for alg from crypto/rand.
func GenerateKey(alg Algorithm) (crypto.Signer, error) {
	switch alg {
	case RSA2048:
		k, err := rsa.GenerateKey(rand.Reader, rsaBits)
		if err != nil {
			return nil, fmt.Errorf("dkim: generate rsa key: %w", err)
		}
		return k, nil
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("dkim: generate ed25519 key: %w", err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("dkim: unsupported algorithm %q", alg)
	}
}

// MarshalPrivateKey encodes k as a PKCS#8 PEM block ("PRIVATE KEY").
func MarshalPrivateKey(k crypto.Signer) (string, error) {
	if err := checkKey(k); err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(unwrapKey(k))
	if err != nil {
		return "", fmt.Errorf("dkim: marshal private key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: pemTypePKCS8, Bytes: der})), nil
}

// ParsePrivateKey decodes the first PEM block of pemText: a PKCS#8
// "PRIVATE KEY" holding an RSA or Ed25519 key, or a PKCS#1 "RSA PRIVATE
// KEY". RSA keys shorter than 1024 bits are refused (RFC 8301 3.2).
// The result is ready for repeated use by Sign; parse once per key.
//
// An RSA key comes back as a signer backed by the system OpenSSL where
// RSASigner says so (its first signature loads it into libcrypto), else as
// the *rsa.PrivateKey; an Ed25519 key as the ed25519.PrivateKey.
func ParsePrivateKey(pemText string) (crypto.Signer, error) {
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		return nil, errors.New("dkim: parse private key: no PEM block found")
	}
	var (
		parsed any
		err    error
	)
	switch block.Type {
	case pemTypePKCS8:
		parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case pemTypePKCS1:
		parsed, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("dkim: parse private key: unsupported PEM type %q", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("dkim: parse private key: %w", err)
	}
	signer, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("dkim: parse private key: unsupported key type %T", parsed)
	}
	if err := checkKey(signer); err != nil {
		return nil, err
	}
	if k, ok := signer.(*rsa.PrivateKey); ok {
		return processBackend().wrap(k), nil
	}
	return signer, nil
}

// checkKey refuses keys DKIM cannot use: anything but RSA (of at least
// minRSABits) and Ed25519, directly or behind the OpenSSL signer.
func checkKey(k crypto.Signer) error {
	switch key := unwrapKey(k).(type) {
	case *rsa.PrivateKey:
		if bits := key.N.BitLen(); bits < minRSABits {
			return fmt.Errorf("dkim: rsa key of %d bits is too short (minimum %d, RFC 8301)", bits, minRSABits)
		}
		return nil
	case ed25519.PrivateKey:
		if len(key) != ed25519.PrivateKeySize {
			return fmt.Errorf("dkim: ed25519 key of %d bytes, want %d", len(key), ed25519.PrivateKeySize)
		}
		return nil
	case nil:
		return errors.New("dkim: no key")
	default:
		return fmt.Errorf("dkim: unsupported key type %T", k)
	}
}

// TXTValue renders the DKIM key record (RFC 6376 3.6.1) for pub, to be
// published at SELECTOR._domainkey.DOMAIN:
//
//	v=DKIM1; k=rsa; p=BASE64(SubjectPublicKeyInfo DER)
//	v=DKIM1; k=ed25519; p=BASE64(raw 32-byte key)   (RFC 8463 4.2)
//
// pub may be a *rsa.PublicKey or ed25519.PublicKey; for convenience a private
// key (anything with a Public method) is accepted and its public half used.
func TXTValue(pub crypto.PublicKey) (string, error) {
	if k, ok := pub.(interface{ Public() crypto.PublicKey }); ok {
		pub = k.Public()
	}
	switch key := pub.(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(key)
		if err != nil {
			return "", fmt.Errorf("dkim: marshal rsa public key: %w", err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		if len(key) != ed25519.PublicKeySize {
			return "", fmt.Errorf("dkim: ed25519 public key of %d bytes, want %d", len(key), ed25519.PublicKeySize)
		}
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(key), nil
	default:
		return "", fmt.Errorf("dkim: unsupported public key type %T", pub)
	}
}
