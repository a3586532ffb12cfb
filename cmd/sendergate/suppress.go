package main

import (
	"context"
	"fmt"
	"time"

	"github.com/sendergate/sendergate/policy"
	"github.com/sendergate/sendergate/suppress"
	"github.com/sendergate/sendergate/webhooks"
)

// suppressions adapts the in-memory suppression list to the gate: a
// lookup, counted, and the refusal text that says how to lift it.
type suppressions struct {
	list    *suppress.List
	engine  *policy.Engine // for the organization's name in the text
	apiBase string         // admin.public_url, for the DELETE the text names
}

// Suppressed implements gate.Suppressions.
func (s suppressions) Suppressed(orgID, email string) (reason, text string, ok bool) {
	e, ok := s.list.Lookup(orgID, email)
	if !ok {
		return "", "", false
	}
	s.list.Refused(e.Reason)
	name := orgID
	if snap, err := s.engine.Current(); err == nil {
		if n, ok := snap.OrgName(orgID); ok {
			name = n
		}
	}
	return e.Reason, e.Text(s.apiBase, name), true
}

// setupSuppressions loads the suppression list (synced with the store
// every second, so a suppression or a removal on any instance applies
// within about a second) and starts the webhook deliverer. With
// suppression.enforce off the list is not consulted at RCPT.
func (d *daemon) setupSuppressions(ctx, bg context.Context) error {
	list := suppress.NewList(d.st, d.reg)
	if err := list.Sync(ctx); err != nil {
		return err
	}
	go list.Run(bg, time.Second)
	d.syncSuppressions = list.Sync
	if d.cfg.Suppression.Enforce {
		d.suppressions = suppressions{list: list, engine: d.engine, apiBase: d.cfg.Admin.PublicURL}
	}
	dl := webhooks.New(webhooks.Options{Store: d.st, AllowPrivate: d.cfg.Webhooks.AllowPrivate, Logger: d.log, Registerer: d.reg})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = dl.Run(bg)
	}()
	// The deliverer ends (bg is cancelled first) before the store closes;
	// a POST cut short keeps its lease and is sent again after it lapses
	// (at least once, see docs/webhooks.md).
	d.onClose(func(ctx context.Context) error {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("webhook deliverer did not stop: %w", ctx.Err())
		}
	})
	return nil
}
