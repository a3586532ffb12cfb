package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sendergate/sendergate/config"
)

// The client commands (orgs, accounts, keys, domains, addresses) drive a
// running daemon through its admin API, as curl would: they hold no
// policy of their own. The key is SENDERGATE_ADMIN_KEY when set (an
// organization key works too, within its organization), else the content
// of data_dir/admin.key; the API is -api URL, else http://admin.listen.

// cli is one client command's invocation.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string

	// Flags every client command takes.
	api, configPath string
	asJSON          bool
	quiet           bool   // print only the secret a command creates
	org             string // -org, for commands inside an organization
	domain          domainFlags

	c *client
}

// clientFlags adds the flags every client command takes; withOrg adds -org.
func (c *cli) clientFlags(fs *flag.FlagSet, withOrg bool) {
	fs.StringVar(&c.api, "api", "", "admin API base URL (default http://ADMIN.LISTEN from the config)")
	fs.StringVar(&c.configPath, "config", "", "TOML config file, for data_dir and admin.listen (default ./sendergate.toml if it exists)")
	fs.BoolVar(&c.asJSON, "json", false, "print the API's JSON answer instead of a table")
	if withOrg {
		fs.StringVar(&c.org, "org", "", "the organization (required)")
	}
}

// parse parses args with fs, flags allowed before, between and after the
// positional arguments, and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

// connect finds the API and the key and makes the client.
func (c *cli) connect() error {
	cfg, _, err := config.Load(c.configPath, c.getenv)
	if err != nil {
		return err
	}
	base := c.api
	if base == "" {
		base = "http://" + dialable(cfg.Admin.Listen)
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-api %q must be an http:// or https:// URL", base)
	}
	key := strings.TrimSpace(c.getenv(config.EnvAdminKey))
	if key == "" {
		path := filepath.Join(cfg.DataDir, "admin.key")
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("no admin key: set %s, or run where %s is readable (data_dir = %s): %w",
				config.EnvAdminKey, path, cfg.DataDir, err)
		}
		key = strings.TrimSpace(string(b))
	}
	c.c = &client{base: strings.TrimSuffix(base, "/"), key: key, hc: &http.Client{Timeout: 60 * time.Second}}
	return nil
}

// dialable turns a listen address into one to dial: no host or an
// unspecified one ("0.0.0.0", "[::]") becomes loopback.
func dialable(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// needOrg checks that -org was given.
func (c *cli) needOrg() error {
	if c.org == "" {
		return errors.New("-org ORG is required")
	}
	return nil
}

// orgPath is /v1/orgs/{org} followed by the escaped segments.
func (c *cli) orgPath(segments ...string) string {
	p := "/v1/orgs/" + url.PathEscape(c.org)
	for _, s := range segments {
		p += "/" + url.PathEscape(s)
	}
	return p
}

// show prints raw (the API's JSON) with -json, else calls table.
func (c *cli) show(raw []byte, table func(w *tabwriter.Writer)) error {
	if c.asJSON {
		var buf bytes.Buffer
		if err := json.Indent(&buf, raw, "", "  "); err != nil {
			_, err = c.stdout.Write(raw)
			return err
		}
		buf.WriteByte('\n')
		_, err := c.stdout.Write(buf.Bytes())
		return err
	}
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	table(w)
	return w.Flush()
}

// client is the admin API over HTTP.
type client struct {
	base, key string
	hc        *http.Client
}

// apiError is an error answer of the admin API:
// {"error": {"code", "field", "message"}}.
type apiError struct {
	Status  int
	Code    string `json:"code"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("%d %s", e.Status, e.Code)
	if e.Field != "" {
		s += " (" + e.Field + ")"
	}
	return s + ": " + e.Message
}

// call sends one request (in, when not nil, as its JSON body) and returns
// the answer's body; a non-2xx answer is an *apiError.
func (cl *client) call(ctx context.Context, method, path string, in any) ([]byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, cl.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+cl.key)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := cl.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("cannot reach the admin API at %s (is `sendergate serve` running? set -api URL): %w", cl.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error apiError `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error.Code == "" {
			return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
		}
		e.Error.Status = resp.StatusCode
		return nil, &e.Error
	}
	return b, nil
}

// get, post, put and del are call with a method; out (when not nil)
// receives the decoded answer and the raw answer is returned.
func (cl *client) get(ctx context.Context, path string, out any) ([]byte, error) {
	return cl.decode(cl.call(ctx, http.MethodGet, path, nil))(out)
}

func (cl *client) post(ctx context.Context, path string, in, out any) ([]byte, error) {
	return cl.decode(cl.call(ctx, http.MethodPost, path, in))(out)
}

func (cl *client) put(ctx context.Context, path string, in, out any) ([]byte, error) {
	return cl.decode(cl.call(ctx, http.MethodPut, path, in))(out)
}

func (cl *client) del(ctx context.Context, path string) error {
	_, err := cl.call(ctx, http.MethodDelete, path, nil)
	return err
}

func (cl *client) decode(b []byte, err error) func(out any) ([]byte, error) {
	return func(out any) ([]byte, error) {
		if err != nil || out == nil || len(b) == 0 {
			return b, err
		}
		if err := json.Unmarshal(b, out); err != nil {
			return b, fmt.Errorf("admin API answer: %w", err)
		}
		return b, nil
	}
}

// subcommand is one verb of a client command ("domains add").
type subcommand struct {
	name, usage string
	// flags adds the verb's own flags, set on c; nil: none.
	flags func(fs *flag.FlagSet, c *cli)
	// args is the number of positional arguments; -1 any.
	args int
	run  func(ctx context.Context, c *cli, args []string) error
}

// clientCommand is a client command: its verbs, the first being the
// default when none is given.
type clientCommand struct {
	name    string
	withOrg bool
	verbs   []subcommand
}

func (cc clientCommand) usage() string {
	var b strings.Builder
	for _, v := range cc.verbs {
		org := ""
		if cc.withOrg {
			org = " -org ORG"
		}
		fmt.Fprintf(&b, "  sendergate %s %s%s %s\n", cc.name, v.name, org, v.usage)
	}
	return b.String()
}

// run runs the command with args (the verb first) and returns the exit
// status: 0, 1 for a failure, 2 for a usage error.
func (cc clientCommand) run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	verb := cc.verbs[0]
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		found := false
		for _, v := range cc.verbs {
			if v.name == args[0] {
				verb, found, args = v, true, args[1:]
				break
			}
		}
		if !found {
			fmt.Fprintf(stderr, "sendergate %s: unknown verb %q\nusage:\n%s", cc.name, args[0], cc.usage())
			return 2
		}
	}
	c := &cli{stdout: stdout, stderr: stderr, getenv: getenv}
	fs := flag.NewFlagSet(cc.name+" "+verb.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.clientFlags(fs, cc.withOrg)
	if verb.flags != nil {
		verb.flags(fs, c)
	}
	pos, err := parse(fs, args)
	if err != nil {
		return 2
	}
	if verb.args >= 0 && len(pos) != verb.args {
		fmt.Fprintf(stderr, "usage:\n%s", cc.usage())
		return 2
	}
	if cc.withOrg {
		if err := c.needOrg(); err != nil {
			fmt.Fprintf(stderr, "sendergate %s %s: %v\n", cc.name, verb.name, err)
			return 2
		}
	}
	if err := c.connect(); err != nil {
		fmt.Fprintln(stderr, "sendergate:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := verb.run(ctx, c, pos); err != nil {
		fmt.Fprintln(stderr, "sendergate:", err)
		return 1
	}
	return 0
}

// clientCommands are the client commands by name.
func clientCommands() map[string]clientCommand {
	out := map[string]clientCommand{}
	for _, cc := range []clientCommand{orgsCommand(), accountsCommand(), keysCommand(), domainsCommand(), addressesCommand()} {
		out[cc.name] = cc
	}
	return out
}

// when writes an API time for a table: UTC, to the second; "-" for none.
func when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}
