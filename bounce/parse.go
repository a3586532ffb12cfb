package bounce

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"regexp"
	"strings"
)

// Bounds on what Parse reads, so a hostile message cannot make it
// allocate without limit.
const (
	maxParseBytes  = 4 << 20 // bytes of the whole message read
	maxParts       = 16      // MIME parts of the report read
	maxPartBytes   = 1 << 20 // bytes read of one part
	maxRecipients  = 100     // per-recipient blocks of a DSN
	maxHeaderBytes = 64 << 10
)

// Kind classifies a report.
type Kind string

// The kinds of Report.
const (
	Hard      Kind = "hard"      // permanent failure (Action failed, 5.x.x)
	Soft      Kind = "soft"      // transient failure or delay (Action delayed, 4.x.x)
	Complaint Kind = "complaint" // an ARF feedback report (RFC 5965)
	Unknown   Kind = "unknown"   // nothing recognised
)

// Recipient is one recipient a report is about.
type Recipient struct {
	Address    string // Original-Recipient, else Final-Recipient, without "rfc822;"
	Action     string // failed, delayed (RFC 3464 2.3.3)
	Status     string // "5.1.1"
	Diagnostic string // Diagnostic-Code, or the matched text of a heuristic bounce
	RemoteMTA  string
}

// Report is a parsed bounce or complaint.
type Report struct {
	Kind              Kind
	Recipients        []Recipient
	FeedbackType      string // ARF Feedback-Type (abuse, fraud, ...)
	OriginalMessageID string // Message-ID of the returned message, if present
}

// Parse reads a bounce message and classifies it: RFC 3464 delivery
// status notifications, RFC 5965 feedback reports, and the non-standard
// bounces of the heuristic table (see the package comment).
func Parse(r io.Reader) (*Report, error) {
	m, err := mail.ReadMessage(bufio.NewReader(io.LimitReader(r, maxParseBytes)))
	if err != nil {
		return nil, fmt.Errorf("bounce: reading the message header: %w", err)
	}
	rep := &Report{Kind: Unknown}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err == nil && mt == "multipart/report" && params["boundary"] != "" {
		if err := parseReport(rep, m.Body, params["boundary"]); err != nil {
			return nil, err
		}
		if rep.Kind != Unknown {
			return rep, nil
		}
	}
	return heuristic(rep, m)
}

// parseReport walks the parts of a multipart/report (RFC 6522).
func parseReport(rep *Report, body io.Reader, boundary string) error {
	mr := multipart.NewReader(body, boundary)
	for i := 0; i < maxParts; i++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("bounce: reading the report: %w", err)
		}
		data, err := io.ReadAll(io.LimitReader(p, maxPartBytes))
		if err != nil {
			return fmt.Errorf("bounce: reading a report part: %w", err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch ct {
		case "message/delivery-status", "message/global-delivery-status":
			parseDSN(rep, data)
		case "message/feedback-report":
			parseARF(rep, data)
		case "message/rfc822", "message/rfc822-headers", "text/rfc822-headers", "message/global-headers":
			original(rep, data)
		}
	}
	return nil
}

// readBlocks reads header-style field blocks separated by blank lines.
func readBlocks(data []byte, max int) []textproto.MIMEHeader {
	tr := textproto.NewReader(bufio.NewReader(io.LimitReader(bytes.NewReader(data), maxPartBytes)))
	var out []textproto.MIMEHeader
	for len(out) < max {
		h, err := tr.ReadMIMEHeader()
		if len(h) > 0 {
			out = append(out, h)
		}
		if err != nil {
			break
		}
	}
	return out
}

// parseDSN reads message/delivery-status (RFC 3464 2.2, 2.3): the first
// block is per message, each later one per recipient.
func parseDSN(rep *Report, data []byte) {
	blocks := readBlocks(data, maxRecipients+1)
	for _, b := range blocks {
		// The address the message was sent to (Original-Recipient, RFC
		// 3464 2.3.1) is what to suppress: a Final-Recipient after a
		// forward or an alias is not an address the sender uses.
		addr := typed(b.Get("Original-Recipient"))
		if addr == "" {
			addr = typed(b.Get("Final-Recipient"))
		}
		action := strings.ToLower(strings.TrimSpace(b.Get("Action")))
		if addr == "" || action == "" {
			continue // the per-message block
		}
		rc := Recipient{Address: addr, Action: action, Status: strings.TrimSpace(b.Get("Status")),
			Diagnostic: typed(b.Get("Diagnostic-Code")), RemoteMTA: typed(b.Get("Remote-MTA"))}
		if i := strings.IndexAny(rc.Status, " ("); i > 0 {
			rc.Status = rc.Status[:i]
		}
		k := dsnKind(rc.Action, rc.Status)
		if k == Unknown {
			continue // delivered, relayed, expanded: nothing to do
		}
		rep.Recipients = append(rep.Recipients, rc)
		if rep.Kind == Unknown || (rep.Kind == Soft && k == Hard) {
			rep.Kind = k
		}
	}
}

// dsnKind: RFC 3464 2.3.3 Action and RFC 3463 class.
func dsnKind(action, status string) Kind {
	switch action {
	case "failed":
		if strings.HasPrefix(status, "4.") {
			return Soft
		}
		return Hard
	case "delayed":
		return Soft
	}
	return Unknown
}

// typed strips an RFC 3464 "type;" prefix (rfc822;, smtp;, dns;).
func typed(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = strings.TrimSpace(v[i+1:])
	}
	return strings.Trim(v, "<>")
}

// parseARF reads message/feedback-report (RFC 5965 3.1).
func parseARF(rep *Report, data []byte) {
	b := readBlocks(data, 1)
	if len(b) == 0 {
		return
	}
	rep.Kind = Complaint
	rep.FeedbackType = strings.ToLower(strings.TrimSpace(b[0].Get("Feedback-Type")))
	if rcpt := typed(b[0].Get("Original-Rcpt-To")); rcpt != "" {
		rep.Recipients = append(rep.Recipients, Recipient{Address: rcpt})
	}
}

// original reads the returned message's header: its Message-ID and, for
// a complaint without Original-Rcpt-To, its To.
func original(rep *Report, data []byte) {
	m, err := mail.ReadMessage(bufio.NewReader(io.LimitReader(bytes.NewReader(data), maxHeaderBytes)))
	if err != nil && m == nil {
		return
	}
	rep.OriginalMessageID = strings.Trim(strings.TrimSpace(m.Header.Get("Message-Id")), "<>")
	if rep.Kind == Complaint && len(rep.Recipients) == 0 {
		if to, err := mail.ParseAddress(m.Header.Get("To")); err == nil {
			rep.Recipients = append(rep.Recipients, Recipient{Address: to.Address})
		}
	}
}

// A heuristic rule: a phrase (lowercase) found in the subject or body
// classifies a non-standard bounce.
type rule struct {
	phrase string
	kind   Kind
}

// rules is the heuristic table, first match wins; doc.go lists it.
var rules = []rule{
	{"mailbox full", Soft},
	{"over quota", Soft},
	{"quota exceeded", Soft},
	{"user unknown", Hard},
	{"no such user", Hard},
	{"does not exist", Hard},
	{"undelivered mail returned to sender", Hard},
	{"delivery status notification (failure)", Hard},
	{"mail delivery failed", Hard},
	{"undeliverable", Hard},
	{"delivery status notification (delay)", Soft},
}

var (
	statusRe = regexp.MustCompile(`\b([245]\d\d)?[ -]?\b([245]\.\d{1,3}\.\d{1,3})\b`)
	addrRe   = regexp.MustCompile(`<?([A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,})>?`)
)

// heuristic classifies a bounce that is not a multipart/report by the
// rules table and the first enhanced status code in its text.
func heuristic(rep *Report, m *mail.Message) (*Report, error) {
	body, err := io.ReadAll(io.LimitReader(m.Body, maxPartBytes))
	if err != nil {
		return nil, fmt.Errorf("bounce: reading the body: %w", err)
	}
	text := strings.ToLower(m.Header.Get("Subject") + "\n" + string(body))
	for _, r := range rules {
		if strings.Contains(text, r.phrase) {
			rep.Kind = r.kind
			break
		}
	}
	if rep.Kind == Unknown {
		return rep, nil
	}
	rc := Recipient{Action: "failed"}
	if sm := statusRe.FindStringSubmatchIndex(text); sm != nil {
		rc.Status = text[sm[4]:sm[5]]
		if strings.HasPrefix(rc.Status, "4.") {
			rep.Kind = Soft
		} else if strings.HasPrefix(rc.Status, "5.") && rep.Kind == Soft && !strings.Contains(text, "full") && !strings.Contains(text, "quota") {
			rep.Kind = Hard
		}
		end := strings.IndexByte(text[sm[0]:], '\n')
		if end < 0 {
			end = len(text) - sm[0]
		}
		rc.Diagnostic = strings.TrimSpace(text[sm[0] : sm[0]+end])
	}
	if rep.Kind == Soft {
		rc.Action = "delayed"
	}
	if a := addrRe.FindStringSubmatch(string(body)); a != nil {
		rc.Address = strings.ToLower(a[1])
	}
	rep.Recipients = append(rep.Recipients, rc)
	return rep, nil
}
