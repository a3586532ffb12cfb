package dkim

import (
	"crypto"
	"crypto/rsa"
	"fmt"
	"os"
	"sync"
)

// Environment variables that choose the RSA signing implementation. They
// are read once, the first time a key is parsed or RSASigner is called.
const (
	// EnvRSASigner forces the implementation: "go" signs with crypto/rsa
	// even where libcrypto is available; "openssl" or empty (the default)
	// uses the system OpenSSL when it loads and crypto/rsa otherwise.
	EnvRSASigner = "SENDERGATE_RSA_SIGNER"
	// EnvLibcrypto names the OpenSSL 3 library to load (a file name for the
	// dynamic loader's search or an absolute path); default libcrypto.so.3.
	EnvLibcrypto = "SENDERGATE_LIBCRYPTO"
)

// defaultLibcrypto is the OpenSSL 3 shared library loaded at run time.
const defaultLibcrypto = "libcrypto.so.3"

// The implementation names RSAImpl.Name takes.
const (
	ImplOpenSSL = "openssl"
	ImplGo      = "go"
)

// RSAImpl says which implementation computes the RSA signatures of the
// keys ParsePrivateKey returns.
type RSAImpl struct {
	// Name is ImplOpenSSL or ImplGo.
	Name string
	// Detail is the OpenSSL version and library with ImplOpenSSL, and why
	// OpenSSL is not used with ImplGo.
	Detail string
}

// String returns e.g. "openssl (OpenSSL 3.0.19 27 Jan 2026,
// /usr/lib/x86_64-linux-gnu/libcrypto.so.3)" or "go (crypto/rsa: ...)".
func (i RSAImpl) String() string {
	if i.Detail == "" {
		return i.Name
	}
	return i.Name + " (" + i.Detail + ")"
}

// rsaBackend is what ParsePrivateKey wraps RSA keys with: the loaded
// libcrypto, or nil for crypto/rsa.
type rsaBackend struct {
	lib  *libcrypto
	impl RSAImpl
}

// processBackend is chosen once per process: the dynamic loader's handle
// to libcrypto is process-wide, and the environment is read once so that
// every key of a run signs the same way.
var processBackend = sync.OnceValue(func() rsaBackend {
	return selectBackend(os.Getenv(EnvRSASigner), os.Getenv(EnvLibcrypto))
})

// RSASigner reports which implementation signs with RSA keys in this
// process, for `sendergate version` and the startup log.
func RSASigner() RSAImpl { return processBackend().impl }

// selectBackend loads libcrypto from path (default libcrypto.so.3) unless
// mode is "go"; any failure selects crypto/rsa with the reason.
func selectBackend(mode, path string) rsaBackend {
	goImpl := func(why string) rsaBackend {
		return rsaBackend{impl: RSAImpl{Name: ImplGo, Detail: "crypto/rsa: " + why}}
	}
	switch mode {
	case ImplGo:
		return goImpl(EnvRSASigner + "=go")
	case "", ImplOpenSSL:
	default:
		return goImpl(fmt.Sprintf("%s=%q is neither %q nor %q", EnvRSASigner, mode, ImplGo, ImplOpenSSL))
	}
	if path == "" {
		path = defaultLibcrypto
	}
	lib, err := openLibcrypto(path)
	if err != nil {
		return goImpl(err.Error())
	}
	return rsaBackend{lib: lib, impl: RSAImpl{Name: ImplOpenSSL, Detail: lib.version + ", " + lib.path}}
}

// wrap returns the signer for a parsed RSA key: backed by OpenSSL when
// the backend has libcrypto, the key itself otherwise.
func (b rsaBackend) wrap(k *rsa.PrivateKey) crypto.Signer {
	if b.lib == nil {
		return k
	}
	return newOpenSSLKey(b.lib, k)
}

// rsaBacked is a signer computing with an RSA private key it holds (the
// OpenSSL signer): checkKey and MarshalPrivateKey look through it.
type rsaBacked interface {
	crypto.Signer
	rsaKey() *rsa.PrivateKey
}

// unwrapKey returns the RSA key behind an rsaBacked signer, or k.
func unwrapKey(k crypto.Signer) crypto.Signer {
	if b, ok := k.(rsaBacked); ok {
		return b.rsaKey()
	}
	return k
}
