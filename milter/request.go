package milter

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Errors of the policy attribute parser. Each one ends the connection.
var (
	ErrLineTooLong     = errors.New("policyd: attribute line too long")
	ErrRequestTooLarge = errors.New("policyd: request has too many attributes or octets")
	ErrMalformed       = errors.New("policyd: malformed attribute line")
)

// limits bound one policy request.
type limits struct {
	maxLine  int // octets per line, without the LF
	maxAttrs int // attributes per request
	maxBytes int // octets per request
}

// request holds the attributes of one Postfix policy delegation request
// that sendergate reads; the others are counted and ignored, as
// SMTPD_POLICY_README asks of a policy server.
type request struct {
	request       string // "smtpd_access_policy"
	protocolState string // RCPT, DATA, END-OF-MESSAGE, ...
	sender        string // envelope sender, empty for the null sender
	saslUsername  string // the SASL login exactly as the client typed it
	recipient     string
	clientAddress string
	queueID       string
	attrs         int
	seen          uint8 // bit i: the i-th known attribute was given
}

// parseRequest reads one request: name=value lines ended by an empty line
// (SMTPD_POLICY_README "Protocol description"). It returns io.EOF when the
// connection ends cleanly between requests, io.ErrUnexpectedEOF when it ends
// inside one, and ErrLineTooLong, ErrRequestTooLarge or ErrMalformed (all
// wrapped) for input it refuses. A line may end in LF or CRLF.
func parseRequest(r *bufio.Reader, lim limits) (request, error) {
	var req request
	total := 0
	for {
		line, err := r.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return req, fmt.Errorf("attribute %d: %w", req.attrs+1, ErrLineTooLong)
		case errors.Is(err, io.EOF):
			if len(line) == 0 && req.attrs == 0 {
				return req, io.EOF
			}
			return req, io.ErrUnexpectedEOF
		case err != nil:
			return req, fmt.Errorf("policyd: read request: %w", err)
		}
		total += len(line)
		line = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
		if len(line) > lim.maxLine {
			return req, fmt.Errorf("attribute %d: %w", req.attrs+1, ErrLineTooLong)
		}
		if len(line) == 0 {
			if req.attrs == 0 {
				return req, fmt.Errorf("empty request: %w", ErrMalformed)
			}
			return req, nil
		}
		req.attrs++
		if req.attrs > lim.maxAttrs || total > lim.maxBytes {
			return req, ErrRequestTooLarge
		}
		if err := req.set(line); err != nil {
			return req, err
		}
	}
}

// set records one name=value line.
func (req *request) set(line []byte) error {
	name, value, ok := bytes.Cut(line, []byte{'='})
	if !ok || len(name) == 0 {
		return fmt.Errorf("attribute %d has no name=value form: %w", req.attrs, ErrMalformed)
	}
	var dst *string
	var bit uint8
	switch string(name) { // no allocation: the compiler compares in place
	case "request":
		dst, bit = &req.request, 1<<0
	case "protocol_state":
		dst, bit = &req.protocolState, 1<<1
	case "sender":
		dst, bit = &req.sender, 1<<2
	case "sasl_username":
		dst, bit = &req.saslUsername, 1<<3
	case "recipient":
		dst, bit = &req.recipient, 1<<4
	case "client_address":
		dst, bit = &req.clientAddress, 1<<5
	case "queue_id":
		dst, bit = &req.queueID, 1<<6
	default:
		return nil
	}
	if req.seen&bit != 0 {
		return fmt.Errorf("attribute %s given twice: %w", name, ErrMalformed)
	}
	req.seen |= bit
	*dst = string(value)
	return nil
}
