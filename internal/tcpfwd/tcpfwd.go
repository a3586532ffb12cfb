// Package tcpfwd is a TCP forwarder for tests that need a dependency to
// go away and come back: put it between a client and a real server (e.g.
// PostgreSQL), Cut it to close every connection and refuse new ones, and
// Restore it to accept again on the same address.
package tcpfwd

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Forwarder accepts on a loopback address and copies bytes both ways to
// its target, one target connection per accepted connection.
type Forwarder struct {
	t      testing.TB
	target string
	addr   string

	mu    sync.Mutex
	l     net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// New starts a forwarder on 127.0.0.1:0 to target; it stops at cleanup.
func New(t testing.TB, target string) *Forwarder {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &Forwarder{t: t, target: target, addr: l.Addr().String(), conns: map[net.Conn]struct{}{}}
	f.serve(l)
	t.Cleanup(func() {
		f.Cut()
		f.wg.Wait()
	})
	return f
}

// Addr is the host:port clients connect to; it stays the same across Cut
// and Restore.
func (f *Forwarder) Addr() string { return f.addr }

// Via returns rawURL (e.g. a PostgreSQL DSN) with its host:port replaced
// by the forwarder's address, so a client opened with it goes through.
func (f *Forwarder) Via(rawURL string) string {
	f.t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		f.t.Fatalf("tcpfwd: %q has no host to replace", rawURL)
	}
	u.Host = f.addr
	return u.String()
}

// Target returns a forwarder to the host:port of rawURL, and rawURL
// rewritten to go through it.
func Target(t testing.TB, rawURL string) (*Forwarder, string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		t.Fatalf("tcpfwd: %q has no host to forward to", rawURL)
	}
	f := New(t, u.Host)
	return f, f.Via(rawURL)
}

// Cut closes the listener and every forwarded connection: connections in
// use break, new ones are refused until Restore.
func (f *Forwarder) Cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.l != nil {
		_ = f.l.Close()
		f.l = nil
	}
	for c := range f.conns {
		_ = c.Close()
		delete(f.conns, c)
	}
}

// Restore listens again on the same address.
func (f *Forwarder) Restore() {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.l != nil {
		return
	}
	l, err := net.Listen("tcp", f.addr)
	if err != nil {
		f.t.Fatalf("tcpfwd: listen again on %s: %v", f.addr, err)
	}
	f.serveLocked(l)
}

func (f *Forwarder) serve(l net.Listener) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.serveLocked(l)
}

func (f *Forwarder) serveLocked(l net.Listener) {
	f.l = l
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return // closed by Cut
			}
			f.forward(c)
		}
	}()
}

// track registers c; it reports false (and closes c) when the forwarder
// was cut meanwhile.
func (f *Forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.l == nil {
		_ = c.Close()
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *Forwarder) untrack(c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns, c)
	_ = c.Close()
}

func (f *Forwarder) forward(client net.Conn) {
	if !f.track(client) {
		return
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer f.untrack(client)
		server, err := net.Dial("tcp", f.target)
		if err != nil {
			return
		}
		if !f.track(server) {
			return
		}
		defer f.untrack(server)
		done := make(chan struct{}, 2)
		cp := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src) // ends when either side closes or Cut closes both
			_ = dst.Close()
			_ = src.Close()
			done <- struct{}{}
		}
		go cp(server, client)
		go cp(client, server)
		<-done
		<-done
	}()
}
