package domains

import (
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/store"
)

// BYOK key sizes accepted (RSA; RFC 8301 3.2 sets the floor).
const (
	MinBYOKRSABits = 1024
	MaxBYOKRSABits = 4096
)

// SetBYOK makes a key the customer brings the domain's signing key (PUT
// .../dkim/byok). The customer publishes its public key as a TXT record at
// SELECTOR._domainkey.DOMAIN on their own DNS; sendergate checks through
// the resolvers that the record there carries this key (its p= tag) and
// only then signs with it. The zone never publishes it. The key that
// signed until then is retired as by a rotation; a next key stays, so a
// later rotation returns to the delegated selectors.
//
// A wrong selector or key is a *FieldError ("selector", "private_key"); a
// TXT record that is missing or carries another key is a *CheckError, and
// nothing changes.
func (s *Service) SetBYOK(ctx context.Context, org store.Org, name, selector, privateKey string) (store.Domain, error) {
	sel, err := normalizeBYOKSelector(selector)
	if err != nil {
		return store.Domain{}, err
	}
	key, err := parseBYOKKey(privateKey)
	if err != nil {
		return store.Domain{}, err
	}
	d, err := s.st.DomainByName(ctx, org.ID, name)
	if err != nil {
		return store.Domain{}, err
	}
	sels, _ := dkimSelectors(d)
	if d.Sandbox || len(sels) == 0 {
		return d, &StateError{Code: "sandbox_domain", Message: fmt.Sprintf("%s is the organization's sandbox domain: it signs with the key sendergate serves", d.Name)}
	}
	if slices.Contains(sels, sel) {
		return d, &FieldError{"selector", fmt.Sprintf("%s._domainkey.%s is delegated to sendergate by a CNAME, which can hold no TXT record: choose another selector for your own key", sel, d.Name)}
	}
	ks, err := s.st.DKIMKeys(ctx, d.ID)
	if err != nil {
		return d, err
	}
	set := keysByState(ks)
	if set.active == nil {
		return d, fmt.Errorf("domains: %s has no active DKIM key", d.Name)
	}
	for _, k := range ks {
		if k.Selector == sel && (k.State == store.KeyActive || k.State == store.KeyRetired) {
			return d, &FieldError{"selector", fmt.Sprintf("selector %s is still in use by a %s key of %s: choose another selector", sel, k.State, d.Name)}
		}
	}
	rec := s.checkBYOK(ctx, d, sel, key)
	if rec.Status != StatusOK {
		return d, &CheckError{Records: []Record{rec}, Message: fmt.Sprintf(
			"%s does not sign with your key: %s has no TXT record with its public key (%s). Nothing changed; signing stays on selector %s.",
			d.Name, rec.Host, rec.Status, d.DKIMSelector)}
	}
	now := s.opts.Now()
	removeAt := now.Add(s.opts.RetireAfter)
	old := set.active
	k := store.DKIMKey{ID: store.NewID(), Selector: sel, Algorithm: key.algorithm, PrivateKey: key.pem, TXT: key.txt, CreatedAt: store.At(now)}
	evs := []store.Event{
		s.keyEvent(d, "dkim.rotated", fmt.Sprintf("signing with your own key (%s) at selector %s instead of %s", key.algorithm, sel, old.Selector), now),
		s.keyEvent(d, "dkim.retired", fmt.Sprintf("selector %s (%s) stays published until %s", old.Selector, old.Algorithm, removeAt.UTC().Format(time.RFC3339)), now),
	}
	if err := s.st.ActivateBYOKKey(ctx, d, old.ID, k, store.At(now), store.At(removeAt), evs); err != nil {
		return d, err
	}
	s.opts.Logger.Info("dkim key brought by the customer", "domain", d.Name, "org", orgName(ctx, s.st, d.OrgID), "selector", sel, "retired", old.Selector)
	return s.st.DomainByID(ctx, d.ID)
}

// byokKey is a validated customer key.
type byokKey struct {
	pem, txt, algorithm string
	p                   string // the TXT record's p= value
}

// parseBYOKKey validates a PEM private key: RSA of 1024 to 4096 bits or
// Ed25519, in PKCS #8 or PKCS #1.
func parseBYOKKey(pemText string) (byokKey, error) {
	fail := func(msg string) (byokKey, error) { return byokKey{}, &FieldError{"private_key", msg} }
	if strings.TrimSpace(pemText) == "" {
		return fail("private_key is required: a PEM private key (RSA 1024-4096 bits or Ed25519)")
	}
	k, err := dkim.ParsePrivateKey(pemText)
	if err != nil {
		return fail(fmt.Sprintf("not a usable DKIM private key (a PEM \"PRIVATE KEY\" or \"RSA PRIVATE KEY\" block, RSA 1024-4096 bits or Ed25519): %v", err))
	}
	alg := AlgorithmEd25519
	switch pub := k.Public().(type) {
	case *rsa.PublicKey:
		bits := pub.N.BitLen()
		if bits < MinBYOKRSABits || bits > MaxBYOKRSABits {
			return fail(fmt.Sprintf("an RSA key of %d bits; DKIM keys are %d to %d bits", bits, MinBYOKRSABits, MaxBYOKRSABits))
		}
		alg = fmt.Sprintf("rsa-%d", bits)
	case ed25519.PublicKey:
	default:
		return fail(fmt.Sprintf("unsupported key type %T: use RSA or Ed25519", pub))
	}
	norm, err := dkim.MarshalPrivateKey(k)
	if err != nil {
		return fail(err.Error())
	}
	txt, err := dkim.TXTValue(k.Public())
	if err != nil {
		return fail(err.Error())
	}
	return byokKey{pem: norm, txt: txt, algorithm: alg, p: tagValue(txt, "p")}, nil
}

// normalizeBYOKSelector checks the selector of a customer key: one or
// more dot-separated labels of [a-z0-9-] (RFC 6376 3.1), at most 63
// characters in all.
func normalizeBYOKSelector(sel string) (string, error) {
	s := strings.ToLower(strings.TrimSpace(sel))
	if s == "" {
		return "", &FieldError{"selector", "selector is required: the name under _domainkey where you publish the key's TXT record"}
	}
	if len(s) > 63 {
		return "", &FieldError{"selector", fmt.Sprintf("%q is %d characters long; at most 63", sel, len(s))}
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
			return "", &FieldError{"selector", fmt.Sprintf("%q has an empty label or one that starts or ends with a hyphen", sel)}
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return "", &FieldError{"selector", fmt.Sprintf("%q contains %q; a selector has letters, digits, hyphens and dots", sel, c)}
			}
		}
	}
	return s, nil
}

// checkBYOK looks up the TXT records at SEL._domainkey.D, as a receiver
// does, for one whose p= tag is the key's (RFC 6376 3.6.1).
func (s *Service) checkBYOK(ctx context.Context, d store.Domain, sel string, key byokKey) Record {
	rec := Record{Purpose: PurposeDKIM, Host: sel + "._domainkey." + d.Name, Type: "TXT", Value: key.txt}
	cctx, cancel := context.WithTimeout(ctx, s.opts.CheckTimeout)
	defer cancel()
	data, err := lookup(cctx, s.opts.Resolver, rec.Host, "TXT")
	switch {
	case err != nil:
		rec.Status = StatusError
		rec.Reason = fmt.Sprintf("The DNS lookup of %s failed temporarily (%v). Nothing changed; try again.", rec.Host, err)
		return rec
	case len(data.Values) == 0:
		rec.Status = StatusMissing
		rec.Reason = fmt.Sprintf("No TXT record found at %s. Publish a TXT record there with the value %s; a new record may take up to its TTL to become visible.", rec.Host, key.txt)
		return rec
	}
	var found []string
	for _, v := range data.Values {
		if strings.Join(strings.Fields(tagValue(v, "p")), "") == key.p {
			rec.Status, rec.Found = StatusOK, v
			return rec
		}
		found = append(found, v)
	}
	rec.Status, rec.Found = StatusMismatch, strings.Join(found, " | ")
	rec.Reason = fmt.Sprintf("The TXT record at %s carries another public key than the private key given. Publish the value %s there (or send the private key that belongs to the published record).", rec.Host, key.txt)
	return rec
}

// tagValue returns the value of tag name in a tag=value list (RFC 6376
// 3.2), "" when absent.
func tagValue(list, name string) string {
	for _, part := range strings.Split(list, ";") {
		k, v, ok := strings.Cut(part, "=")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
