package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"log"
	"math/big"
	"net"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/sendergate/sendergate/internal/demodns"
)

// record is one entry of the -records file.
type record struct {
	Host  string `json:"host"`
	Value string `json:"value"`
}

// zoneFile answers CNAME queries from a JSON file read on every query.
type zoneFile struct {
	path   string
	logger *log.Logger
}

// load reads the records file; a missing file is an empty zone.
func (z zoneFile) load() (map[string]string, error) {
	out := map[string]string{}
	if z.path == "" {
		return out, nil
	}
	b, err := os.ReadFile(z.path)
	if os.IsNotExist(err) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sink: read %s: %w", z.path, err)
	}
	var rs []record
	if err := json.Unmarshal(b, &rs); err != nil {
		return nil, fmt.Errorf("sink: parse %s: %w", z.path, err)
	}
	for _, r := range rs {
		out[dns.Fqdn(strings.ToLower(r.Host))] = dns.Fqdn(r.Value)
	}
	return out, nil
}

// ServeDNS answers a CNAME for a known name (whatever the query type, as a
// resolver would see it), NXDOMAIN otherwise, SERVFAIL when the file is
// unreadable (RFC 1035 4.1.1).
func (z zoneFile) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	cnames, err := z.load()
	switch {
	case err != nil:
		z.logger.Print(err)
		m.Rcode = dns.RcodeServerFailure
	case len(r.Question) != 1:
		m.Rcode = dns.RcodeFormatError
	default:
		q := r.Question[0]
		if target, ok := cnames[strings.ToLower(q.Name)]; ok {
			m.Answer = append(m.Answer, &dns.CNAME{
				Hdr:    dns.RR_Header{Name: q.Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 60},
				Target: target,
			})
		} else {
			m.Rcode = dns.RcodeNameError
		}
	}
	_ = w.WriteMsg(m)
}

// startDNS serves the records file over UDP and TCP on addr; it returns a
// stop function.
func startDNS(addr, path string, logger *log.Logger) (func(), error) {
	stop, _, err := serveDNS(addr, path, logger)
	return stop, err
}

// serveDNS is startDNS that also returns the bound address.
func serveDNS(addr, path string, logger *log.Logger) (func(), string, error) {
	if err := loopbackOnly(addr); err != nil {
		return nil, "", err
	}
	z := zoneFile{path: path, logger: logger}
	if _, err := z.load(); err != nil {
		return nil, "", err
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("sink: dns listen udp %s: %w", addr, err)
	}
	l, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		return nil, "", fmt.Errorf("sink: dns listen tcp %s: %w", addr, err)
	}
	udp := &dns.Server{PacketConn: pc, Handler: z}
	tcp := &dns.Server{Listener: l, Handler: z}
	for _, s := range []*dns.Server{udp, tcp} {
		go func() {
			if err := s.ActivateAndServe(); err != nil {
				logger.Printf("dns server stopped: %v", err)
			}
		}()
	}
	logger.Printf("DNS on %s (udp+tcp), records from %s", pc.LocalAddr(), path)
	return func() { udp.Shutdown(); tcp.Shutdown() }, pc.LocalAddr().String(), nil
}

// startResolver serves the records file like startDNS, as the recursive
// resolver in front of it (internal/demodns): queries for zone go to
// zoneServer and CNAMEs are followed.
func startResolver(addr, path, zone, zoneServer string) (func(), error) {
	z := zoneFile{path: path}
	src := demodns.SourceFunc(func(context.Context) ([]demodns.Record, error) {
		cnames, err := z.load()
		if err != nil {
			return nil, err
		}
		recs := make([]demodns.Record, 0, len(cnames))
		for host, target := range cnames {
			recs = append(recs, demodns.Record{Host: host, Type: "CNAME", Value: target})
		}
		return recs, nil
	})
	s, err := demodns.Start(demodns.Config{Addr: addr, Source: src, Zone: zone, ZoneServer: zoneServer})
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	return func() { _ = s.Shutdown(context.Background()) }, nil
}

// selfSigned returns a TLS config with a fresh self-signed certificate so
// the sink offers STARTTLS.
func selfSigned() (*tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("sink: tls key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "sink.localhost"},
		DNSNames:     []string{"sink.localhost", "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("sink: tls certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, nil
}
