package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	res, err := execute(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	res.print(os.Stdout, o)
	if len(res.msg) == 0 {
		os.Exit(1)
	}
}

// result is the merged measurement of a run.
type result struct {
	stats
	wall    time.Duration
	cpu     time.Duration // user+system time of this process
	aborted bool
}

// execute runs the workers and merges what they measured.
func execute(o options) (*result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.maxTime)
	defer cancel()
	r := &run{o: o, body: buildBody(o), ctx: ctx, deadline: time.Now().Add(o.duration)}
	cpu0 := cpuTime()
	start := time.Now()
	all := make([]*stats, o.conns)
	var wg sync.WaitGroup
	for i := range all {
		all[i] = &stats{errs: map[string]int{}}
		wg.Add(1)
		go func(st *stats) {
			defer wg.Done()
			r.worker(st)
		}(all[i])
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(o.maxTime + o.opTimeout):
		return nil, fmt.Errorf("loadgen: workers still busy after -max-time %s + -timeout %s", o.maxTime, o.opTimeout)
	}
	res := &result{stats: stats{errs: map[string]int{}}, wall: time.Since(start), cpu: cpuTime() - cpu0}
	res.aborted = ctx.Err() != nil
	for _, st := range all {
		res.merge(st)
	}
	return res, nil
}

// cpuTime is this process's user plus system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// buildBody is the message after the per-message Message-ID header: a
// plain-text message of o.size bytes in 78-octet lines.
func buildBody(o options) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: loadgen %d bytes\r\n", o.from, o.to, o.size)
	fmt.Fprintf(&b, "Date: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
		time.Now().Format(time.RFC1123Z))
	const idLen = len("Message-ID: <1234567.1234567@loadgen.localhost>\r\n")
	line := strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz", 3)[:76] + "\r\n"
	for b.Len()+idLen+len(line) <= o.size {
		b.WriteString(line)
	}
	for b.Len()+idLen+2 < o.size {
		b.WriteByte('x')
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// pct returns the p-th percentile (nearest rank) of sorted ds.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(p/100*float64(len(ds))+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1e6) }

// errorList renders error counts as "code×n" sorted by code.
func (r *result) errorList() string {
	if len(r.errs) == 0 {
		return "0"
	}
	keys := make([]string, 0, len(r.errs))
	for k := range r.errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s x%d", k, r.errs[k])
	}
	return strings.Join(parts, ", ")
}

func (r *result) print(w io.Writer, o options) {
	for _, ds := range [][]time.Duration{r.msg, r.setup, r.total} {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	}
	rate := float64(len(r.msg)) / r.wall.Seconds()
	cores := r.cpu.Seconds() / r.wall.Seconds()
	if o.format == "row" {
		lat := r.msg
		if o.perConn == 1 {
			lat = r.total
		}
		fmt.Fprintf(w, "| %s | %d | %d | %d | %.0f | %s | %s | %s | %s | %s | %s | %.2f |",
			o.label, o.conns, o.perConn, len(r.msg), rate, ms(pct(lat, 50)), ms(pct(lat, 90)), ms(pct(lat, 99)),
			ms(pct(lat, 100)), ms(pct(r.setup, 50)), r.errorList(), cores)
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintf(w, "target %s: %d connections, %d messages/connection, %d bytes, tls=%v auth=%v\n",
		o.addr, o.conns, o.perConn, o.size, o.startTLS, o.user != "")
	fmt.Fprintf(w, "messages ok %d in %s: %.1f msg/s (%d connections opened, loadgen CPU %.2f cores)\n",
		len(r.msg), r.wall.Round(time.Millisecond), rate, r.conns, cores)
	line := func(name string, ds []time.Duration) {
		if len(ds) > 0 {
			fmt.Fprintf(w, "%-8s ms: p50 %s  p90 %s  p99 %s  max %s\n", name,
				ms(pct(ds, 50)), ms(pct(ds, 90)), ms(pct(ds, 99)), ms(pct(ds, 100)))
		}
	}
	line("message", r.msg)
	line("setup", r.setup)
	line("total", r.total)
	fmt.Fprintf(w, "errors: %s\n", r.errorList())
	if r.aborted {
		fmt.Fprintf(w, "stopped by -max-time %s\n", o.maxTime)
	}
}
