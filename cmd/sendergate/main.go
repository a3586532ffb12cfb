// Command sendergate is the SMTP policy daemon of the Senders Authorization
// workflow: one binary with the subcommands serve, migrate and version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/sendergate/sendergate/config"
	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/store"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage:
  sendergate serve   [-config FILE] [-demo]   start every configured listener; migrates first
                                            (-demo: local trial with a customer DNS on loopback)
  sendergate migrate [-config FILE]         apply migrations and exit
  sendergate demo                           scripted local trial: add, verify, send, check the signature
  sendergate check-message [-resolver IP:PORT] FILE.eml   verify a message's DKIM signatures through DNS
  sendergate version

client commands (over the admin API; -api URL, -json; key from SENDERGATE_ADMIN_KEY or data_dir/admin.key):
  sendergate orgs      [list | add NAME | show NAME | delete NAME]
  sendergate accounts  -org ORG [list | add [-q] NAME | password [-q] NAME | delete NAME]
  sendergate keys      -org ORG [add [-q] | delete ID]
  sendergate domains   -org ORG [list | add [options] DOMAIN | show DOMAIN | verify DOMAIN |
                                 access DOMAIN ACCOUNT... | access -open DOMAIN | delete DOMAIN]
  sendergate addresses -org ORG [list | add EMAIL | resend EMAIL | delete EMAIL]
  sendergate COMMAND -h   the options of one command
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without os.Exit, for tests.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "sendergate", version)
		fmt.Fprintln(stdout, "DKIM RSA signer:", dkim.RSASigner())
		return 0
	case "serve", "migrate":
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		if code, ok := runCommand(cmd, rest, stdout, stderr); ok {
			return code
		}
		fmt.Fprintf(stderr, "sendergate: unknown command %q\n%s", cmd, usage)
		return 2
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "TOML config file (default ./sendergate.toml if it exists, else built-in defaults)")
	demo := demoFlags(fs, cmd)
	if err := fs.Parse(rest); err != nil {
		return 2
	}
	cfg, used, err := config.Load(*path, os.Getenv)
	if err != nil {
		fmt.Fprintln(stderr, "sendergate:", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if used == "" {
		used = "(built-in defaults)"
	}
	// Everything serve and migrate write (database, keys, outbox) is private.
	syscall.Umask(0o077)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cmd == "migrate" {
		if err := migrate(ctx, cfg, logger); err != nil {
			fmt.Fprintln(stderr, "sendergate:", err)
			return 1
		}
		return 0
	}
	if demo.on {
		stopDemo, err := demo.start(&cfg, logger)
		if err != nil {
			fmt.Fprintln(stderr, "sendergate:", err)
			return 2
		}
		defer stopDemo()
	}
	logger.Info("starting sendergate", "version", version, "config", used)
	if err := serve(ctx, cfg, logger); err != nil {
		logger.Error("sendergate stopped", "err", err)
		fmt.Fprintln(stderr, "sendergate:", err)
		return 1
	}
	return 0
}

// openStore opens and migrates the configured database, creating data_dir
// first (the SQLite default lives there).
func openStore(ctx context.Context, cfg config.Config, logger *slog.Logger) (*store.Store, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data_dir: %w", err)
	}
	driver, dsn, err := cfg.DatabaseDriver()
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, driver, dsn)
	if err != nil {
		return nil, err
	}
	n, err := st.Migrate(ctx)
	if err != nil {
		st.Close()
		return nil, err
	}
	where := dsn
	if driver == "postgres" {
		where = "postgres" // the URL may hold a password
	}
	logger.Info("database ready", "driver", driver, "database", where, "migrations_applied", n)
	return st, nil
}

func migrate(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	st, err := openStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	return errors.Join(st.Close())
}
