// Package postfixtest runs a private Postfix instance for integration
// tests: its own main.cf, master.cf, queue and maillog in a temporary
// directory, smtpd on a loopback port, and master in the foreground until
// the test ends. The system's Postfix instance is never touched.
//
// Options choose what the instance does: a relayhost, transport_maps(5)
// entries, relay_domains (to act as an MX), trusted mynetworks, a milter,
// a policy service (check_policy_service, first in
// smtpd_recipient_restrictions), SASL accounts in a private Cyrus sasldb,
// and any further main.cf lines.
//
// It needs Debian's Postfix (/usr/lib/postfix/sbin/master, postconf) and,
// for SASL accounts, saslpasswd2 (sasl2-bin), and must run as root (master
// drops to the postfix user). Without them the test is skipped, or failed
// when CI=true.
package postfixtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Master is Debian's Postfix master daemon.
const Master = "/usr/lib/postfix/sbin/master"

// Options configures an instance. The zero value is an instance that
// relays for nobody and has no default next hop.
type Options struct {
	// Port is smtpd's port on 127.0.0.1; 0 picks a free one.
	Port int
	// Relayhost is the default next hop (relayhost), such as
	// "[127.0.0.1]:2526"; empty: none.
	Relayhost string
	// Transports are transport_maps(5) entries: a domain, or ".domain"
	// for its subdomains, to a transport and next hop such as
	// "smtp:[127.0.0.1]:2525" or "error:5.1.1 user unknown".
	Transports map[string]string
	// RelayDomains are accepted from any client, as an MX for them
	// accepts (relay_domains).
	RelayDomains []string
	// MyNetworks are the clients that relay without AUTH (mynetworks);
	// empty: only 127.0.0.2, which no test client uses unless it binds
	// that address.
	MyNetworks []string
	// Milter is smtpd_milters and non_smtpd_milters, such as
	// "unix:/path/milter.sock" or "inet:127.0.0.1:8891", with
	// milter_default_action = tempfail; empty: none.
	Milter string
	// Policy is a policy service checked before any permit_* restriction
	// (check_policy_service), such as "inet:127.0.0.1:10040"; empty:
	// none.
	Policy string
	// SASL are the accounts of a private Cyrus sasldb; AUTH (PLAIN,
	// LOGIN) is offered only when there are some.
	SASL []Account
	// MainCF are further "name = value" lines. One naming a parameter
	// that is already set replaces that setting (so it may override any
	// of the above); the others are appended.
	MainCF []string
}

// Account is a SASL account. Cyrus stores User in Realm; the client logs
// in as "user@realm" and Postfix reports that whole string as the SASL
// user name (sasl_username, the milter's {auth_authen}).
type Account struct {
	User, Realm, Password string
}

// Instance is a running private Postfix.
type Instance struct {
	// Dir holds main.cf, master.cf, the queue and the maillog.
	Dir string
	// SMTP is "127.0.0.1:PORT" of its smtpd.
	SMTP string

	out *syncBuffer // master's own output
}

// Maillog returns what Postfix has logged so far (maillog_file).
func (p *Instance) Maillog() string {
	b, _ := os.ReadFile(filepath.Join(p.Dir, "maillog"))
	return string(b)
}

// mainCF is the fixed part of main.cf; {{dir}} is the instance directory.
const mainCF = `compatibility_level = 3.6
queue_directory = {{dir}}/queue
data_directory = {{dir}}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.test.localhost
mydomain = test.localhost
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
maillog_file = {{dir}}/maillog
maillog_file_prefixes = {{dir}}
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtp_host_lookup = native
smtp_tls_security_level = none
smtpd_tls_security_level = none
disable_mime_output_conversion = yes
`

// masterCF runs smtpd on {{smtp}} and the usual internal services, none
// chrooted.
const masterCF = `127.0.0.1:{{smtp}} inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`

// masterCFFor is master.cf with smtpd on 127.0.0.1:port.
func masterCFFor(port int) string {
	return strings.ReplaceAll(masterCF, "{{smtp}}", strconv.Itoa(port))
}

// Start writes the instance's files, creates its SASL accounts and runs
// master in the foreground until the test ends, waiting until smtpd
// accepts connections. When the test failed, master's output and the
// maillog are logged.
func Start(t testing.TB, o Options) *Instance {
	t.Helper()
	NeedPostfix(t)
	NeedTool(t, "postconf")
	pfUser, err := user.Lookup("postfix")
	if err != nil {
		t.Fatalf("postfixtest: postfix user: %v", err)
	}
	uid, _ := strconv.Atoi(pfUser.Uid)
	gid, _ := strconv.Atoi(pfUser.Gid)
	// Not t.TempDir: the postfix user must traverse the path (the sasldb,
	// a milter socket next to it).
	dir, err := os.MkdirTemp("", "sendergate-postfix-")
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o755))
	if o.Port == 0 {
		o.Port = FreePort(t)
	}
	p := &Instance{Dir: dir, SMTP: fmt.Sprintf("127.0.0.1:%d", o.Port), out: &syncBuffer{}}
	cf, err := o.mainCF(dir)
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "main.cf"), []byte(cf), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "master.cf"), []byte(masterCFFor(o.Port)), 0o644))
	if len(o.Transports) > 0 {
		must(t, os.WriteFile(filepath.Join(dir, "transport"), []byte(transportMap(o.Transports)), 0o644))
	}
	if len(o.SASL) > 0 {
		makeSASLDB(t, dir, gid, o.SASL)
	}
	MakeQueue(t, dir, uid, gid)
	p.run(t)
	WaitDial(t, p.SMTP)
	return p
}

// mainCF returns the whole main.cf for o in dir.
func (o Options) mainCF(dir string) (string, error) {
	var b strings.Builder
	b.WriteString(strings.ReplaceAll(mainCF, "{{dir}}", dir))
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	for _, v := range []string{o.Relayhost, o.Milter, o.Policy} {
		if strings.ContainsAny(v, "\r\n") {
			return "", fmt.Errorf("option value %q spans lines", v)
		}
	}
	nets := o.MyNetworks
	if len(nets) == 0 {
		nets = []string{"127.0.0.2/32"}
	}
	line("mynetworks = %s", strings.Join(nets, " "))
	line("relay_domains = %s", strings.Join(o.RelayDomains, " "))
	line("relayhost = %s", o.Relayhost)
	if len(o.Transports) > 0 {
		// texthash: read as it is, no postmap needed (Postfix 3.0+).
		line("transport_maps = texthash:%s", filepath.Join(dir, "transport"))
	}
	if len(o.SASL) > 0 {
		line("smtpd_sasl_auth_enable = yes")
		line("smtpd_sasl_type = cyrus")
		line("smtpd_sasl_path = smtpd")
		line("smtpd_sasl_security_options = noanonymous")
	}
	if o.Milter != "" {
		// docs/postfix.md: a milter that cannot be reached tempfails.
		line("smtpd_milters = %s", o.Milter)
		line("non_smtpd_milters = $smtpd_milters")
		line("milter_default_action = tempfail")
		line("milter_protocol = 6")
	}
	line("smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination")
	if o.Policy != "" {
		// docs/postfix.md: the policy service checks the envelope sender
		// before any permit_* restriction.
		line("smtpd_recipient_restrictions = check_policy_service %s, permit_mynetworks, permit_sasl_authenticated, permit_auth_destination, reject", o.Policy)
	}
	return override(b.String(), o.MainCF)
}

// override applies extra "name = value" lines to the main.cf text cf: a
// parameter already set gets the new line in its place (Postfix warns
// about a parameter set twice), others are appended.
func override(cf string, extra []string) (string, error) {
	lines := strings.Split(strings.TrimSuffix(cf, "\n"), "\n")
	name := func(l string) string {
		k, _, _ := strings.Cut(l, "=")
		return strings.TrimSpace(k)
	}
next:
	for _, x := range extra {
		if strings.ContainsAny(x, "\r\n") || !strings.Contains(x, "=") || name(x) == "" {
			return "", fmt.Errorf("main.cf line %q is not one name = value line", x)
		}
		for i, l := range lines {
			if !strings.HasPrefix(l, "#") && name(l) == name(x) {
				lines[i] = x
				continue next
			}
		}
		lines = append(lines, x)
	}
	return strings.Join(lines, "\n") + "\n", nil
}

// transportMap is the transport(5) table, sorted.
func transportMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %s\n", k, m[k])
	}
	return b.String()
}

// makeSASLDB writes Cyrus' smtpd.conf and a sasldb holding accounts,
// readable by group gid (postfix).
func makeSASLDB(t testing.TB, dir string, gid int, accounts []Account) {
	t.Helper()
	saslpasswd := NeedTool(t, "saslpasswd2")
	// Debian's Postfix reads Cyrus' smtpd.conf from $config_directory/sasl.
	must(t, os.MkdirAll(filepath.Join(dir, "sasl"), 0o755))
	sasldb := filepath.Join(dir, "sasldb2")
	must(t, os.WriteFile(filepath.Join(dir, "sasl", "smtpd.conf"), []byte("pwcheck_method: auxprop\nauxprop_plugin: sasldb\n"+
		"sasldb_path: "+sasldb+"\nmech_list: PLAIN LOGIN\n"), 0o644))
	for _, a := range accounts {
		cmd := exec.Command(saslpasswd, "-c", "-p", "-f", sasldb, "-u", a.Realm, a.User)
		cmd.Stdin = strings.NewReader(a.Password)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("postfixtest: saslpasswd2 %s@%s: %v\n%s", a.User, a.Realm, err, out)
		}
	}
	must(t, os.Chown(sasldb, 0, gid))
	must(t, os.Chmod(sasldb, 0o640))
}

// run starts master in the foreground, in a process group of its own,
// and stops it when the test ends: SIGTERM (master stops its children),
// then SIGKILL to the whole group after 10 s.
func (p *Instance) run(t testing.TB) {
	t.Helper()
	cmd := exec.Command(Master, "-c", p.Dir, "-d")
	cmd.Env = append(os.Environ(), "MAIL_CONFIG="+p.Dir)
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A child that outlives master keeps the output pipe open: Wait
	// stops copying after this long.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("postfixtest: start master: %v", err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Logf("postfixtest: master did not stop within 10s of SIGTERM; killing its process group")
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("postfix master output:\n%s\nmaillog:\n%s", p.out.String(), p.Maillog())
		}
	})
}

// NeedPostfix skips the test when Postfix is not installed (fails in CI).
func NeedPostfix(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(Master); err != nil {
		SkipOrFail(t, "Postfix is not installed: "+err.Error())
	}
}

// NeedTool returns the path of an external program, skipping the test
// when it is missing (failing in CI).
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		SkipOrFail(t, fmt.Sprintf("%s not installed: %v", name, err))
	}
	return p
}

// SkipOrFail skips the test, or fails it when CI=true.
func SkipOrFail(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("required in CI: %s", why)
	}
	t.Skip(why)
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// MakeQueue creates the queue and data directories under dir as
// post-install would, owned by uid and gid (the postfix user).
func MakeQueue(t testing.TB, dir string, uid, gid int) {
	t.Helper()
	queue := filepath.Join(dir, "queue")
	must(t, os.MkdirAll(filepath.Join(queue, "pid"), 0o755))
	for _, d := range []string{"active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming",
		"private", "saved", "trace", "maildrop", "public"} {
		p := filepath.Join(queue, d)
		must(t, os.Mkdir(p, 0o700))
		must(t, os.Chown(p, uid, gid))
	}
	data := filepath.Join(dir, "data")
	must(t, os.Mkdir(data, 0o700))
	must(t, os.Chown(data, uid, gid))
}

// WaitDial waits up to 30 s until addr accepts connections (Postfix
// starting up).
func WaitDial(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfixtest: nothing listening on %s after 30s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for master's two output streams and
// a reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
