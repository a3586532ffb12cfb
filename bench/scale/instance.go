package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// instance is one running `sendergate serve`.
type instance struct {
	name                  string
	dir                   string
	smtp, admin, dns      string // loopback addresses
	cmd                   *exec.Cmd
	logf                  *os.File
	started               time.Time
	coldStart             time.Duration // exec to /healthz 200 with the policy loaded
	exited                chan struct{}
	exitErr               error
	adminKey, publicURL   string
	verifyInterval, qps   string
	database, deadResolve string
	memoryLimit           int64  // memory_limit_bytes
	debug                 string // debug.listen (pprof), empty when off
}

// freePort returns a loopback port free for TCP and UDP at the time of
// asking.
func freePort() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return p, nil
	}
	return 0, errors.New("no free loopback port")
}

func newInstance(name, dir string, o *options) (*instance, error) {
	in := &instance{name: name, dir: dir, adminKey: o.adminKey, database: o.database,
		verifyInterval: o.verifyInterval.String(), qps: strconv.Itoa(o.checkQPS), memoryLimit: o.memoryLimit, exited: make(chan struct{})}
	addrs := make([]string, 5)
	for i := range addrs {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", p)
	}
	in.smtp, in.admin, in.dns, in.deadResolve = addrs[0], addrs[1], addrs[2], addrs[3]
	in.publicURL = "http://" + in.admin
	if o.pprof != "" {
		in.debug = addrs[4]
	}
	return in, nil
}

// config is the instance's sendergate.toml: loopback listeners on free
// ports, relay to the outbox in data_dir, milter and policy service off,
// and background verification against a resolver address nobody listens
// on: each check ends at once as a transient DNS error, which changes no
// domain's state (the checker's cost without a customer DNS to ask).
func (in *instance) config() string {
	debug := ""
	if in.debug != "" {
		debug = fmt.Sprintf("[debug]\nlisten = %q\n", in.debug)
	}
	return fmt.Sprintf(`data_dir = %q
database = %q
hostname = "scale.localhost"
memory_limit_bytes = %d
[submission]
listen = %q
listen_tls = ""
[relay]
upstream = ""
[admin]
listen = %q
public_url = %q
[dns]
listen = %q
resolvers = [%q]
verify_interval = %q
check_qps = %s
[milter]
listen = ""
[policyd]
listen = ""
[bounce]
listen = ""
[sandbox]
daily_limit = 100000000
`, filepath.Join(in.dir, "data"), in.database, in.memoryLimit, in.smtp, in.admin, in.publicURL, in.dns, in.deadResolve, in.verifyInterval, in.qps) + debug
}

// start execs the binary and waits (up to limit) for /healthz to answer
// 200 with the policy snapshot loaded; coldStart is that time.
func (in *instance) start(ctx context.Context, bin string, limit time.Duration) error {
	if err := os.MkdirAll(in.dir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(in.dir, "sendergate.toml")
	if err := os.WriteFile(path, []byte(in.config()), 0o600); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(in.dir, "sendergate.log"))
	if err != nil {
		return err
	}
	in.logf = f
	in.cmd = exec.Command(bin, "serve", "-config", path)
	in.cmd.Dir = in.dir
	in.cmd.Env = append(os.Environ(), "SENDERGATE_ADMIN_KEY="+in.adminKey)
	in.cmd.Stdout, in.cmd.Stderr = f, f
	in.started = time.Now()
	if err := in.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", in.name, err)
	}
	go func() { in.exitErr = in.cmd.Wait(); close(in.exited) }()
	deadline := time.Now().Add(limit)
	client := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-in.exited:
			return fmt.Errorf("%s exited during start (%v); log %s:\n%s", in.name, in.exitErr, f.Name(), in.logTail(20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if healthy(client, in.publicURL+"/healthz") {
			in.coldStart = time.Since(in.started)
			return nil
		}
	}
	return fmt.Errorf("%s not healthy after %s; log %s:\n%s", in.name, limit, f.Name(), in.logTail(20))
}

// healthy reports /healthz 200 with the policy loaded.
func healthy(c *http.Client, url string) bool {
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var h struct {
		Status, Policy string
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return false
	}
	return resp.StatusCode == 200 && h.Policy == "loaded"
}

func (in *instance) logTail(n int) string {
	b, _ := os.ReadFile(filepath.Join(in.dir, "sendergate.log"))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stop ends the instance gracefully (SIGTERM), killing it after 30 s.
func (in *instance) stop() {
	if in.cmd == nil || in.cmd.Process == nil {
		return
	}
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.exited:
	case <-time.After(30 * time.Second):
		_ = in.cmd.Process.Kill()
		<-in.exited
	}
	if in.logf != nil {
		in.logf.Close()
	}
}

// rssBytes is VmRSS from /proc/PID/status.
func (in *instance) rssBytes() (int64, error) { return procRSS(in.cmd.Process.Pid) }

func procRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseRSS(f)
}

// parseRSS reads the VmRSS line of a /proc/PID/status file.
func parseRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("VmRSS line %q", sc.Text())
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS line")
}

// cpuTime is utime+stime of the process so far.
func (in *instance) cpuTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", in.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	return parseCPU(string(b), clockTicks)
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// parseCPU reads utime and stime (fields 14 and 15) from /proc/PID/stat;
// the command name in parentheses may hold spaces.
func parseCPU(stat string, hz int) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc/PID/stat")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state): utime is field 14, f[11].
	if len(f) < 13 {
		return 0, errors.New("short /proc/PID/stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(u+s) * time.Second / time.Duration(hz), nil
}

// settle waits until the instance uses under 10 % of a core over a 2 s
// window (the key warm-up after start is done), at most limit.
func (in *instance) settle(limit time.Duration) time.Duration {
	start := time.Now()
	for time.Since(start) < limit {
		c0, err := in.cpuTime()
		if err != nil {
			break
		}
		time.Sleep(2 * time.Second)
		c1, err := in.cpuTime()
		if err != nil || c1-c0 < 200*time.Millisecond {
			break
		}
	}
	return time.Since(start)
}

// profile saves /debug/pprof/NAME (seconds long for a CPU profile) of the
// instance to path.
func (in *instance) profile(name string, seconds int, path string) error {
	if in.debug == "" {
		return errors.New("no debug.listen")
	}
	c := &http.Client{Timeout: time.Duration(seconds)*time.Second + time.Minute}
	q := "?gc=1"
	if seconds > 0 {
		q = fmt.Sprintf("?seconds=%d", seconds)
	}
	resp, err := c.Get("http://" + in.debug + "/debug/pprof/" + name + q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("/debug/pprof/%s: %s", name, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
