package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sendergate/sendergate/config"
)

// runDemo is `sendergate demo` (`make demo`): the scripted local trial. It
// starts the daemon in demo mode on free loopback ports in a fresh data
// directory, then walks through the workflow, printing each step and its
// result: an organization and an SMTP account, a domain with every option,
// a broken record and its hint, verification, a restricted grant, a
// message sent over SMTP, the signed message and its DKIM verification
// through DNS, and unauthorized From addresses refused.
func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keep := fs.Bool("keep", false, "keep the demo's data directory (its database, outbox and log) afterwards")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	syscall.Umask(0o077)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "sendergate-demo-")
	if err != nil {
		fmt.Fprintln(stderr, "sendergate demo:", err)
		return 1
	}
	d := &demoRun{out: stdout, dir: dir, start: time.Now()}
	err = d.run(ctx)
	if d.stop != nil {
		d.stop() // the daemon is gone before its directory is
	}
	if err != nil {
		fmt.Fprintf(stdout, "\ndemo failed: %v\nthe daemon's log is %s\n", err, d.logPath())
	}
	if *keep || err != nil {
		fmt.Fprintf(stdout, "the demo's data directory is kept: %s\n", dir)
	} else {
		os.RemoveAll(dir)
	}
	if err != nil {
		return 1
	}
	return 0
}

// demoRun is one scripted trial.
type demoRun struct {
	out   io.Writer
	dir   string
	start time.Time
	step  int

	cfg      config.Config
	demoDNS  string
	cli      *cli
	password string // of billing-app@acme
	stop     func() // stops the daemon and its customer DNS; nil before they start
}

func (d *demoRun) logPath() string { return filepath.Join(d.dir, "sendergate.log") }

// say prints the next step's title.
func (d *demoRun) say(format string, args ...any) {
	d.step++
	fmt.Fprintf(d.out, "\n%2d. %s\n", d.step, fmt.Sprintf(format, args...))
}

// result prints lines under the current step.
func (d *demoRun) result(text string) {
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Fprintf(d.out, "    %s\n", l)
	}
}

func (d *demoRun) run(ctx context.Context) error {
	if err := d.startDaemon(ctx); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "sendergate demo: the daemon runs in demo mode in %s\n", d.dir)
	fmt.Fprintf(d.out, "    admin API %s, SMTP submission %s, provider zone %s on %s, customer DNS %s\n",
		d.cli.c.base, d.cfg.Submission.Listen, d.cfg.DNS.Zone, d.cfg.DNS.Listen, d.demoDNS)
	steps := []func(context.Context) error{d.orgAndAccount, d.addDomain, d.breakAndVerify, d.restrict, d.sendAndCheck, d.refusals}
	for _, s := range steps {
		if err := s(ctx); err != nil {
			return err
		}
	}
	fmt.Fprintf(d.out, "\ndemo done in %.1fs. Try it yourself: `sendergate serve -demo`, then the README's walk-through.\n", time.Since(d.start).Seconds())
	return nil
}

// startDaemon runs serve -demo in this process on free loopback ports and
// waits until it is healthy.
func (d *demoRun) startDaemon(ctx context.Context) error {
	ports, err := freeLoopbackPorts(4)
	if err != nil {
		return err
	}
	cfg := config.Default()
	cfg.DataDir = filepath.Join(d.dir, "data")
	cfg.Database = "sqlite:" + filepath.Join(cfg.DataDir, "sendergate.db")
	cfg.Admin.Listen = ports[0]
	cfg.Admin.PublicURL = "http://" + ports[0]
	cfg.Submission.Listen = ports[1]
	cfg.DNS.Listen = ports[2]
	if err := cfg.Validate(); err != nil {
		return err
	}
	logf, err := os.OpenFile(d.logPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	stopDNS, err := (&demoMode{on: true, addr: ports[3]}).start(&cfg, logger)
	if err != nil {
		logf.Close()
		return err
	}
	d.cfg, d.demoDNS = cfg, ports[3]
	stopped := make(chan struct{})
	var serveErr error
	sctx, stopServe := context.WithCancel(context.Background())
	go func() { serveErr = serve(sctx, cfg, logger); close(stopped) }()
	d.stop = func() {
		stopServe()
		<-stopped
		stopDNS()
		logf.Close()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-stopped:
			return fmt.Errorf("the daemon stopped at start: %v", serveErr)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if healthy("http://" + cfg.Admin.Listen + "/healthz") {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the daemon did not become healthy within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.cli = &cli{stdout: d.out, stderr: d.out, getenv: func(string) string { return "" }}
	key, err := os.ReadFile(filepath.Join(cfg.DataDir, "admin.key"))
	if err != nil {
		return err
	}
	d.cli.c = &client{base: "http://" + cfg.Admin.Listen, key: strings.TrimSpace(string(key)), hc: &http.Client{Timeout: 30 * time.Second}}
	d.cli.org = "acme"
	return nil
}

// healthy tells whether url answers 200.
func healthy(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// acceptedID finds the message id in the reply to DATA.
var acceptedID = regexp.MustCompile(`accepted as ([A-Za-z0-9._=+-]+)`)

// freeLoopbackPorts returns n loopback addresses whose port was free a
// moment ago for both TCP and UDP.
func freeLoopbackPorts(n int) ([]string, error) {
	var out []string
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for len(out) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		held = append(held, l)
		pc, err := net.ListenPacket("udp", l.Addr().String())
		if err != nil {
			continue
		}
		held = append(held, pc)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

func (d *demoRun) orgAndAccount(ctx context.Context) error {
	d.say("create the organization acme (admin key)")
	var o orgJSON
	if _, err := d.cli.c.post(ctx, "/v1/orgs", map[string]string{"name": "acme"}, &o); err != nil {
		return err
	}
	d.result(fmt.Sprintf("organization %s, with the pre-verified sandbox domain %s", o.Name, o.SandboxDomain))
	d.say("create the SMTP account billing-app")
	var a accountJSON
	if _, err := d.cli.c.post(ctx, d.cli.orgPath("smtp-accounts"), map[string]string{"name": "billing-app"}, &a); err != nil {
		return err
	}
	d.password = a.Password
	d.result(fmt.Sprintf("username %s, password %s (shown once)", a.Username, a.Password))
	return nil
}

const demoDomain = "newsletter.example.com"

func (d *demoRun) addDomain(ctx context.Context) error {
	d.say("add %s with every option (return path, tracking, selector, algorithm, DMARC)", demoDomain)
	in := domainFlags{returnPath: "mailing", tracking: "click", selector: "mkt1", algorithm: "rsa-2048",
		dmarcPolicy: "quarantine", dmarcRUA: "dmarc@example.com", dmarcPct: 50}.input(demoDomain)
	var dom domainJSON
	if _, err := d.cli.c.post(ctx, d.cli.orgPath("domains"), in, &dom); err != nil {
		return err
	}
	b, err := d.cli.c.call(ctx, http.MethodGet, d.cli.orgPath("domains", demoDomain, "zonefile"), nil)
	if err != nil {
		return err
	}
	d.result(fmt.Sprintf("status %s; the records to publish (the demo's customer DNS publishes them at once):\n%s", dom.Status, b))
	return nil
}

func (d *demoRun) breakAndVerify(ctx context.Context) error {
	host := "mkt1._domainkey." + demoDomain
	path := filepath.Join(d.cfg.DataDir, demoOverrides)
	d.say("break a record: a TXT pasted where the DKIM CNAME belongs (%s), then verify", demoOverrides)
	if err := os.WriteFile(path, []byte(host+". IN TXT \"v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\"\n"), 0o600); err != nil {
		return err
	}
	dom, err := d.verify(ctx)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "status %s\n", dom.Status)
	writeChecks(&b, dom.Records, "")
	d.result(b.String())
	if dom.Status == "verified" {
		return errors.New("the broken record verified")
	}
	d.say("repair it (remove %s) and verify again", demoOverrides)
	if err := os.Remove(path); err != nil {
		return err
	}
	if dom, err = d.verify(ctx); err != nil {
		return err
	}
	b.Reset()
	fmt.Fprintf(&b, "status %s\n", dom.Status)
	writeChecks(&b, dom.Records, "")
	d.result(b.String())
	if dom.Status != "verified" {
		return fmt.Errorf("%s is %s, not verified", demoDomain, dom.Status)
	}
	return nil
}

func (d *demoRun) verify(ctx context.Context) (domainJSON, error) {
	var dom domainJSON
	_, err := d.cli.c.post(ctx, d.cli.orgPath("domains", demoDomain, "verify"), nil, &dom)
	return dom, err
}

func (d *demoRun) restrict(ctx context.Context) error {
	d.say("restrict %s to billing-app", demoDomain)
	var dom domainJSON
	if _, err := d.cli.c.put(ctx, d.cli.orgPath("domains", demoDomain, "access"),
		map[string]any{"restricted": true, "accounts": []string{"billing-app"}}, &dom); err != nil {
		return err
	}
	d.result("may send: " + access(dom))
	return nil
}

func (d *demoRun) sendAndCheck(ctx context.Context) error {
	d.say("send over SMTP (STARTTLS, AUTH) as billing-app@acme, From news@%s", demoDomain)
	reply, err := d.send("billing-app@acme", d.password, "news@"+demoDomain)
	if err != nil {
		return err
	}
	d.result(reply)
	id := acceptedID.FindStringSubmatch(reply)
	if id == nil {
		return fmt.Errorf("no message id in %q", reply)
	}
	file := filepath.Join(d.cfg.DataDir, "outbox", id[1]+".eml")
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	d.say("the signed message, as the upstream gets it (%s)", file)
	head, _, _ := strings.Cut(string(crlf(data)), "\r\n\r\n")
	d.result(strings.ReplaceAll(head, "\r\n", "\n"))
	d.say("check its DKIM signature through DNS, as a receiver: sendergate check-message -resolver %s FILE", d.demoDNS)
	keys, err := newKeyLookup(d.cfg, d.demoDNS)
	if err != nil {
		return err
	}
	var b strings.Builder
	ok, err := checkFile(&b, file, keys)
	if err != nil {
		return err
	}
	d.result(b.String())
	if !ok {
		return errors.New("the signature does not verify")
	}
	return nil
}

func (d *demoRun) refusals(ctx context.Context) error {
	d.say("send as billing-app@acme with a From domain acme never verified")
	reply, err := d.send("billing-app@acme", d.password, "ceo@bank.example")
	if err == nil {
		return fmt.Errorf("an unverified From domain was accepted: %s", reply)
	}
	d.result("refused at the end of DATA: " + replyText(err))
	d.say("send from %s as another account, intern@acme, which is not granted it", demoDomain)
	var a accountJSON
	if _, err := d.cli.c.post(ctx, d.cli.orgPath("smtp-accounts"), map[string]string{"name": "intern"}, &a); err != nil {
		return err
	}
	reply, err = d.send(a.Username, a.Password, "news@"+demoDomain)
	if err == nil {
		return fmt.Errorf("an account without the grant was accepted: %s", reply)
	}
	d.result("refused at the end of DATA: " + replyText(err))
	return nil
}

// replyText writes an SMTP refusal as its reply line: "550 5.7.1 text".
func replyText(err error) string {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		e := se.EnhancedCode
		return fmt.Sprintf("%d %d.%d.%d %s", se.Code, e[0], e[1], e[2], se.Message)
	}
	return err.Error()
}

// send submits one message and returns the final reply, or the refusal.
func (d *demoRun) send(user, pass, from string) (string, error) {
	c, err := smtp.DialStartTLS(d.cfg.Submission.Listen, &tls.Config{InsecureSkipVerify: true}) // the demo's self-signed certificate
	if err != nil {
		return "", fmt.Errorf("SMTP: %w", err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
		return "", err
	}
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	if err := c.Rcpt("someone@example.org", nil); err != nil {
		return "", err
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	msg := "From: " + from + "\r\nTo: someone@example.org\r\nSubject: Hello from the sendergate demo\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\nThis message was signed by sendergate.\r\n"
	if _, err := io.WriteString(w, msg); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	_ = c.Quit()
	return "250 " + resp.StatusText, nil
}
