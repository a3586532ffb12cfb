package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// setupDebug starts the profiling listener of debug.listen, off when
// empty: net/http/pprof under /debug/pprof/, on loopback only (config
// validation refuses other addresses; the bound address is checked again
// here). It starts before everything else so that start-up itself can be
// profiled.
func (d *daemon) setupDebug() error {
	addr := d.cfg.Debug.Listen
	if addr == "" {
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("debug.listen %s: %w", addr, err)
	}
	if ta, ok := l.Addr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
		l.Close()
		return fmt.Errorf("debug.listen %s: bound %s, which is not a loopback address", addr, l.Addr())
	}
	// No WriteTimeout: a CPU profile or trace streams for ?seconds=N.
	hs := &http.Server{Handler: debugHandler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelWarn)}
	go func() {
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("debug listener failed", "err", err)
		}
	}()
	// Close, not Shutdown: a profile in flight must not hold up the exit.
	d.onClose(func(context.Context) error { return hs.Close() })
	d.log.Info("listening", "listener", "debug.listen", "addr", l.Addr().String(), "serves", "/debug/pprof/")
	return nil
}

// debugHandler serves the pprof endpoints on its own mux (the admin API
// never serves http.DefaultServeMux, where net/http/pprof also registers).
func debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // and every named profile: heap, goroutine, allocs, mutex, block
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
