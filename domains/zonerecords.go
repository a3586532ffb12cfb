package domains

import (
	"crypto"
	"net"

	"github.com/miekg/dns"

	"github.com/sendergate/sendergate/dkim"
	"github.com/sendergate/sendergate/store"
	"github.com/sendergate/sendergate/zone"
)

// ZoneOptions say what the provider zone publishes besides the domains.
type ZoneOptions struct {
	Zone            string // dns.zone
	BounceMX        string // dns.bounce_mx
	SPF             string // dns.spf, published at every bounce domain
	TrackingAddress string // dns.tracking_address; "" publishes nothing
	// SystemKey, when set, is published at sg1._domainkey.ZONE: it signs
	// sendergate's own mail (address confirmations).
	SystemKey crypto.PublicKey
}

// ZoneRecords builds the provider zone's records for every domain, as
// ZoneRecordsFromRows does; pub returns the public key of a domain (by
// id); a domain without one is left out.
func ZoneRecords(ds []store.Domain, pub func(domainID string) crypto.PublicKey, o ZoneOptions) []dns.RR {
	rows := make([]store.DomainRow, 0, len(ds))
	for _, d := range ds {
		key := pub(d.ID)
		if key == nil {
			continue
		}
		txt, err := dkim.TXTValue(key)
		if err != nil {
			continue
		}
		rows = append(rows, store.DomainRow{ID: d.ID, OrgID: d.OrgID, Name: d.Name, Sandbox: d.Sandbox, Token: d.Token,
			Status: d.Status, ReturnPath: d.ReturnPath, Selector: d.DKIMSelector, DKIMTXT: txt,
			DMARCPolicy: d.DMARCPolicy, DMARCRUA: d.DMARCRUA, DMARCPct: d.DMARCPct, Restricted: d.Restricted})
	}
	return ZoneRecordsFromRows(rows, o)
}

// ZoneRecordsFromRows builds the provider zone's records for every domain:
// the targets of the customer CNAMEs (SEL.T.dkim.Z TXT, T.bounce.Z MX and
// SPF, T.dmarc.Z TXT), track.Z, and for sandbox domains, which live inside
// the zone, the DKIM key directly at SEL._domainkey.ORG.sandbox.Z. The
// DKIM TXT value is the one stored at key creation: no key is parsed. A
// domain without one ("" or "-": an unreadable key) is left out.
func ZoneRecordsFromRows(ds []store.DomainRow, o ZoneOptions) []dns.RR {
	return append(DomainZoneRecords(make([]dns.RR, 0, 4*len(ds)+2), ds, o), GlobalZoneRecords(o)...)
}

// ZoneOwners returns the names at which the zone serves d's records (see
// DomainZoneRecords): what a change of d replaces.
func ZoneOwners(sandbox bool, name, selector, token string, o ZoneOptions) []string {
	if sandbox {
		return []string{selector + "._domainkey." + name, BounceDomain(token, o.Zone), DMARCTarget(token, o.Zone)}
	}
	return []string{DKIMTarget(selector, token, o.Zone), BounceDomain(token, o.Zone), DMARCTarget(token, o.Zone)}
}

// keyOwner is where the zone serves a domain's key at selector: inside
// the zone for sandbox domains, else the target of the customer's CNAME.
func keyOwner(sandbox bool, name, selector, token string, o ZoneOptions) string {
	fqdn := keyOwnerFQDN(sandbox, name, selector, token, o)
	return fqdn[:len(fqdn)-1]
}

// keyOwnerFQDN is keyOwner with the trailing dot, in one allocation.
func keyOwnerFQDN(sandbox bool, name, selector, token string, o ZoneOptions) string {
	if sandbox {
		return selector + "._domainkey." + name + "."
	}
	return selector + "." + token + ".dkim." + o.Zone + "." // DKIMTarget
}

// KeyOwners returns the names at which the zone serves the keys at the
// extra selectors of a domain (its next and retired keys; see
// ZoneOwners for the rest).
func KeyOwners(sandbox bool, name string, selectors []string, token string, o ZoneOptions) []string {
	owners := make([]string, 0, len(selectors))
	for _, sel := range selectors {
		owners = append(owners, keyOwner(sandbox, name, sel, token, o))
	}
	return owners
}

// DomainZoneRecords appends to rrs the records the zone serves for the
// domains ds (without the zone-wide ones: GlobalZoneRecords).
func DomainZoneRecords(rrs []dns.RR, ds []store.DomainRow, o ZoneOptions) []dns.RR {
	for i := range ds {
		rrs = AppendDomainRecords(rrs, &ds[i], nil, o)
	}
	return rrs
}

// BounceOwner is BounceDomain as the zone's owner name (with the trailing
// dot), in one allocation.
func BounceOwner(token, zone string) string { return token + ".bounce." + zone + "." }

// AppendDomainRecords appends to rrs the records the zone serves for d.
// intern, when not nil, returns one copy of equal values (most domains
// publish the same DMARC policy).
func AppendDomainRecords(rrs []dns.RR, d *store.DomainRow, intern func(string) string, o ZoneOptions) []dns.RR {
	txt := d.DKIMTXT
	if txt == "" || txt == "-" {
		return rrs
	}
	// The owner names are built as FQDNs at once (the zone would copy
	// them to add the dot: 4 million strings at a million domains).
	if !d.BYOK { // a BYOK key is published by the customer, never here
		rrs = append(rrs, zone.TXT(keyOwnerFQDN(d.Sandbox, d.Name, d.Selector, d.Token, o), 0, txt))
	}
	for _, k := range d.Extra {
		if k.Selector == d.Selector || k.TXT == "" || k.TXT == "-" {
			continue
		}
		rrs = append(rrs, zone.TXT(keyOwnerFQDN(d.Sandbox, d.Name, k.Selector, d.Token, o), 0, k.TXT))
	}
	bounce := BounceOwner(d.Token, o.Zone)
	rrs = append(rrs, zone.MX(bounce, 0, 10, o.BounceMX), zone.TXT(bounce, 0, o.SPF))
	if d.DMARCPolicy != "" {
		v := DMARCValue(DMARC{Policy: d.DMARCPolicy, RUA: d.DMARCRUA, Pct: d.DMARCPct})
		if intern != nil {
			v = intern(v)
		}
		rrs = append(rrs, zone.TXT(d.Token+".dmarc."+o.Zone+".", 0, v)) // DMARCTarget
	}
	return rrs
}

// GlobalZoneRecords are the zone's records that belong to no domain:
// track.ZONE and sendergate's own DKIM key.
func GlobalZoneRecords(o ZoneOptions) []dns.RR {
	var rrs []dns.RR
	if ip := net.ParseIP(o.TrackingAddress); ip != nil {
		if rr := zone.A(TrackingTarget(o.Zone), 0, ip); rr != nil {
			rrs = append(rrs, rr)
		}
	}
	if o.SystemKey != nil {
		if txt, err := dkim.TXTValue(o.SystemKey); err == nil {
			rrs = append(rrs, zone.TXT("sg1._domainkey."+o.Zone, 0, txt))
		}
	}
	return rrs
}
