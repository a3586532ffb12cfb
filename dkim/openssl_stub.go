//go:build !cgo || !linux

package dkim

import (
	"crypto"
	"crypto/rsa"
	"fmt"
)

// haveOpenSSLSigner is false in builds that cannot load libcrypto.
const haveOpenSSLSigner = false

// libcrypto stands for the OpenSSL library, which this build cannot load.
type libcrypto struct {
	path    string
	version string
}

// openLibcrypto fails: loading a C library at run time needs cgo (and the
// signer is written for Linux's dynamic loader).
func openLibcrypto(name string) (*libcrypto, error) {
	return nil, fmt.Errorf("load %s: this build has no OpenSSL signer (built with CGO_ENABLED=0 or not for Linux)", name)
}

// newOpenSSLKey is never called: selectBackend has no library to give.
func newOpenSSLKey(_ *libcrypto, k *rsa.PrivateKey) crypto.Signer { return k }
