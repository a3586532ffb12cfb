package loader

import (
	"reflect"
	"testing"

	"github.com/sendergate/sendergate/domains"
	"github.com/sendergate/sendergate/store"
)

// TestPackKeys: the packed form of an organization's domains gives back
// what names each domain's records: the sandbox domain's own name, the
// token, the selector and the extra selectors (the active one not
// repeated among them).
func TestPackKeys(t *testing.T) {
	tests := []struct {
		name string
		rows []store.DomainRow
		want []zoneKey
	}{
		{"none", nil, nil},
		{"customer and sandbox", []store.DomainRow{
			{Name: "example.com", Token: "t0k3n", Selector: "sg1", Extra: []store.KeyRow{{Selector: "sg1b"}, {Selector: "sg1"}}},
			{Name: "acme.sandbox.sg.localhost", Sandbox: true, Token: "t2", Selector: "sg"},
		}, []zoneKey{
			{fp: 0x0a00, name: "", token: "t0k3n", selector: "sg1", extra: []string{"sg1b"}},
			{fp: 1<<56 | 0x0a00, sandbox: true, name: "acme.sandbox.sg.localhost", token: "t2", selector: "sg", extra: []string{}},
		}},
		{"two extra keys", []store.DomainRow{
			{Name: "b.example", Token: "x", Selector: "s", Extra: []store.KeyRow{{Selector: "sb"}, {Selector: "old"}}},
		}, []zoneKey{{fp: 0x0a00, token: "x", selector: "s", extra: []string{"sb", "old"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rows []*store.DomainRow
			for i := range tt.rows {
				rows = append(rows, &tt.rows[i])
			}
			var got []zoneKey
			fps := make([]uint64, len(rows))
			for i := range fps {
				fps[i] = uint64(i)<<56 | '\n'<<8 | keySep // octets that separate fields elsewhere
			}
			unpackKeys(packKeys(nil, rows, fps), func(k zoneKey) { got = append(got, k) })
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("unpackKeys(packKeys(...)) = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestSnapshotStrings: the id, name and bounce domain the snapshot keeps
// of a domain are the row's, and the bounce domain is
// domains.EnvelopeDomain's, with and without a return-path label.
func TestSnapshotStrings(t *testing.T) {
	for _, d := range []store.DomainRow{
		{ID: "0b5d6c2e-6f43-4a57-9d1c-5b0e7f3a2c11", Name: "example.com", ReturnPath: "bounce", Token: "t0k3n"},
		{ID: "id2", Name: "mail.example.org", Token: "abcdefgh"},
		{ID: "", Name: "x.example", Token: "t"},
	} {
		id, name, envelope := snapshotStrings(nil, &d, "sg.localhost")
		aid, aname, aenvelope := snapshotStrings(new(arena), &d, "sg.localhost")
		if aid != id || aname != name || aenvelope != envelope {
			t.Errorf("%+v: from an arena %q %q %q, without %q %q %q", d, aid, aname, aenvelope, id, name, envelope)
		}
		if id != d.ID || name != d.Name {
			t.Errorf("%+v: id %q, name %q", d, id, name)
		}
		if want := domains.EnvelopeDomain(d.Name, d.ReturnPath, d.Token, "sg.localhost"); envelope != want {
			t.Errorf("%+v: bounce domain %q, want %q", d, envelope, want)
		}
	}
}
