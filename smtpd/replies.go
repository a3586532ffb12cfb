package smtpd

import (
	"fmt"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sendergate/sendergate/relay"
)

// The replies of the submission server. Each constructor returns a fresh,
// bare *smtp.SMTPError: go-smtp recognises replies with a type assertion,
// so a wrapped one would reach the client as a permanent 554. Replies the
// server writes itself, outside go-smtp (connection refusals, idle
// limits), are formatted by replyLine.

// errAuthRequired answers MAIL before AUTH (RFC 4954 6). go-smtp's own
// ErrAuthRequired is 502, which is wrong here.
func errAuthRequired() *smtp.SMTPError {
	return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
}

// errBadCredentials answers a failed AUTH (RFC 4954 6).
func errBadCredentials() *smtp.SMTPError {
	return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
}

// errAuthzid refuses a PLAIN authorization identity other than the
// username: sub-accounts cannot act for each other.
func errAuthzid() *smtp.SMTPError {
	return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8},
		Message: "Authentication credentials invalid: authorization identity must be empty or equal the username"}
}

// errAuthBlocked answers AUTH from an address that failed too often.
func errAuthBlocked() *smtp.SMTPError {
	return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: "Too many failed authentication attempts from your address, try again later"}
}

// errEncryptionRequired answers AUTH on a plaintext, untrusted connection
// (RFC 4954 6: 538 5.7.11).
func errEncryptionRequired() *smtp.SMTPError {
	return &smtp.SMTPError{Code: 538, EnhancedCode: smtp.EnhancedCode{5, 7, 11},
		Message: "Encryption required for requested authentication mechanism: issue STARTTLS first"}
}

// errAuthSyntax answers a SASL response that does not parse.
func errAuthSyntax() *smtp.SMTPError {
	return &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Malformed authentication response"}
}

// errAccountGone answers MAIL when the authenticated account was deleted
// since AUTH.
func errAccountGone() *smtp.SMTPError {
	return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0},
		Message: "Authentication required: the SMTP account was removed"}
}

// errCredentialsChanged answers MAIL when the account's password was
// rotated since this session authenticated: the old password no longer
// authorizes anything.
func errCredentialsChanged() *smtp.SMTPError {
	return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8},
		Message: "Authentication credentials invalid: the password was changed since this session authenticated, reconnect with the new one"}
}

// errNotReady is the fail-closed answer while no policy snapshot exists.
func errNotReady() *smtp.SMTPError {
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Authorization data not loaded yet, try again later"}
}

// errInternal answers any internal failure; the cause is logged once.
func errInternal(id string) *smtp.SMTPError {
	text := "Local error, try again later"
	if id != "" {
		text += " (id " + id + ")"
	}
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: text}
}

// errShuttingDown refuses new work during a graceful shutdown.
func errShuttingDown() *smtp.SMTPError {
	return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Server shutting down, try again later"}
}

// errTooLarge answers a message over MaxMessageBytes (RFC 3463 5.3.4).
func errTooLarge(limit int64) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
		Message: fmt.Sprintf("Maximum message size exceeded: the limit is %d octets", limit)}
}

// errStorage answers a message that would take the bytes held by all
// transactions past Config.MaxBufferedBytes (RFC 3463 4.3.1).
func errStorage() *smtp.SMTPError {
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 1},
		Message: "Insufficient system storage: the server is receiving too much mail at once, try again in a few minutes"}
}

// errTooManyConnections is the greeting past Config.MaxConnections.
func errTooManyConnections() *smtp.SMTPError {
	return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: "Too many connections to this server, try again later"}
}

// errTooManyFromIP is the greeting past Config.MaxConnectionsPerIP.
func errTooManyFromIP(limit int) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: fmt.Sprintf("Too many connections from your address (limit %d), close some or try again later", limit)}
}

// errProxyHeader is the greeting to a trusted proxy that sent no valid
// PROXY protocol header.
func errProxyHeader() *smtp.SMTPError {
	return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: "Expected a PROXY protocol header from this address (submission.proxy_from)"}
}

// errTimedOut closes a connection on one of the session's time limits
// (RFC 3463 4.4.2: bad connection): what did not happen within limit.
func errTimedOut(what string, limit time.Duration) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2},
		Message: what + " " + limit.String() + ", closing connection"}
}

// The time limits errTimedOut answers: Config.PreAuthTimeout (no AUTH or
// other progress), Config.IdleTimeout (no mail command; NOOP, RSET, HELP
// and EHLO do not count), Config.ReadTimeout (nothing while a command or
// message data was awaited) and Config.MaxDataTime (one transfer).
func errPreAuthIdle(limit time.Duration) *smtp.SMTPError {
	return errTimedOut("No authentication within", limit)
}

func errIdle(limit time.Duration) *smtp.SMTPError {
	return errTimedOut("No mail transaction for", limit)
}

func errReadTimeout(limit time.Duration) *smtp.SMTPError {
	return errTimedOut("No command received for", limit)
}

func errDataStalled(limit time.Duration) *smtp.SMTPError {
	return errTimedOut("No message data received for", limit)
}

func errDataTimeLimit(limit time.Duration) *smtp.SMTPError {
	return errTimedOut("Message transfer took longer than", limit)
}

// errCommandTooLong closes a connection that sent more than
// maxCommandBytes of commands without any progress (a line that long, or a
// flood of NOOPs).
func errCommandTooLong() *smtp.SMTPError {
	return &smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 5, 2},
		Message: fmt.Sprintf("Command line too long, or %d KiB of commands without a transaction, closing connection", maxCommandBytes>>10)}
}

// accepted is the reply after the upstream (or, without one, the file
// outbox) accepted the message; it says which. go-smtp writes any
// *smtp.SMTPError returned by Data as is, 250 included.
func accepted(id string, out relay.Sender) *smtp.SMTPError {
	where := "by upstream"
	if _, ok := out.(*relay.Outbox); ok {
		where = "into the outbox"
	}
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "OK: accepted as " + id + " " + where}
}

// replyLine formats r as one reply line for the server to write itself.
func replyLine(r *smtp.SMTPError) []byte {
	e := r.EnhancedCode
	return fmt.Appendf(nil, "%d %d.%d.%d %s\r\n", r.Code, e[0], e[1], e[2], r.Message)
}
