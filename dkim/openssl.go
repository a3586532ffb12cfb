//go:build cgo && linux

package dkim

// The OpenSSL signer: RSA PKCS#1 v1.5 signatures over SHA-256 digests by
// the system's libcrypto.so.3, loaded at run time with dlopen, so the
// binary needs neither OpenSSL headers to build nor the library to run.
// The few prototypes it calls are declared here, from the OpenSSL 3.0 ABI
// (every symbol used is versioned OPENSSL_3.0.0).

/*
#cgo LDFLAGS: -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct evp_pkey_st EVP_PKEY;
typedef struct evp_pkey_ctx_st EVP_PKEY_CTX;
typedef struct evp_md_st EVP_MD;

#define SG_EVP_PKEY_RSA 6          // NID_rsaEncryption
#define SG_RSA_PKCS1_PADDING 1
#define SG_OPENSSL_VERSION 0

typedef struct {
	void *handle;
	EVP_PKEY *(*d2i_PrivateKey)(int, EVP_PKEY **, const unsigned char **, long);
	void (*EVP_PKEY_free)(EVP_PKEY *);
	int (*EVP_PKEY_get_size)(const EVP_PKEY *);
	EVP_PKEY_CTX *(*EVP_PKEY_CTX_new)(EVP_PKEY *, void *);
	void (*EVP_PKEY_CTX_free)(EVP_PKEY_CTX *);
	int (*EVP_PKEY_sign_init)(EVP_PKEY_CTX *);
	int (*EVP_PKEY_CTX_set_rsa_padding)(EVP_PKEY_CTX *, int);
	int (*EVP_PKEY_CTX_set_signature_md)(EVP_PKEY_CTX *, const EVP_MD *);
	int (*EVP_PKEY_sign)(EVP_PKEY_CTX *, unsigned char *, size_t *, const unsigned char *, size_t);
	const EVP_MD *(*EVP_sha256)(void);
	unsigned long (*ERR_get_error)(void);
	void (*ERR_error_string_n)(unsigned long, char *, size_t);
	void (*ERR_clear_error)(void);
	const char *(*OpenSSL_version)(int);
	unsigned long (*OpenSSL_version_num)(void);
	const EVP_MD *sha256;
} sg_lib;

// sg_open loads name and resolves every symbol. On failure it returns NULL
// and writes why to err.
static sg_lib *sg_open(const char *name, char *err, size_t errlen) {
	void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		const char *e = dlerror();
		snprintf(err, errlen, "%s", e ? e : "dlopen failed");
		return NULL;
	}
	sg_lib *l = calloc(1, sizeof(sg_lib));
	if (l == NULL) {
		snprintf(err, errlen, "out of memory");
		dlclose(h);
		return NULL;
	}
	l->handle = h;
#define SG_SYM(f) \
	if ((*(void **)(&l->f) = dlsym(h, #f)) == NULL) { \
		snprintf(err, errlen, "%s: no symbol %s (OpenSSL 3 is needed)", name, #f); \
		free(l); dlclose(h); return NULL; \
	}
	SG_SYM(OpenSSL_version_num)
	SG_SYM(OpenSSL_version)
	SG_SYM(d2i_PrivateKey)
	SG_SYM(EVP_PKEY_free)
	SG_SYM(EVP_PKEY_get_size)
	SG_SYM(EVP_PKEY_CTX_new)
	SG_SYM(EVP_PKEY_CTX_free)
	SG_SYM(EVP_PKEY_sign_init)
	SG_SYM(EVP_PKEY_CTX_set_rsa_padding)
	SG_SYM(EVP_PKEY_CTX_set_signature_md)
	SG_SYM(EVP_PKEY_sign)
	SG_SYM(EVP_sha256)
	SG_SYM(ERR_get_error)
	SG_SYM(ERR_error_string_n)
	SG_SYM(ERR_clear_error)
#undef SG_SYM
	if (l->OpenSSL_version_num() < 0x30000000UL) {
		snprintf(err, errlen, "%s is %s, OpenSSL 3 is needed", name, l->OpenSSL_version(SG_OPENSSL_VERSION));
		free(l); dlclose(h); return NULL;
	}
	l->sha256 = l->EVP_sha256();
	if (l->sha256 == NULL) {
		snprintf(err, errlen, "%s: EVP_sha256 returned NULL", name);
		free(l); dlclose(h); return NULL;
	}
	return l;
}

// sg_path is the file the loader mapped for l (for the log line).
static const char *sg_path(sg_lib *l) {
	struct link_map *m = NULL;
	if (dlinfo(l->handle, RTLD_DI_LINKMAP, &m) != 0 || m == NULL || m->l_name == NULL) {
		return "";
	}
	return m->l_name;
}

static const char *sg_version(sg_lib *l) { return l->OpenSSL_version(SG_OPENSSL_VERSION); }

// sg_err pops the calling thread's first OpenSSL error (0 when none) and
// clears the rest of its queue. It must run in the same C call as the
// failing function: the queue is per thread.
static unsigned long sg_err(sg_lib *l) {
	unsigned long e = l->ERR_get_error();
	l->ERR_clear_error();
	return e;
}

static void sg_err_string(sg_lib *l, unsigned long e, char *buf, size_t n) { l->ERR_error_string_n(e, buf, n); }

typedef struct {
	void *p;           // EVP_PKEY * or EVP_PKEY_CTX *; NULL on failure
	int size;          // EVP_PKEY_get_size for a key
	unsigned long err; // OpenSSL error code on failure
} sg_result;

// sg_key decodes a PKCS#1 RSAPrivateKey DER into an EVP_PKEY.
static sg_result sg_key(sg_lib *l, const unsigned char *der, long len) {
	sg_result r = {0};
	const unsigned char *p = der;
	EVP_PKEY *k = l->d2i_PrivateKey(SG_EVP_PKEY_RSA, NULL, &p, len);
	if (k == NULL) {
		r.err = sg_err(l);
		return r;
	}
	r.p = k;
	r.size = l->EVP_PKEY_get_size(k);
	return r;
}

static void sg_key_free(sg_lib *l, EVP_PKEY *k) { l->EVP_PKEY_free(k); }

// sg_ctx makes a signing context for k: PKCS#1 v1.5 padding, the DigestInfo
// of SHA-256 (RFC 8017 9.2). A context signs any number of digests, one at
// a time.
static sg_result sg_ctx(sg_lib *l, EVP_PKEY *k) {
	sg_result r = {0};
	EVP_PKEY_CTX *c = l->EVP_PKEY_CTX_new(k, NULL);
	if (c == NULL) {
		r.err = sg_err(l);
		return r;
	}
	if (l->EVP_PKEY_sign_init(c) <= 0 ||
		l->EVP_PKEY_CTX_set_rsa_padding(c, SG_RSA_PKCS1_PADDING) <= 0 ||
		l->EVP_PKEY_CTX_set_signature_md(c, l->sha256) <= 0) {
		r.err = sg_err(l);
		l->EVP_PKEY_CTX_free(c);
		return r;
	}
	r.p = c;
	return r;
}

static void sg_ctx_free(sg_lib *l, EVP_PKEY_CTX *c) { l->EVP_PKEY_CTX_free(c); }

// sg_sign signs the digest into sig (siglen bytes, the key's size) and
// returns the signature's length in size, or 0 with the error.
static sg_result sg_sign(sg_lib *l, EVP_PKEY_CTX *c, unsigned char *sig, size_t siglen,
		const unsigned char *digest, size_t dlen) {
	sg_result r = {0};
	size_t n = siglen;
	if (l->EVP_PKEY_sign(c, sig, &n, digest, dlen) <= 0) {
		r.err = sg_err(l);
		return r;
	}
	r.size = (int)n;
	return r;
}
*/
import "C"

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// haveOpenSSLSigner is true in builds that can load libcrypto.
const haveOpenSSLSigner = true

// libcrypto is a loaded OpenSSL 3 libcrypto. It is never unloaded.
type libcrypto struct {
	c       *C.sg_lib
	path    string       // the file the dynamic loader mapped
	version string       // OpenSSL_version(OPENSSL_VERSION)
	live    atomic.Int64 // EVP_PKEYs not freed yet
}

// openLibcrypto loads the OpenSSL 3 library name with dlopen and resolves
// the functions the signer calls.
func openLibcrypto(name string) (*libcrypto, error) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var buf [512]C.char
	l := C.sg_open(cname, &buf[0], C.size_t(len(buf)))
	if l == nil {
		return nil, fmt.Errorf("load %s: %s", name, C.GoString(&buf[0]))
	}
	path := C.GoString(C.sg_path(l))
	if path == "" {
		path = name
	}
	return &libcrypto{c: l, path: path, version: C.GoString(C.sg_version(l))}, nil
}

// opensslError describes OpenSSL error code e.
func (l *libcrypto) opensslError(op string, e C.ulong) error {
	if e == 0 {
		return fmt.Errorf("openssl: %s failed", op)
	}
	var buf [256]C.char
	C.sg_err_string(l.c, e, &buf[0], C.size_t(len(buf)))
	return fmt.Errorf("openssl: %s: %s", op, C.GoString(&buf[0]))
}

// opensslKey is an RSA private key whose PKCS#1 v1.5 SHA-256 signatures
// are computed by OpenSSL. The EVP_PKEY is made on the first signature,
// so that parsing a key only to read its public half (the store does, for
// every domain) costs nothing more than before. Anything OpenSSL does not
// sign (another hash, PSS) is signed by crypto/rsa with the same key.
type opensslKey struct {
	priv *rsa.PrivateKey
	lib  *libcrypto
	once sync.Once
	evp  *evpKey // nil after once when OpenSSL could not load the key
}

func newOpenSSLKey(lib *libcrypto, priv *rsa.PrivateKey) *opensslKey {
	return &opensslKey{priv: priv, lib: lib}
}

// Public returns the *rsa.PublicKey.
func (k *opensslKey) Public() crypto.PublicKey { return k.priv.Public() }

func (k *opensslKey) rsaKey() *rsa.PrivateKey { return k.priv }

// Sign signs digest. With a SHA-256 hash and PKCS#1 v1.5 (any opts but
// *rsa.PSSOptions) OpenSSL computes the signature, byte for byte the one
// rsa.SignPKCS1v15 gives (the scheme is deterministic); rand is not used,
// OpenSSL's blinding draws from its own generator. Other opts are handed
// to crypto/rsa.
func (k *opensslKey) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if _, pss := opts.(*rsa.PSSOptions); pss || opts == nil || opts.HashFunc() != crypto.SHA256 {
		return k.priv.Sign(rand, digest, opts)
	}
	if len(digest) != sha256.Size {
		return nil, fmt.Errorf("dkim: openssl rsa sign: digest of %d bytes, SHA-256 has %d", len(digest), sha256.Size)
	}
	k.once.Do(k.load)
	if k.evp == nil {
		return k.priv.Sign(rand, digest, opts)
	}
	sig, err := k.evp.sign(digest)
	runtime.KeepAlive(k) // k's cleanup frees evp: not before this signature is done
	return sig, err
}

// load makes the EVP_PKEY, checks that OpenSSL's first signature verifies
// with crypto/rsa, and otherwise leaves k signing with crypto/rsa.
func (k *opensslKey) load() {
	e, err := newEVPKey(k.lib, k.priv)
	if err != nil {
		return
	}
	var probe [sha256.Size]byte
	copy(probe[:], "sendergate openssl signer probe")
	sig, err := e.sign(probe[:])
	if err != nil || rsa.VerifyPKCS1v15(&k.priv.PublicKey, crypto.SHA256, probe[:], sig) != nil {
		e.free()
		return
	}
	k.evp = e
	runtime.AddCleanup(k, (*evpKey).free, e)
}

// evpKey is one key loaded into OpenSSL with a pool of signing contexts.
// The EVP_PKEY is shared by concurrent signatures (OpenSSL 3 keys are
// safe for that); a context is used by one signature at a time.
type evpKey struct {
	lib  *libcrypto
	pkey *C.EVP_PKEY
	size int
	ctxs chan *C.EVP_PKEY_CTX // idle contexts
}

// maxIdleCtx bounds the idle signing contexts of a key: signing is
// CPU-bound, so more concurrent signatures than cores gain nothing.
const maxIdleCtx = 16

func newEVPKey(lib *libcrypto, priv *rsa.PrivateKey) (*evpKey, error) {
	der := x509.MarshalPKCS1PrivateKey(priv)
	defer clear(der)
	r := C.sg_key(lib.c, (*C.uchar)(unsafe.Pointer(&der[0])), C.long(len(der)))
	if r.p == nil {
		return nil, lib.opensslError("d2i_PrivateKey", r.err)
	}
	lib.live.Add(1)
	e := &evpKey{lib: lib, pkey: (*C.EVP_PKEY)(r.p), size: int(r.size), ctxs: make(chan *C.EVP_PKEY_CTX, maxIdleCtx)}
	if want := priv.Size(); e.size != want {
		e.free()
		return nil, fmt.Errorf("openssl: key size %d bytes, crypto/rsa says %d", e.size, want)
	}
	return e, nil
}

// sign returns the PKCS#1 v1.5 signature of a SHA-256 digest. The
// signature is its only allocation.
func (e *evpKey) sign(digest []byte) ([]byte, error) {
	var ctx *C.EVP_PKEY_CTX
	select {
	case ctx = <-e.ctxs:
	default:
		r := C.sg_ctx(e.lib.c, e.pkey)
		if r.p == nil {
			return nil, e.lib.opensslError("EVP_PKEY_sign_init", r.err)
		}
		ctx = (*C.EVP_PKEY_CTX)(r.p)
	}
	sig := make([]byte, e.size)
	r := C.sg_sign(e.lib.c, ctx, (*C.uchar)(unsafe.Pointer(&sig[0])), C.size_t(len(sig)),
		(*C.uchar)(unsafe.Pointer(&digest[0])), C.size_t(len(digest)))
	select {
	case e.ctxs <- ctx:
	default:
		C.sg_ctx_free(e.lib.c, ctx)
	}
	if r.size <= 0 {
		return nil, e.lib.opensslError("EVP_PKEY_sign", r.err)
	}
	if int(r.size) < len(sig) {
		// Not expected (OpenSSL pads RSA signatures to the modulus size),
		// but a shorter one is left-padded as RFC 8017 5.2.1 I2OSP does.
		n := int(r.size)
		copy(sig[len(sig)-n:], sig[:n])
		clear(sig[:len(sig)-n])
	}
	return sig, nil
}

// free releases the contexts and the key. It runs when no signature can
// be using them (the owning opensslKey is unreachable, or never shared).
func (e *evpKey) free() {
	for {
		select {
		case ctx := <-e.ctxs:
			C.sg_ctx_free(e.lib.c, ctx)
		default:
			C.sg_key_free(e.lib.c, e.pkey)
			e.pkey = nil
			e.lib.live.Add(-1)
			return
		}
	}
}
