package milter

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/sendergate/sendergate/msg"
)

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("request=smtpd_access_policy\nsender=a@example.com\nsasl_username=app@acme\n\n"))
	f.Add([]byte("request=smtpd_access_policy\r\nsender=\r\n\r\nrequest=x\n\n"))
	f.Add([]byte("sender=a\nsender=b\n\n"))
	f.Add([]byte("=\n\n"))
	f.Add([]byte("\n"))
	f.Add([]byte("a=b"))
	lim := limits{maxLine: 64, maxAttrs: 8, maxBytes: 256}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(data), 128)
		for range 100 {
			req, err := parseRequest(r, lim)
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				if !errors.Is(err, ErrLineTooLong) && !errors.Is(err, ErrRequestTooLarge) &&
					!errors.Is(err, ErrMalformed) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				return
			}
			if req.attrs < 1 || req.attrs > lim.maxAttrs {
				t.Fatalf("accepted a request with %d attributes", req.attrs)
			}
			for _, v := range []string{req.request, req.sender, req.saslUsername, req.recipient, req.protocolState} {
				if strings.ContainsAny(v, "\n") || len(v) > lim.maxLine {
					t.Fatalf("attribute value %q escaped its line", v)
				}
			}
		}
	})
}

// FuzzFieldFromMilter checks that a header packet either is refused or
// rebuilds into exactly one field that msg.ReadHeader reads back with the
// same name: no packet can smuggle a second field into what is signed.
func FuzzFieldFromMilter(f *testing.F) {
	f.Add("Subject", "hello\n\tworld")
	f.Add("From", "a@example.com\nBcc: x@y")
	f.Add("X", "")
	f.Add("Bad Name", "v")
	f.Add("X", "a\r\n b\r")
	f.Fuzz(func(t *testing.T, name, value string) {
		field, err := fieldFromMilter(name, value)
		if err != nil {
			var me *msg.Error
			if !errors.As(err, &me) || me.Code != 550 {
				t.Fatalf("refusal is not a 550 *msg.Error: %v", err)
			}
			return
		}
		h, err := msg.ReadHeader(bufio.NewReader(bytes.NewReader(append(bytes.Clone(field.Raw), '\r', '\n'))))
		if err != nil {
			t.Fatalf("rebuilt field %q does not parse: %v", field.Raw, err)
		}
		if len(h.Fields) != 1 || h.Fields[0].Name != name || !bytes.Equal(h.Fields[0].Raw, field.Raw) {
			t.Fatalf("rebuilt %q reads back as %d fields", field.Raw, len(h.Fields))
		}
	})
}
