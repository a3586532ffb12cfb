package zone

import "github.com/miekg/dns"

// Records returns the records the zone serves at name (any case, with or
// without the trailing dot) as copies, or nil. A caller that replaces the
// records of some names with Patch passes these as the records to delete.
func (s *Server) Records(name string) []dns.RR {
	n, err := normalizeName(name)
	if err != nil {
		return nil
	}
	rrs, _, ok := s.data.Load().shards.records(n)
	if !ok {
		return nil
	}
	return rrs
}
