package smtpd

import (
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// LoginAuthenticator checks a username and password. Its error is returned
// to go-smtp unchanged, so it may be an *smtp.SMTPError such as 535 5.7.8.
type LoginAuthenticator func(username, password string) error

// NewLoginServer returns a sasl.Server for the LOGIN mechanism
// (draft-murchison-sasl-login-00): it sends the challenge "Username:", then
// "Password:" (raw; go-smtp base64-encodes challenges, RFC 4954 4), and
// then calls auth. An initial response (AUTH LOGIN <base64 username>) is
// taken as the username. An empty username is refused with 535 5.7.8
// (RFC 4954 6) without calling auth; any other outcome is auth's.
func NewLoginServer(auth LoginAuthenticator) sasl.Server {
	return &loginServer{auth: auth}
}

// loginServer holds the state of one LOGIN exchange.
type loginServer struct {
	auth     LoginAuthenticator
	step     int // 0: start, 1: want username, 2: want password, 3: done
	username string
}

// Next implements sasl.Server.
func (s *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch s.step {
	case 0:
		if response == nil {
			s.step = 1
			return []byte("Username:"), false, nil
		}
		fallthrough // the initial response is the username
	case 1:
		if len(response) == 0 {
			s.step = 3
			return nil, true, &smtp.SMTPError{
				Code:         535,
				EnhancedCode: smtp.EnhancedCode{5, 7, 8},
				Message:      "Authentication credentials invalid: empty username",
			}
		}
		s.username = string(response)
		s.step = 2
		return []byte("Password:"), false, nil
	case 2:
		s.step = 3
		return nil, true, s.auth(s.username, string(response))
	default:
		return nil, true, sasl.ErrUnexpectedClientResponse
	}
}
