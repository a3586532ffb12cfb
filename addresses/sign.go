package addresses

import (
	"bytes"

	"github.com/sendergate/sendergate/dkim"
)

// signMessage returns the DKIM-Signature field for raw, or "" when no key
// is configured.
func signMessage(raw []byte, sg Signer) (string, error) {
	if sg.Key == nil {
		return "", nil
	}
	return dkim.Sign(bytes.NewReader(raw), sg.Domain, sg.Selector, sg.Key)
}
