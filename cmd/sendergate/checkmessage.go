package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"strings"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"

	"github.com/sendergate/sendergate/config"
	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/relay"
)

// checkMessage is `sendergate check-message [-resolver IP:PORT] FILE...`:
// it verifies each file's DKIM signatures (RFC 6376 6) against DNS, as a
// receiver would, and prints per signature d=, s= and the result, and the
// envelope sender when the file carries one (an outbox file's
// X-Sendergate-Envelope-From, or the Return-Path a receiver adds). Keys
// are looked up through -resolver when given; otherwise through
// dns.resolvers, with names inside dns.zone asked of dns.listen directly,
// so a message signed by this instance verifies before the zone is
// delegated. The exit status is 0 when every file has signatures and all
// of them pass.
func checkMessage(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("check-message", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "TOML config file, for dns.zone, dns.listen and dns.resolvers")
	resolver := fs.String("resolver", "", "ask this DNS server (ip:port) for every key, as a receiver's resolver")
	files, err := parse(fs, args)
	if err != nil {
		return 2
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "usage: sendergate check-message [-config FILE] [-resolver IP:PORT] FILE.eml...")
		return 2
	}
	cfg, _, err := config.Load(*configPath, getenv)
	if err != nil {
		fmt.Fprintln(stderr, "sendergate:", err)
		return 2
	}
	keys, err := newKeyLookup(cfg, *resolver)
	if err != nil {
		fmt.Fprintln(stderr, "sendergate:", err)
		return 2
	}
	code := 0
	for _, f := range files {
		ok, err := checkFile(stdout, f, keys)
		if err != nil {
			fmt.Fprintf(stderr, "sendergate: %s: %v\n", f, err)
			code = 1
			continue
		}
		if !ok {
			code = 1
		}
	}
	return code
}

// checkFile prints the envelope sender and each signature's result for
// one file, and reports whether every signature passed.
func checkFile(w io.Writer, path string, keys *keyLookup) (bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	data = crlf(data)
	head, err := readHeader(data)
	if err != nil {
		return false, err
	}
	fmt.Fprintf(w, "%s\n", path)
	if from := envelopeSender(head); from != "" {
		fmt.Fprintf(w, "  envelope sender  %s\n", from)
	}
	if from := head.Get("From"); from != "" {
		fmt.Fprintf(w, "  From             %s\n", oneLine(from))
	}
	sigs := head[textproto.CanonicalMIMEHeaderKey("DKIM-Signature")]
	if len(sigs) == 0 {
		fmt.Fprintln(w, "  no DKIM signature: the message is unsigned")
		return false, nil
	}
	vs, err := msgauth.VerifyWithOptions(bytes.NewReader(data), &msgauth.VerifyOptions{LookupTXT: keys.txt})
	if err != nil && len(vs) == 0 {
		return false, fmt.Errorf("DKIM: %w", err)
	}
	all := true
	for i, v := range vs {
		tags := dkimTags(sigs[min(i, len(sigs)-1)])
		result := "pass"
		if v.Err != nil {
			all = false
			result = "fail: " + v.Err.Error()
			if msgauth.IsTempFail(v.Err) {
				result = "temperror: " + v.Err.Error()
			}
		}
		fmt.Fprintf(w, "  DKIM d=%s s=%s a=%s: %s\n", tags["d"], tags["s"], tags["a"], result)
	}
	if all {
		fmt.Fprintln(w, "  signed message verified")
	}
	return all, nil
}

// crlf turns a file saved with bare LF line endings (as many mail tools
// write) back into the CRLF the signature was computed over.
func crlf(b []byte) []byte {
	if bytes.Contains(b, []byte("\r\n")) {
		return b
	}
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
}

// readHeader parses the header block (RFC 5322 2.2).
func readHeader(data []byte) (mail.Header, error) {
	m, err := mail.ReadMessage(bufio.NewReader(bytes.NewReader(data)))
	if err != nil {
		return nil, fmt.Errorf("not an email message: %w", err)
	}
	return m.Header, nil
}

// envelopeSender is the outbox's envelope header, or the Return-Path a
// receiver adds on delivery (RFC 5321 4.4).
func envelopeSender(h mail.Header) string {
	for _, k := range []string{relay.HeaderEnvelopeFrom, "Return-Path"} {
		if v := strings.TrimSpace(h.Get(k)); v != "" {
			return strings.Trim(v, "<>") + "   (" + k + ")"
		}
	}
	return ""
}

// dkimTags parses a DKIM-Signature value's tag list (RFC 6376 3.2).
func dkimTags(v string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(v, ";") {
		k, val, ok := strings.Cut(part, "=")
		if ok {
			out[strings.TrimSpace(k)] = strings.Join(strings.Fields(val), "")
		}
	}
	return out
}

// keyLookup finds DKIM key TXT records as a receiver does: through a
// resolver, following CNAMEs; names in the provider zone may be asked of
// sendergate's own zone server.
type keyLookup struct {
	res  *domains.DNSResolver
	zone *domains.DNSResolver // nil: the zone through res
	name string               // dns.zone
}

func newKeyLookup(cfg config.Config, resolver string) (*keyLookup, error) {
	const timeout = 5 * time.Second
	if resolver != "" {
		r, err := domains.NewDNSResolver([]string{resolver}, timeout)
		if err != nil {
			return nil, fmt.Errorf("-resolver: %w", err)
		}
		return &keyLookup{res: r}, nil
	}
	r, err := domains.NewDNSResolver(cfg.DNS.Resolvers, timeout)
	if err != nil {
		return nil, fmt.Errorf("dns.resolvers: %w", err)
	}
	k := &keyLookup{res: r, name: cfg.DNS.Zone}
	if cfg.DNS.Listen != "" {
		if k.zone, err = domains.NewDNSResolver([]string{dialable(cfg.DNS.Listen)}, timeout); err != nil {
			return nil, fmt.Errorf("dns.listen: %w", err)
		}
	}
	return k, nil
}

// txt is go-msgauth's LookupTXT: the TXT strings at name (joined per
// record), after at most 8 CNAMEs. A definite absence is a not-found
// *net.DNSError (a permanent failure), a failed lookup a temporary one.
func (k *keyLookup) txt(name string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	orig := name
	for range 8 {
		r := k.res
		if k.zone != nil && (name == k.name || strings.HasSuffix(name, "."+k.name)) {
			r = k.zone
		}
		d, err := r.Lookup(ctx, name, "TXT")
		if err != nil {
			return nil, &net.DNSError{Err: err.Error(), Name: orig, IsTemporary: true}
		}
		if len(d.Values) > 0 {
			return d.Values, nil
		}
		ans, err := r.LookupCNAME(ctx, name)
		if err != nil {
			return nil, &net.DNSError{Err: err.Error(), Name: orig, IsTemporary: true}
		}
		if ans.CNAME == "" {
			return nil, &net.DNSError{Err: "no TXT record at " + name, Name: orig, IsNotFound: true}
		}
		name = ans.CNAME
	}
	return nil, &net.DNSError{Err: "CNAME chain longer than 8", Name: orig}
}
