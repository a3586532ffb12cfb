package zone

import (
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// smallSet is the size up to which record sets are compared pairwise;
// larger ones go through a map of presentation forms.
const smallSet = 16

// ttlOf returns the TTL rr is served with: its own, or the zone's when zero.
func (s *Server) ttlOf(rr dns.RR) uint32 {
	if t := rr.Header().Ttl; t != 0 {
		return t
	}
	return s.ttl
}

// same reports whether a and b are the same record: owner, class, type,
// served TTL and data (names in the data compared without case). Owners
// are compared exactly: accepted records have lowercase owners.
func (s *Server) same(a, b dns.RR) bool {
	if a == b {
		return true
	}
	ha, hb := a.Header(), b.Header()
	if ha.Rrtype != hb.Rrtype || ha.Class != hb.Class || ha.Name != hb.Name || s.ttlOf(a) != s.ttlOf(b) {
		return false
	}
	switch x := a.(type) { // the types this zone holds, without dns.IsDuplicate's name folding
	case *dns.TXT:
		y, ok := b.(*dns.TXT)
		return ok && slices.Equal(x.Txt, y.Txt)
	case *dns.MX:
		y, ok := b.(*dns.MX)
		return ok && x.Preference == y.Preference && strings.EqualFold(x.Mx, y.Mx)
	}
	return dns.IsDuplicate(a, b)
}

// key is the identity of rr as a string, for large record sets.
func (s *Server) key(rr dns.RR) string {
	return s.servedOwn1(rr).String()
}

// indexOf returns the position of rr in rrs, or -1.
func (s *Server) indexOf(rrs []dns.RR, rr dns.RR) int {
	for i, r := range rrs {
		if s.same(r, rr) {
			return i
		}
	}
	return -1
}

// dedupe removes repeated records from rrs in place, keeping the first of
// each, and returns the shortened slice.
func (s *Server) dedupe(rrs []dns.RR) []dns.RR {
	out := rrs[:0]
	if len(rrs) <= smallSet {
		for _, rr := range rrs {
			if s.indexOf(out, rr) < 0 {
				out = append(out, rr)
			}
		}
		return out
	}
	seen := make(map[string]bool, len(rrs))
	for _, rr := range rrs {
		if k := s.key(rr); !seen[k] {
			seen[k] = true
			out = append(out, rr)
		}
	}
	return out
}

// minus returns the records of a that are not in b; neither holds
// duplicates.
func (s *Server) minus(a, b []dns.RR) []dns.RR {
	var out []dns.RR
	if len(b) <= smallSet {
		for _, rr := range a {
			if s.indexOf(b, rr) < 0 {
				out = append(out, rr)
			}
		}
		return out
	}
	in := make(map[string]bool, len(b))
	for _, rr := range b {
		in[s.key(rr)] = true
	}
	for _, rr := range a {
		if !in[s.key(rr)] {
			out = append(out, rr)
		}
	}
	return out
}

// isGenerated reports whether rr is one of the configured address records,
// which only a change of the configuration removes.
func (s *Server) isGenerated(rr dns.RR) bool {
	return s.indexOf(s.generated, rr) >= 0
}

// served returns rr as it is sent: owner spelled as owner and the zone TTL
// for a TTL of zero. It returns rr itself when nothing differs, else a
// copy; stored records are never modified.
func (s *Server) served(rr dns.RR, owner string) dns.RR {
	h := rr.Header()
	if h.Name == owner && h.Ttl != 0 {
		return rr
	}
	var c dns.RR
	// Shallow copies of the types this zone holds (their slices are never
	// modified); anything else is copied deeply.
	switch rr := rr.(type) {
	case *dns.TXT:
		cp := *rr
		c = &cp
	case *dns.MX:
		cp := *rr
		c = &cp
	case *dns.A:
		cp := *rr
		c = &cp
	case *dns.AAAA:
		cp := *rr
		c = &cp
	default:
		c = dns.Copy(rr)
	}
	ch := c.Header()
	ch.Name = owner
	ch.Ttl = s.ttlOf(rr)
	return c
}

// servedOwn1 returns rr as it is sent under its own owner name.
func (s *Server) servedOwn1(rr dns.RR) dns.RR {
	return s.served(rr, rr.Header().Name)
}

// servedOwn returns rrs as they are sent under their own owner names.
func (s *Server) servedOwn(rrs []dns.RR) []dns.RR {
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		out[i] = s.servedOwn1(rr)
	}
	return out
}
