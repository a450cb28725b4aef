// Package schemas defines Sluice's streams: the fields an event of each stream
// carries, which field is its partition key, and the ClickHouse table it lands
// in. Stream definitions are YAML files; the built-in ones live next to this
// file and are compiled into the binary.
package schemas

import (
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	"go.yaml.in/yaml/v3"
)

//go:embed *.yaml
var builtin embed.FS

// FieldType is the type of one field of an event.
type FieldType string

// The field types a schema may use.
const (
	// TypeString is a JSON string.
	TypeString FieldType = "string"
	// TypeEnum is a JSON string from a fixed list (Field.Values).
	TypeEnum FieldType = "enum"
	// TypeTimestamp is an RFC 3339 string or Unix epoch milliseconds.
	TypeTimestamp FieldType = "timestamp"
	// TypeNumberMap is a JSON object of name -> number.
	TypeNumberMap FieldType = "map(number)"
	// TypeStringMap is a JSON object of name -> string.
	TypeStringMap FieldType = "map(string)"
	// TypeNumber is a JSON number, decoded as a float64.
	TypeNumber FieldType = "number"
	// TypeBoolean is a JSON true or false, decoded as a bool.
	TypeBoolean FieldType = "boolean"
)

// Names of the fields every stream has besides its own.
const (
	// FieldEventID is the idempotency key of an event.
	FieldEventID = "event_id"
	// FieldReceivedAt is when Sluice accepted the event.
	FieldReceivedAt = "received_at"
)

// MaxEventIDLength bounds event_id, in bytes.
const MaxEventIDLength = 128

// Field is one field of a stream's events.
type Field struct {
	// Name is the field's JSON name and ClickHouse column.
	Name string `yaml:"name"`
	// Type says which JSON values the field takes.
	Type FieldType `yaml:"type"`
	// Required fields must be present and not null; a required string must
	// not be empty, and a required map must have an entry. A required
	// number may be 0 and a required boolean false.
	Required bool `yaml:"required"`
	// MaxLength bounds a string, in bytes; for maps, each key and string
	// value. Zero means the default: none for strings, 256 for map keys.
	MaxLength int `yaml:"max_length"`
	// Values lists what an enum accepts, in the order the enum declares them.
	Values []string `yaml:"values"`
	// MaxEntries bounds the number of entries of a map.
	MaxEntries int `yaml:"max_entries"`
	// Min and Max bound a number, inclusively; nil means unbounded.
	Min *float64 `yaml:"min"`
	Max *float64 `yaml:"max"`
}

// fieldOptions are the options a field may set besides name, type and
// required, in the order Field declares them, with the types each applies
// to and whether a field sets it.
var fieldOptions = []struct {
	name  string
	types []FieldType
	set   func(*Field) bool
}{
	{"max_length", []FieldType{TypeString, TypeNumberMap, TypeStringMap}, func(f *Field) bool { return f.MaxLength != 0 }},
	{"values", []FieldType{TypeEnum}, func(f *Field) bool { return f.Values != nil }},
	{"max_entries", []FieldType{TypeNumberMap, TypeStringMap}, func(f *Field) bool { return f.MaxEntries != 0 }},
	{"min", []FieldType{TypeNumber}, func(f *Field) bool { return f.Min != nil }},
	{"max", []FieldType{TypeNumber}, func(f *Field) bool { return f.Max != nil }},
}

// checkOptions validates a field's type and the options it sets for it.
func (f *Field) checkOptions() error {
	switch f.Type {
	case TypeString, TypeEnum, TypeTimestamp, TypeNumberMap, TypeStringMap, TypeNumber, TypeBoolean:
	default:
		return fmt.Errorf("unknown type %q", f.Type)
	}
	// An option that does not apply would be ignored: say so rather than
	// leave the author believing it bounds something.
	for _, o := range fieldOptions {
		if o.set(f) && !slices.Contains(o.types, f.Type) {
			return fmt.Errorf("option %s does not apply to type %s", o.name, f.Type)
		}
	}
	if f.MaxLength < 0 {
		return fmt.Errorf("max_length %d: must not be negative", f.MaxLength)
	}
	if f.MaxEntries < 0 {
		return fmt.Errorf("max_entries %d: must not be negative", f.MaxEntries)
	}
	switch f.Type {
	case TypeEnum:
		if len(f.Values) == 0 {
			return errors.New("enum without values")
		}
		seen := make(map[string]bool, len(f.Values))
		for _, v := range f.Values {
			if seen[v] {
				return fmt.Errorf("values: %q listed twice", Truncate(v, 64))
			}
			seen[v] = true
		}
	case TypeNumber:
		for _, b := range []struct {
			name string
			v    *float64
		}{{"min", f.Min}, {"max", f.Max}} {
			if b.v != nil && (math.IsNaN(*b.v) || math.IsInf(*b.v, 0)) {
				return fmt.Errorf("%s %v: must be a finite number", b.name, *b.v)
			}
		}
		if f.Min != nil && f.Max != nil && *f.Min > *f.Max {
			return fmt.Errorf("min %s is greater than max %s", formatNumber(*f.Min), formatNumber(*f.Max))
		}
	}
	return nil
}

// Stream is a named event type.
type Stream struct {
	// Name is the stream's name in URLs and topics; it is also the name of
	// its definition file, without .yaml.
	Name string `yaml:"name"`
	// Description is for people.
	Description string `yaml:"description"`
	// PartitionKey names the required string field that keys Kafka records,
	// so that the events of one device or service stay in order.
	PartitionKey string `yaml:"partition_key"`
	// Table is the ClickHouse table; empty means Name.
	Table string `yaml:"table"`
	// OrderBy lists the fields of the table's sort key.
	OrderBy []string `yaml:"order_by"`
	// Fields are the stream's own fields, in the order errors and the
	// encoded JSON list them.
	Fields []Field `yaml:"fields"`

	byName map[string]*Field
	index  map[string]int // field name -> index in Fields
	intern *internTable   // strings the decoders read, shared by copies
	stats  *streamStats   // what its Records held, shared by copies
	// quoted holds each field's name in quotes, as Encode writes it: the
	// decoders compare what comes next with the name Encode would write
	// there before they scan a name (parser.nameAs).
	quoted []string
}

// streamStats is what the Records of a stream learn of its events.
type streamStats struct {
	// entriesPerEvent is the map entries an event held, in thousandths,
	// in the last Records that was Done.
	entriesPerEvent atomic.Int64
}

// Field returns the named field, or nil.
func (s *Stream) Field(name string) *Field { return s.byName[name] }

// FieldIndex returns the index in Fields of the named field, or -1.
func (s *Stream) FieldIndex(name string) int {
	for i := range s.Fields {
		if s.Fields[i].Name == name {
			return i
		}
	}
	return -1
}

var identRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// check validates a parsed definition and builds its lookup table.
func (s *Stream) check() error {
	if !identRE.MatchString(s.Name) {
		return fmt.Errorf("name %q: must match %s", s.Name, identRE)
	}
	if s.Table == "" {
		s.Table = s.Name
	}
	if !identRE.MatchString(s.Table) {
		return fmt.Errorf("table %q: must match %s", s.Table, identRE)
	}
	if len(s.Fields) == 0 {
		return errors.New("fields: none defined")
	}
	s.byName = make(map[string]*Field, len(s.Fields))
	s.index = make(map[string]int, len(s.Fields))
	s.intern = newInternTable()
	s.stats = &streamStats{}
	for i := range s.Fields {
		f := &s.Fields[i]
		if !identRE.MatchString(f.Name) {
			return fmt.Errorf("fields[%d].name %q: must match %s", i, f.Name, identRE)
		}
		if f.Name == FieldEventID || f.Name == FieldReceivedAt || strings.HasPrefix(f.Name, "kafka_") {
			return fmt.Errorf("fields[%d].name %q: reserved", i, f.Name)
		}
		if _, dup := s.byName[f.Name]; dup {
			return fmt.Errorf("fields[%d].name %q: defined twice", i, f.Name)
		}
		if err := f.checkOptions(); err != nil {
			return fmt.Errorf("fields[%d] %s: %w", i, f.Name, err)
		}
		s.byName[f.Name] = f
		s.index[f.Name] = i
		s.quoted = append(s.quoted, `"`+f.Name+`"`)
	}
	for _, f := range s.Fields {
		// Generated column names (ts_ms, tags.name) must not collide.
		if f.Type == TypeTimestamp {
			if _, clash := s.byName[f.Name+"_ms"]; clash {
				return fmt.Errorf("field %s_ms: clashes with the millisecond column of %s", f.Name, f.Name)
			}
		}
	}
	pk := s.byName[s.PartitionKey]
	if pk == nil {
		return fmt.Errorf("partition_key %q: no such field", s.PartitionKey)
	}
	if pk.Type != TypeString || !pk.Required {
		return fmt.Errorf("partition_key %q: must be a required string field", s.PartitionKey)
	}
	for _, o := range s.OrderBy {
		f := s.byName[o]
		if f == nil {
			return fmt.Errorf("order_by %q: no such field", o)
		}
		if f.Type == TypeNumberMap || f.Type == TypeStringMap {
			return fmt.Errorf("order_by %q: maps cannot be sort keys", o)
		}
	}
	return nil
}

// Registry holds the streams Sluice knows, by name.
type Registry struct {
	streams map[string]*Stream
}

// Builtin returns the streams that ship with Sluice.
func Builtin() (*Registry, error) {
	r, err := load(builtin)
	if err != nil {
		return nil, fmt.Errorf("built-in schemas: %w", err)
	}
	return r, nil
}

// Load returns the streams of the --schemas setting: those in dir, or the
// built-in ones when dir is empty.
func Load(dir string) (*Registry, error) {
	if dir == "" {
		return Builtin()
	}
	return LoadDir(dir)
}

// LoadDir reads every *.yaml file in dir as a stream definition.
func LoadDir(dir string) (*Registry, error) {
	r, err := load(os.DirFS(dir))
	if err != nil {
		return nil, fmt.Errorf("schemas in %s: %w", dir, err)
	}
	return r, nil
}

func load(fsys fs.FS) (*Registry, error) {
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, errors.New("no *.yaml stream definitions")
	}
	r := &Registry{streams: make(map[string]*Stream)}
	tables := map[string]string{}
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		var s Stream
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&s); err != nil {
			if errors.Is(err, io.EOF) {
				// The decoder's bare "EOF" reads like a read error.
				err = errors.New("no stream definition in the file")
			}
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if err := s.check(); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if want := strings.TrimSuffix(filepath.Base(name), ".yaml"); want != s.Name {
			return nil, fmt.Errorf("%s: stream name %q differs from the file name", name, s.Name)
		}
		if other, ok := tables[s.Table]; ok {
			return nil, fmt.Errorf("%s: table %q already used by stream %s", name, s.Table, other)
		}
		tables[s.Table] = s.Name
		r.streams[s.Name] = &s
	}
	return r, nil
}

// Stream returns the named stream, or nil if there is none.
func (r *Registry) Stream(name string) *Stream { return r.streams[name] }

// Streams returns every stream, sorted by name.
func (r *Registry) Streams() []*Stream {
	out := make([]*Stream, 0, len(r.streams))
	for _, s := range r.streams {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Names returns the stream names, sorted.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.streams))
	for n := range r.streams {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
