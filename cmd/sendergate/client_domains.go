package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// domainJSON is the admin API's Domain as the client reads it.
type domainJSON struct {
	Name             string `json:"name"`
	Sandbox          bool   `json:"sandbox"`
	Status           string `json:"status"`
	ReturnPathDomain string `json:"return_path_domain"`
	TrackingDomain   string `json:"tracking_domain"`
	DKIMSelector     string `json:"dkim_selector"`
	DKIMAlgorithm    string `json:"dkim_algorithm"`
	DMARC            *struct {
		Policy string `json:"policy"`
		RUA    string `json:"rua"`
		Pct    int    `json:"pct"`
	} `json:"dmarc"`
	Access struct {
		Restricted bool     `json:"restricted"`
		Accounts   []string `json:"accounts"`
	} `json:"access"`
	Records       []recordJSON `json:"records"`
	DKIM          *dkimJSON    `json:"dkim"`
	CreatedAt     *time.Time   `json:"created_at"`
	VerifiedAt    *time.Time   `json:"verified_at"`
	LastCheckedAt *time.Time   `json:"last_checked_at"`
}

// dkimJSON is the Domain output's dkim: the keys by state and the rotation.
type dkimJSON struct {
	Active   *dkimKeyJSON  `json:"active"`
	Next     *dkimKeyJSON  `json:"next"`
	Retired  []dkimKeyJSON `json:"retired"`
	Rotation struct {
		Status      string     `json:"status"`
		PossibleAt  *time.Time `json:"possible_at"`
		AutomaticAt *time.Time `json:"automatic_at"`
		Reason      string     `json:"reason"`
	} `json:"rotation"`
}

type dkimKeyJSON struct {
	Selector       string     `json:"selector"`
	Algorithm      string     `json:"algorithm"`
	BYOK           bool       `json:"byok"`
	ActivatedAt    *time.Time `json:"activated_at"`
	SafeToRemoveAt *time.Time `json:"safe_to_remove_at"`
}

// writeKeys writes the DKIM keys and the rotation state as comments.
func writeKeys(w io.Writer, k *dkimJSON) {
	if k == nil {
		return
	}
	if k.Active != nil {
		own := ""
		if k.Active.BYOK {
			own = ", your own key"
		}
		fmt.Fprintf(w, "; DKIM key signing: %s (%s%s) since %s\n", k.Active.Selector, k.Active.Algorithm, own, when(k.Active.ActivatedAt))
	}
	if k.Next != nil {
		fmt.Fprintf(w, "; DKIM key next: %s (%s), published, signs after the next rotation\n", k.Next.Selector, k.Next.Algorithm)
	}
	for _, r := range k.Retired {
		fmt.Fprintf(w, "; DKIM key retired: %s (%s), published until %s\n", r.Selector, r.Algorithm, when(r.SafeToRemoveAt))
	}
	switch r := k.Rotation; r.Status {
	case "ready":
		if r.AutomaticAt != nil {
			fmt.Fprintf(w, "; rotation: possible now; automatic at %s\n", when(r.AutomaticAt))
		} else {
			fmt.Fprintln(w, "; rotation: possible now")
		}
	case "waiting":
		fmt.Fprintf(w, "; rotation: possible from %s\n", when(r.PossibleAt))
	case "":
	default:
		fmt.Fprintf(w, "; rotation: %s: %s\n", r.Status, r.Reason)
	}
}

type recordJSON struct {
	Purpose string `json:"purpose"`
	Host    string `json:"host"`
	Type    string `json:"type"`
	Value   string `json:"value"`
	Status  string `json:"status"`
	Found   string `json:"found"`
	Reason  string `json:"reason"`
	Note    string `json:"note"`
}

// domainFlags are the options of `domains add` and `domains access`.
type domainFlags struct {
	returnPath, tracking, selector, algorithm string
	dmarcPolicy, dmarcRUA                     string
	dmarcPct                                  int
	open                                      bool
}

func addDomainFlags(fs *flag.FlagSet, c *cli) {
	d := &c.domain
	fs.StringVar(&d.returnPath, "return-path", "", "label of the return-path (bounce) domain: LABEL.DOMAIN")
	fs.StringVar(&d.tracking, "tracking", "", "label of the link-tracking domain: LABEL.DOMAIN")
	fs.StringVar(&d.selector, "selector", "", "DKIM selector, 3-7 of [a-z0-9] (default sg1)")
	fs.StringVar(&d.algorithm, "algorithm", "", "DKIM algorithm: rsa-2048 (default) or ed25519")
	fs.StringVar(&d.dmarcPolicy, "dmarc", "", "delegate DMARC with this policy: none, quarantine or reject")
	fs.StringVar(&d.dmarcRUA, "dmarc-rua", "", "address for DMARC aggregate reports (with -dmarc)")
	fs.IntVar(&d.dmarcPct, "dmarc-pct", 0, "percentage of mail the DMARC policy applies to, 1-100 (with -dmarc; default 100)")
}

// input is the Domain input of the API for name.
func (d domainFlags) input(name string) map[string]any {
	in := map[string]any{"name": name}
	for k, v := range map[string]string{"return_path": d.returnPath, "tracking": d.tracking,
		"dkim_selector": d.selector, "dkim_algorithm": d.algorithm} {
		if v != "" {
			in[k] = v
		}
	}
	if d.dmarcPolicy != "" || d.dmarcRUA != "" || d.dmarcPct != 0 {
		dm := map[string]any{"policy": d.dmarcPolicy}
		if d.dmarcRUA != "" {
			dm["rua"] = d.dmarcRUA
		}
		if d.dmarcPct != 0 {
			dm["pct"] = d.dmarcPct
		}
		in["dmarc"] = dm
	}
	return in
}

func domainsCommand() clientCommand {
	return clientCommand{name: "domains", withOrg: true, verbs: []subcommand{
		{name: "list", args: 0, run: listDomains},
		{name: "add", usage: "[-return-path L] [-tracking L] [-selector S] [-algorithm A] [-dmarc P [-dmarc-rua EMAIL] [-dmarc-pct N]] DOMAIN",
			args: 1, flags: addDomainFlags, run: addDomain},
		{name: "show", usage: "DOMAIN", args: 1, run: showDomain},
		{name: "verify", usage: "DOMAIN", args: 1, run: verifyDomain},
		{name: "access", usage: "DOMAIN ACCOUNT... | -open DOMAIN", args: -1, flags: func(fs *flag.FlagSet, c *cli) {
			fs.BoolVar(&c.domain.open, "open", false, "let every SMTP account of the organization send from the domain")
		}, run: setAccess},
		{name: "delete", usage: "DOMAIN", args: 1, run: func(ctx context.Context, c *cli, a []string) error {
			if err := c.c.del(ctx, c.orgPath("domains", a[0])); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "domain %s deleted; mail from it is refused from now on\n", a[0])
			return nil
		}},
	}}
}

func listDomains(ctx context.Context, c *cli, _ []string) error {
	var l struct{ Domains []domainJSON }
	raw, err := c.c.get(ctx, c.orgPath("domains"), &l)
	if err != nil {
		return err
	}
	return c.show(raw, func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "DOMAIN\tSTATUS\tRECORDS OK\tACCESS\tLAST CHECKED")
		for _, d := range l.Domains {
			records := fmt.Sprintf("%d/%d", countOK(d.Records), len(d.Records))
			if d.Sandbox {
				records = "sandbox"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", d.Name, d.Status, records, access(d), when(d.LastCheckedAt))
		}
	})
}

func countOK(recs []recordJSON) int {
	n := 0
	for _, r := range recs {
		if r.Status == "ok" {
			n++
		}
	}
	return n
}

// access words a domain's access rule.
func access(d domainJSON) string {
	if !d.Access.Restricted {
		return "every account"
	}
	if len(d.Access.Accounts) == 0 {
		return "no account (restricted to none)"
	}
	return "only " + strings.Join(d.Access.Accounts, ", ")
}

func addDomain(ctx context.Context, c *cli, a []string) error {
	var d domainJSON
	raw, err := c.c.post(ctx, c.orgPath("domains"), c.domain.input(a[0]), &d)
	if err != nil {
		return err
	}
	if c.asJSON {
		return c.show(raw, nil)
	}
	fmt.Fprintf(c.stdout, "; domain %s added (%s): publish these records at its DNS provider, then run\n;   sendergate domains verify -org %s %s\n", d.Name, d.Status, c.org, d.Name)
	return c.zonefile(ctx, d.Name)
}

// zonefile prints the domain's records as zone-file lines (the zonefile
// route's text).
func (c *cli) zonefile(ctx context.Context, name string) error {
	b, err := c.c.call(ctx, "GET", c.orgPath("domains", name, "zonefile"), nil)
	if err != nil {
		return err
	}
	_, err = c.stdout.Write(b)
	return err
}

// showDomain prints the domain as a zone-file snippet: facts and check
// results as comments, the records as lines a BIND-style import accepts.
func showDomain(ctx context.Context, c *cli, a []string) error {
	var d domainJSON
	raw, err := c.c.get(ctx, c.orgPath("domains", a[0]), &d)
	if err != nil {
		return err
	}
	if c.asJSON {
		return c.show(raw, nil)
	}
	w := c.stdout
	fmt.Fprintf(w, "; %s (organization %s): %s; last checked %s, verified %s\n", d.Name, c.org, d.Status, when(d.LastCheckedAt), when(d.VerifiedAt))
	fmt.Fprintf(w, "; envelope sender domain %s; DKIM selector %s (%s); may send: %s\n", d.ReturnPathDomain, d.DKIMSelector, d.DKIMAlgorithm, access(d))
	writeKeys(w, d.DKIM)
	if err := c.zonefile(ctx, d.Name); err != nil {
		return err
	}
	if len(d.Records) > 0 {
		fmt.Fprintln(w, "; checks:")
	}
	writeChecks(w, d.Records, "; ")
	return nil
}

// writeChecks writes each record's check: status, what was found, the
// reason and any note, each line after prefix.
func writeChecks(w io.Writer, recs []recordJSON, prefix string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range recs {
		line := r.Status
		if r.Found != "" && r.Status != "ok" {
			line += " (found " + r.Found + ")"
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\n", prefix, r.Purpose, r.Host, oneLine(line))
	}
	_ = tw.Flush()
	for _, r := range recs {
		if r.Reason != "" {
			fmt.Fprintf(w, "%s%s: %s\n", prefix, r.Purpose, oneLine(r.Reason))
		}
		if r.Note != "" {
			fmt.Fprintf(w, "%s%s: note: %s\n", prefix, r.Purpose, oneLine(r.Note))
		}
	}
}

// oneLine keeps a text on one line, so that it stays a comment.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func verifyDomain(ctx context.Context, c *cli, a []string) error {
	var d domainJSON
	raw, err := c.c.post(ctx, c.orgPath("domains", a[0], "verify"), nil, &d)
	if err != nil {
		return err
	}
	if c.asJSON {
		return c.show(raw, nil)
	}
	fmt.Fprintf(c.stdout, "%s: %s\n", d.Name, d.Status)
	writeChecks(c.stdout, d.Records, "  ")
	return nil
}

func setAccess(ctx context.Context, c *cli, a []string) error {
	if len(a) == 0 || (c.domain.open && len(a) != 1) {
		return fmt.Errorf("usage: domains access -org ORG DOMAIN ACCOUNT... (only these accounts may send) or domains access -org ORG -open DOMAIN")
	}
	accounts := append([]string{}, a[1:]...)
	var d domainJSON
	raw, err := c.c.put(ctx, c.orgPath("domains", a[0], "access"),
		map[string]any{"restricted": !c.domain.open, "accounts": accounts}, &d)
	if err != nil {
		return err
	}
	return c.show(raw, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "%s\tmay send: %s\n", d.Name, access(d))
	})
}
