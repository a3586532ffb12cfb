//go:build cgo && linux

package dkim

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"runtime"
	"testing"
	"time"
)

// TestOpenSSLKeysFreed: keys the program drops are freed in OpenSSL, and
// a key parsed only for its public half never reaches OpenSSL.
func TestOpenSSLKeysFreed(t *testing.T) {
	opensslBackend(t)
	lib, err := openLibcrypto(defaultLibcrypto)
	if err != nil {
		t.Fatal(err)
	}
	key := unwrapKey(testKey(t, RSA2048)).(*rsa.PrivateKey)
	d := sha256.Sum256([]byte("freed"))
	for range 20 {
		k := newOpenSSLKey(lib, key)
		if _, err := TXTValue(k.Public()); err != nil {
			t.Fatal(err)
		}
	}
	if n := lib.live.Load(); n != 0 {
		t.Fatalf("%d keys in OpenSSL after reading public halves, want 0", n)
	}
	for range 20 {
		k := newOpenSSLKey(lib, key)
		if _, err := k.Sign(nil, d[:], crypto.SHA256); err != nil {
			t.Fatal(err)
		}
		if k.evp == nil {
			t.Fatal("the key signs with crypto/rsa, not OpenSSL")
		}
	}
	// Cleanups run in the background after a GC: wait for them.
	deadline := time.Now().Add(30 * time.Second)
	for lib.live.Load() != 0 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := lib.live.Load(); n != 0 {
		t.Fatalf("%d of 20 dropped keys still allocated in OpenSSL", n)
	}
}
