package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"text/tabwriter"
	"time"
)

// orgJSON, accountJSON, keyJSON and addressJSON are the admin API's
// answers as the client reads them.
type orgJSON struct {
	Name          string     `json:"name"`
	SandboxDomain string     `json:"sandbox_domain"`
	CreatedAt     *time.Time `json:"created_at"`
}

type accountJSON struct {
	Name      string     `json:"name"`
	Username  string     `json:"username"`
	Password  string     `json:"password"`
	CreatedAt *time.Time `json:"created_at"`
	UpdatedAt *time.Time `json:"updated_at"`
}

type keyJSON struct {
	ID  string `json:"id"`
	Key string `json:"key"`
}

type addressJSON struct {
	Email       string     `json:"email"`
	Status      string     `json:"status"`
	CreatedAt   *time.Time `json:"created_at"`
	ConfirmedAt *time.Time `json:"confirmed_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
}

// quietFlag adds -q: print only the secret the command creates, for
// capturing it in a shell variable.
func quietFlag(fs *flag.FlagSet, c *cli) {
	fs.BoolVar(&c.quiet, "q", false, "print only the secret (password or key), to capture it: P=$(sendergate ... -q)")
}

func orgsCommand() clientCommand {
	return clientCommand{name: "orgs", verbs: []subcommand{
		{name: "list", args: 0, run: func(ctx context.Context, c *cli, _ []string) error {
			var l struct{ Orgs []orgJSON }
			raw, err := c.c.get(ctx, "/v1/orgs", &l)
			if err != nil {
				return err
			}
			return c.show(raw, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "NAME\tSANDBOX DOMAIN\tCREATED")
				for _, o := range l.Orgs {
					fmt.Fprintf(w, "%s\t%s\t%s\n", o.Name, o.SandboxDomain, when(o.CreatedAt))
				}
			})
		}},
		{name: "add", usage: "NAME", args: 1, run: func(ctx context.Context, c *cli, a []string) error {
			var o orgJSON
			raw, err := c.c.post(ctx, "/v1/orgs", map[string]string{"name": a[0]}, &o)
			if err != nil {
				return err
			}
			return c.show(raw, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "organization\t%s\nsandbox domain\t%s\t(verified: send from it at once)\n", o.Name, o.SandboxDomain)
			})
		}},
		{name: "show", usage: "NAME", args: 1, run: func(ctx context.Context, c *cli, a []string) error {
			var o orgJSON
			raw, err := c.c.get(ctx, "/v1/orgs/"+url.PathEscape(a[0]), &o)
			if err != nil {
				return err
			}
			return c.show(raw, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "organization\t%s\nsandbox domain\t%s\ncreated\t%s\n", o.Name, o.SandboxDomain, when(o.CreatedAt))
			})
		}},
		{name: "delete", usage: "NAME", args: 1, run: func(ctx context.Context, c *cli, a []string) error {
			if err := c.c.del(ctx, "/v1/orgs/"+url.PathEscape(a[0])); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "organization %s deleted, with everything it owned\n", a[0])
			return nil
		}},
	}}
}

func accountsCommand() clientCommand {
	printAccount := func(c *cli, raw []byte, a accountJSON, what string) error {
		if c.quiet {
			_, err := fmt.Fprintln(c.stdout, a.Password)
			return err
		}
		return c.show(raw, func(w *tabwriter.Writer) {
			fmt.Fprintf(w, "account\t%s\nusername\t%s\npassword\t%s\t(%s: shown once, store it now)\n", a.Name, a.Username, a.Password, what)
		})
	}
	return clientCommand{name: "accounts", withOrg: true, verbs: []subcommand{
		{name: "list", args: 0, run: func(ctx context.Context, c *cli, _ []string) error {
			var l struct{ Accounts []accountJSON }
			raw, err := c.c.get(ctx, c.orgPath("smtp-accounts"), &l)
			if err != nil {
				return err
			}
			return c.show(raw, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "NAME\tUSERNAME\tCREATED\tPASSWORD CHANGED")
				for _, a := range l.Accounts {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", a.Name, a.Username, when(a.CreatedAt), when(a.UpdatedAt))
				}
			})
		}},
		{name: "add", usage: "[-q] NAME", args: 1, flags: quietFlag, run: func(ctx context.Context, c *cli, a []string) error {
			var acct accountJSON
			raw, err := c.c.post(ctx, c.orgPath("smtp-accounts"), map[string]string{"name": a[0]}, &acct)
			if err != nil {
				return err
			}
			return printAccount(c, raw, acct, "new")
		}},
		{name: "password", usage: "[-q] NAME", args: 1, flags: quietFlag, run: func(ctx context.Context, c *cli, a []string) error {
			var acct accountJSON
			raw, err := c.c.post(ctx, c.orgPath("smtp-accounts", a[0], "password"), nil, &acct)
			if err != nil {
				return err
			}
			return printAccount(c, raw, acct, "rotated; the old one stops working, sessions using it end")
		}},
		{name: "delete", usage: "NAME", args: 1, run: func(ctx context.Context, c *cli, a []string) error {
			if err := c.c.del(ctx, c.orgPath("smtp-accounts", a[0])); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "SMTP account %s@%s deleted\n", a[0], c.org)
			return nil
		}},
	}}
}

func keysCommand() clientCommand {
	return clientCommand{name: "keys", withOrg: true, verbs: []subcommand{
		{name: "add", usage: "[-q]", args: 0, flags: quietFlag, run: func(ctx context.Context, c *cli, _ []string) error {
			var k keyJSON
			raw, err := c.c.post(ctx, c.orgPath("keys"), nil, &k)
			if err != nil {
				return err
			}
			if c.quiet {
				_, err := fmt.Fprintln(c.stdout, k.Key)
				return err
			}
			return c.show(raw, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "id\t%s\nkey\t%s\t(shown once, store it now; it acts in %s only)\n", k.ID, k.Key, c.org)
			})
		}},
		{name: "delete", usage: "ID", args: 1, run: func(ctx context.Context, c *cli, a []string) error {
			if err := c.c.del(ctx, c.orgPath("keys", a[0])); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "key %s of %s deleted\n", a[0], c.org)
			return nil
		}},
	}}
}

func addressesCommand() clientCommand {
	one := func(c *cli, raw []byte, a addressJSON, note string) error {
		return c.show(raw, func(w *tabwriter.Writer) {
			fmt.Fprintf(w, "%s\t%s\t%s\n", a.Email, a.Status, note)
		})
	}
	return clientCommand{name: "addresses", withOrg: true, verbs: []subcommand{
		{name: "list", args: 0, run: func(ctx context.Context, c *cli, _ []string) error {
			var l struct{ Addresses []addressJSON }
			raw, err := c.c.get(ctx, c.orgPath("addresses"), &l)
			if err != nil {
				return err
			}
			return c.show(raw, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "EMAIL\tSTATUS\tCONFIRMED\tLINK EXPIRES")
				for _, a := range l.Addresses {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", a.Email, a.Status, when(a.ConfirmedAt), when(a.ExpiresAt))
				}
			})
		}},
		{name: "add", usage: "EMAIL", args: 1, run: func(ctx context.Context, c *cli, a []string) error {
			var ad addressJSON
			raw, err := c.c.post(ctx, c.orgPath("addresses"), map[string]string{"email": a[0]}, &ad)
			if err != nil {
				return err
			}
			return one(c, raw, ad, "a confirmation email with a link was sent to it")
		}},
		{name: "resend", usage: "EMAIL", args: 1, run: func(ctx context.Context, c *cli, a []string) error {
			var ad addressJSON
			raw, err := c.c.post(ctx, c.orgPath("addresses", a[0], "resend"), nil, &ad)
			if err != nil {
				return err
			}
			return one(c, raw, ad, "a new confirmation link was sent; the old one no longer works")
		}},
		{name: "delete", usage: "EMAIL", args: 1, run: func(ctx context.Context, c *cli, a []string) error {
			if err := c.c.del(ctx, c.orgPath("addresses", a[0])); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "address %s deleted\n", a[0])
			return nil
		}},
	}}
}
