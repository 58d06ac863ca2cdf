// Package config decodes configuration as every part of wafcanary reads
// it: strictly typed, with strings parsed the way the environment and
// flags give them. The command binds files, environment and flags with
// viper and decodes through Strict; each package's own fixtures are read
// with DecodeYAML, so a section's good and bad files sit beside its
// Validate and are read exactly as the command reads them.
package config

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"go.yaml.in/yaml/v3"
)

// Strict turns off mapstructure's weak typing, under which
// candidate_percent: true was 1% and workers: 4.5 was 4. Strings still
// convert, because environment variables and flags arrive as strings;
// nothing else does.
func Strict(c *mapstructure.DecoderConfig) {
	c.WeaklyTypedInput = false
	c.DecodeHook = mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		commaList,
		fromString,
		wholeNumbers,
	)
}

// commaList splits a string for a list field at commas, trimming spaces:
// WAFCANARY_ROUTING_TRUSTED_PROXIES="10.0.0.0/8, 192.168.1.7".
func commaList(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Slice {
		return data, nil
	}
	// reflect, not data.(string): a default of a named string type
	// (rollout.OnMaxDuration) arrives as itself, not as a string.
	s := strings.TrimSpace(reflect.ValueOf(data).String())
	if s == "" {
		return []string{}, nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts, nil
}

// fromString parses a string for a number or boolean field, as the
// environment and flags give them.
func fromString(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String {
		return data, nil
	}
	s := strings.TrimSpace(reflect.ValueOf(data).String())
	var (
		v   any
		err error
	)
	switch to.Kind() {
	case reflect.Bool:
		v, err = strconv.ParseBool(s)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v, err = strconv.ParseInt(s, 10, to.Bits())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v, err = strconv.ParseUint(s, 10, to.Bits())
	case reflect.Float32, reflect.Float64:
		v, err = strconv.ParseFloat(s, to.Bits())
	default:
		return data, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot parse value as '%s': %q is not a %s", to, s, to.Kind())
	}
	return v, nil
}

// wholeNumbers refuses a fraction for an integer field (mapstructure
// would truncate it) and a boolean for a number.
func wholeNumbers(from, to reflect.Type, data any) (any, error) {
	isInt := func(k reflect.Kind) bool { return k >= reflect.Int && k <= reflect.Uint64 }
	isNum := func(k reflect.Kind) bool { return isInt(k) || k == reflect.Float32 || k == reflect.Float64 }
	switch {
	case from.Kind() == reflect.Bool && isNum(to.Kind()):
		return nil, fmt.Errorf("expected a number, got %v", data)
	case (from.Kind() == reflect.Float32 || from.Kind() == reflect.Float64) && isInt(to.Kind()):
		f := reflect.ValueOf(data).Float()
		if f != math.Trunc(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("expected a whole number, got %v", data)
		}
	}
	return data, nil
}

// DecodeYAML decodes a YAML document into out as the command does: weak
// typing off, unknown keys refused, each error naming its key.
func DecodeYAML(b []byte, out any) error {
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return err
	}
	c := &mapstructure.DecoderConfig{Result: out, ErrorUnused: true, ZeroFields: true}
	Strict(c)
	dec, err := mapstructure.NewDecoder(c)
	if err != nil {
		return err
	}
	return dec.Decode(raw)
}

// Fixture is one configuration file of a package's testdata: a section
// as an operator would write it, and, for a bad one, the error it must
// give, from its first line "# want: <fragment of the error>".
type Fixture struct {
	Name string
	Body []byte
	// Want is empty for a good file.
	Want string
}

// Fixtures reads dir's *.good.yml and *.bad.yml. A bad file without its
// "# want:" line is an error: it would check nothing.
func Fixtures(dir string) ([]Fixture, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.yml"))
	if err != nil {
		return nil, err
	}
	var out []Fixture
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		f := Fixture{Name: filepath.Base(name), Body: b}
		first, _, _ := strings.Cut(string(b), "\n")
		f.Want, _ = strings.CutPrefix(first, "# want: ")
		switch {
		case strings.HasSuffix(name, ".bad.yml") && f.Want == first:
			return nil, fmt.Errorf("%s: a bad fixture must start with \"# want: <error>\"", name)
		case strings.HasSuffix(name, ".good.yml"):
			f.Want = ""
		case !strings.HasSuffix(name, ".bad.yml"):
			return nil, fmt.Errorf("%s: name it .good.yml or .bad.yml", name)
		}
		out = append(out, f)
	}
	return out, nil
}
