package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/netutil"

	"github.com/sendergate/sendergate/internal/gatelisten"
)

// Bounds of the profiling listener. Whoever can connect to it (any
// process on the host, for a TCP address) must not be able to hold the
// daemon's memory or CPU: connections past maxDebugConns wait in the
// kernel's backlog, a CPU profile or trace is refused past its longest
// duration, and a reader that does not keep up is cut off debugWriteSlack
// after the profile's end (net/http/pprof extends the server's
// WriteTimeout by the requested duration).
const (
	maxDebugConns      = 8
	maxProfileDuration = 5 * time.Minute
	maxTraceDuration   = 30 * time.Second
	debugWriteSlack    = 30 * time.Second
)

// setupDebug starts the profiling listener of debug.listen, off when
// empty: net/http/pprof under /debug/pprof/, on loopback TCP (config
// validation refuses other addresses; the bound address is checked again
// here) or on a unix socket of mode 0600, which only the daemon's user can
// reach. It starts before everything else so that start-up itself can be
// profiled.
func (d *daemon) setupDebug() error {
	addr := d.cfg.Debug.Listen
	if addr == "" {
		return nil
	}
	l, err := listenDebug(addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: debugHandler(), ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout: debugWriteSlack, IdleTimeout: 2 * time.Minute,
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

// listenDebug opens debug.listen, at most maxDebugConns connections
// served at a time.
func listenDebug(addr string) (net.Listener, error) {
	var l net.Listener
	var err error
	unix := strings.HasPrefix(addr, "unix:")
	if unix {
		l, err = gatelisten.Listen(addr, gatelisten.Options{Name: "debug", Mode: 0o600})
	} else {
		l, err = net.Listen("tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("debug.listen %s: %w", addr, err)
	}
	if ta, ok := l.Addr().(*net.TCPAddr); !unix && (!ok || !ta.IP.IsLoopback()) {
		l.Close()
		return nil, fmt.Errorf("debug.listen %s: bound %s, which is not a loopback address", addr, l.Addr())
	}
	return netutil.LimitListener(l, maxDebugConns), nil
}

// debugHandler serves the pprof endpoints on its own mux (the admin API
// never serves http.DefaultServeMux, where net/http/pprof also registers).
func debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // and every named profile: heap, goroutine, allocs, mutex, block
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.Handle("/debug/pprof/profile", maxSeconds(maxProfileDuration, http.HandlerFunc(pprof.Profile)))
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.Handle("/debug/pprof/trace", maxSeconds(maxTraceDuration, http.HandlerFunc(pprof.Trace)))
	return mux
}

// maxSeconds refuses a request whose "seconds" parameter asks for more
// than limit, with 400 and a text that gives the limit. A missing or
// unparsable value is left to the handler's default (30 s for a CPU
// profile, 1 s for a trace).
func maxSeconds(limit time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s, err := strconv.ParseFloat(r.FormValue("seconds"), 64); err == nil && s*float64(time.Second) > float64(limit) {
			http.Error(w, fmt.Sprintf("seconds=%s: at most %d on this listener", r.FormValue("seconds"), int(limit/time.Second)), http.StatusBadRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}
