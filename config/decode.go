package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// decodeFile decodes path on top of cfg one key at a time, so that every
// problem is found in one pass: keys cfg has no field for, and values of
// the wrong type or form (a bad duration), each as a FieldError in the
// order the file has them. A key whose value is refused keeps its default,
// so that Validate can still judge the rest. Only a TOML syntax error
// stops at once (nothing after it can be read).
func decodeFile(path string, cfg *Config) error {
	var top map[string]toml.Primitive
	md, err := toml.DecodeFile(path, &top)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) && pe.LastKey != "" {
			return Errors{&FieldError{Key: pe.LastKey,
				Msg: fmt.Sprintf("%s line %d: %s", path, pe.Position.Line, pe.Message)}}
		}
		return fmt.Errorf("config: %s: %w", path, err)
	}
	d := &fileDecoder{path: path, md: md}
	d.table(top, orderedKeys(md, nil), reflect.ValueOf(cfg).Elem(), nil)
	if len(d.errs) > 0 {
		return d.errs
	}
	return nil
}

// fileDecoder carries one file's decoding state.
type fileDecoder struct {
	path string
	md   toml.MetaData
	errs Errors
}

// table decodes the keys of one TOML table into the struct v, whose
// fields are named by their toml tags; prefix is the table's key.
func (d *fileDecoder) table(prims map[string]toml.Primitive, keys []string, v reflect.Value, prefix toml.Key) {
	for _, name := range keys {
		key := append(append(toml.Key(nil), prefix...), name)
		f, ok := fieldByTag(v, name)
		if !ok {
			d.errs = append(d.errs, &FieldError{Key: key.String(), Msg: "unknown key in " + d.path})
			continue
		}
		p := prims[name]
		if isSection(f) {
			var sub map[string]toml.Primitive
			if err := d.md.PrimitiveDecode(p, &sub); err != nil || !isTable(d.md.Type(key...)) {
				d.fail(key, fmt.Errorf("must be a table ([%s])", key))
				continue
			}
			d.table(sub, orderedKeys(d.md, key), f, key)
			continue
		}
		if err := d.md.PrimitiveDecode(p, f.Addr().Interface()); err != nil {
			d.fail(key, err)
		}
	}
}

// fail records a refused value.
func (d *fileDecoder) fail(key toml.Key, err error) {
	d.errs = append(d.errs, &FieldError{Key: key.String(), Msg: d.message(err)})
}

// decodePrefix is the prefix BurntSushi/toml puts on a decoding error
// that is not a ParseError: `toml: line 3 (last key "a.b"): `.
var decodePrefix = regexp.MustCompile(`^toml: line (\d+) \(last key "[^"]*"\): `)

// message words a decoding error as "PATH line N: what is wrong".
func (d *fileDecoder) message(err error) string {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s line %d: %s", d.path, pe.Position.Line, pe.Message)
	}
	s := err.Error()
	if m := decodePrefix.FindStringSubmatch(s); m != nil {
		return fmt.Sprintf("%s line %s: %s", d.path, m[1], s[len(m[0]):])
	}
	return d.path + ": " + strings.TrimPrefix(s, "toml: ")
}

// orderedKeys lists the names directly under prefix in the order the file
// has them.
func orderedKeys(md toml.MetaData, prefix toml.Key) []string {
	var out []string
	seen := map[string]bool{}
	for _, k := range md.Keys() {
		if len(k) <= len(prefix) || !slices.Equal(k[:len(prefix)], prefix) {
			continue
		}
		if name := k[len(prefix)]; !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out
}

// isTable tells whether a key of TOML type typ is a table: "Hash", or ""
// for a table defined only implicitly by a [parent.child] header.
func isTable(typ string) bool { return typ == "Hash" || typ == "" }

// fieldByTag returns the field of struct v whose toml tag is name.
func fieldByTag(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if tag == name && tag != "-" {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// isSection tells whether f is a TOML table of its own ([submission]) as
// opposed to a value that happens to be a struct (Duration).
func isSection(f reflect.Value) bool {
	if f.Kind() != reflect.Struct {
		return false
	}
	_, isText := f.Addr().Interface().(interface{ UnmarshalText([]byte) error })
	return !isText
}
