package relay

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// Outbox header fields carrying the envelope at the top of each .eml file.
const (
	HeaderEnvelopeFrom = "X-Sendergate-Envelope-From"
	HeaderEnvelopeTo   = "X-Sendergate-Envelope-To"
)

// Outbox writes each message atomically to DIR/<ID>.eml, the stand-in for
// an upstream when none is configured. See the package documentation for
// the file format. It is safe for concurrent use; message IDs must be
// unique (a second message with the same ID replaces the first).
type Outbox struct {
	dir string
	log *slog.Logger
}

// NewOutbox creates dir (mode 0700, parents included) when missing and
// returns an Outbox writing into it.
func NewOutbox(dir string) (*Outbox, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("relay: create outbox: %w", err)
	}
	return &Outbox{dir: dir, log: slog.New(slog.DiscardHandler)}, nil
}

// WithLogger sets the logger that receives the causes behind 451 replies
// and returns o.
func (o *Outbox) WithLogger(l *slog.Logger) *Outbox {
	if l != nil {
		o.log = l
	}
	return o
}

// Dir returns the outbox directory.
func (o *Outbox) Dir() string { return o.dir }

// Send writes m to DIR/<ID>.eml and returns nil once the file and its
// directory entry are on stable storage. Errors are bare *smtp.SMTPError
// values: 451 4.3.0 when the file cannot be written.
func (o *Outbox) Send(ctx context.Context, m *Message) error {
	if err := checkEnvelope(m); err != nil {
		return err
	}
	if !validID(m.ID) {
		return errBadEnvelope("message ID unusable as a file name")
	}
	if err := ctx.Err(); err != nil {
		o.log.Warn("outbox write abandoned", "id", m.ID, "err", err)
		return errLocal()
	}
	if err := o.write(m); err != nil {
		o.log.Error("outbox write failed", "id", m.ID, "dir", o.dir, "err", err)
		return errLocal()
	}
	return nil
}

// write is the atomic publish: temp file in the same directory, write,
// fsync, close, rename, fsync the directory. The temp name starts with a
// dot and ends in .tmp so that no reader of "*.eml" ever sees it.
func (o *Outbox) write(m *Message) (err error) {
	f, err := os.CreateTemp(o.dir, tempPrefix(m.ID)+"*.tmp")
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	w := bufio.NewWriterSize(f, 64<<10)
	writeEnvelope(w, m)
	for _, b := range m.Data {
		w.Write(b)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", f.Name(), err)
	}
	final := filepath.Join(o.dir, m.ID+".eml")
	if err := os.Rename(f.Name(), final); err != nil {
		return fmt.Errorf("rename to %s: %w", final, err)
	}
	return syncDir(o.dir)
}

// writeEnvelope writes the envelope header lines; bufio keeps the first
// error for Flush.
func writeEnvelope(w *bufio.Writer, m *Message) {
	fmt.Fprintf(w, "%s: <%s>\r\n", HeaderEnvelopeFrom, m.From)
	for _, to := range m.To {
		fmt.Fprintf(w, "%s: <%s>\r\n", HeaderEnvelopeTo, to)
	}
}

// tempPrefix starts the temporary name of message id's file.
func tempPrefix(id string) string { return "." + id + "." }

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir for fsync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}

// validID accepts IDs that are safe as a single file name component.
func validID(id string) bool {
	if id == "" || len(id) > 200 || id[0] == '.' {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '_', c == '.', c == '+', c == '=':
		default:
			return false
		}
	}
	return true
}
