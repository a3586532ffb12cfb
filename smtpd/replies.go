package smtpd

import (
	"errors"

	"github.com/emersion/go-smtp"

	"github.com/sendergate/sendergate/msg"
)

// The replies of the submission server. Each constructor returns a fresh,
// bare *smtp.SMTPError: go-smtp recognises replies with a type assertion,
// so a wrapped one would reach the client as a permanent 554.

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
func errTooLarge() *smtp.SMTPError {
	return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Maximum message size exceeded"}
}

// errBadAuthor answers a From or Sender mailbox whose domain cannot be
// normalised (RFC 3463 5.1.7: bad sender's mailbox address syntax).
func errBadAuthor(detail string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Invalid author address: " + detail}
}

// errRefused is a permanent policy refusal (550 5.7.1).
func errRefused(text string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: text}
}

// errDeferred is a temporary policy refusal (451 4.3.0).
func errDeferred(text string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: text}
}

// errSandboxLimit answers a sandbox message past the daily limit.
func errSandboxLimit() *smtp.SMTPError {
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "sandbox daily limit reached"}
}

// accepted is the reply after the upstream accepted the message. go-smtp
// writes any *smtp.SMTPError returned by Data as is, 250 included.
func accepted(id string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "OK: accepted as " + id + " by upstream"}
}

// fromMsgError converts a refusal of package msg (550 5.6.0 and the like)
// into a reply; ok is false when err carries none.
func fromMsgError(err error) (*smtp.SMTPError, bool) {
	var me *msg.Error
	if !errors.As(err, &me) {
		return nil, false
	}
	return &smtp.SMTPError{Code: me.Code, EnhancedCode: smtp.EnhancedCode(me.Enhanced), Message: me.Message}, true
}
