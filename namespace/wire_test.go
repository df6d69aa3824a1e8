//go:build linux

package namespace

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"syscall"
	"testing"
)

// fill sets every field that travels to a non-zero value, so that a field
// the binary form dropped would show up as a difference.
func fill(v reflect.Value, seed *int) {
	*seed++
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*seed % 100))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		v.SetUint(uint64(*seed%100 + 1))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(*seed) + 0.5)
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *seed))
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := 0; i < 2; i++ {
			fill(s.Index(i), seed)
		}
		v.Set(s)
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			fill(v.Index(i), seed)
		}
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for i := 0; i < 2; i++ {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(k, seed)
			fill(e, seed)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), seed)
		v.Set(p)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if wireField(v.Type().Field(i)) {
				fill(v.Field(i), seed)
			}
		}
	}
}

func fullMessage(t *testing.T) *message {
	t.Helper()
	m := new(message)
	seed := 0
	fill(reflect.ValueOf(m).Elem(), &seed)
	m.Op = "init"
	return m
}

func TestWireRoundTrip(t *testing.T) {
	m := fullMessage(t)
	b, err := marshalWire(m)
	if err != nil {
		t.Fatal(err)
	}
	var got message
	if err := unmarshalWire(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, m) {
		t.Errorf("round trip differs:\n got %+v\nwant %+v", got, *m)
	}
	// The same as JSON carries: nothing JSON would send is left out.
	jb, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var viaJSON message
	if err := json.Unmarshal(jb, &viaJSON); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, &viaJSON) {
		t.Errorf("binary and JSON differ:\nbinary %+v\n  json %+v", got, viaJSON)
	}
	// nil and empty stay apart, as the init's defaults depend on it (nil
	// MaskedPaths means Docker's list, empty means none).
	m.Config.MaskedPaths, m.Config.ReadonlyPaths, m.Config.Files = nil, []string{}, nil
	b, _ = marshalWire(m)
	got = message{}
	if err := unmarshalWire(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Config.MaskedPaths != nil || got.Config.ReadonlyPaths == nil || len(got.Config.ReadonlyPaths) != 0 || got.Config.Files != nil {
		t.Errorf("nil/empty: got %#v %#v %#v", got.Config.MaskedPaths, got.Config.ReadonlyPaths, got.Config.Files)
	}
	// encodeMessage: JSON, or binary on a wire connection, where a reply
	// is read as a message with all its fields.
	if b, _ := encodeMessage(&message{Op: "go"}, false); b[0] != '{' {
		t.Errorf("JSON message: %q", b)
	}
	var r reply
	seed := 0
	fill(reflect.ValueOf(&r).Elem(), &seed)
	jb, _ = json.Marshal(&r)
	var wantR message
	if err := json.Unmarshal(jb, &wantR); err != nil {
		t.Fatal(err)
	}
	b, err = encodeMessage(&r, true)
	if err != nil || b[0] != wireMagic {
		t.Fatalf("reply on a wire connection: %v %q", err, b)
	}
	var gotR message
	if err := decodeMessage(b, &gotR); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotR, wantR) {
		t.Errorf("reply:\n got %+v\nwant %+v", gotR, wantR)
	}
}

// A damaged packet is an error, never a panic or a huge allocation.
func TestWireCorrupt(t *testing.T) {
	b, err := marshalWire(fullMessage(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(b); i++ {
		var m message
		if err := unmarshalWire(b[:i], &m); !errors.Is(err, errWire) {
			t.Fatalf("truncated at %d of %d: %v", i, len(b), err)
		}
	}
	for i := 1; i < len(b); i++ {
		for _, x := range []byte{0x00, 0x01, 0x7f, 0xff} {
			c := append([]byte(nil), b...)
			c[i] = x
			var m message
			_ = unmarshalWire(c, &m) // must not panic
		}
	}
	huge := []byte{wireMagic, 0x05, 'i', 'n', 'i', 't', 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f}
	var m message
	if err := unmarshalWire(huge, &m); !errors.Is(err, errWire) {
		t.Errorf("huge length: %v", err)
	}
	if _, err := marshalWire(&struct{ X any }{X: 1}); !errors.Is(err, errWire) {
		t.Errorf("interface field: %v", err)
	}
}

func FuzzWire(f *testing.F) {
	b, _ := marshalWire(&message{Op: "init", Config: &Config{ID: "x", MaskedPaths: []string{"/a"}}, Host: &hostInfo{LastCap: 40}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var m message
		if err := unmarshalWire(b, &m); err != nil {
			return
		}
		b2, err := marshalWire(&m)
		if err != nil {
			t.Fatal(err)
		}
		var m2 message
		if err := unmarshalWire(b2, &m2); err != nil || !reflect.DeepEqual(&m, &m2) {
			t.Fatalf("re-encoding differs: %v", err)
		}
	})
}

func TestStatusJSON(t *testing.T) {
	for _, st := range []ExitStatus{
		{}, {Code: 1}, {Code: 137, Signal: syscall.SIGKILL}, {Code: 137, Signal: syscall.SIGKILL, OwnerGone: true},
		{Code: -1}, {Code: 255, OwnerGone: true},
	} {
		want, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendStatusJSON(nil, st); string(got) != string(want) {
			t.Errorf("appendStatusJSON(%+v) = %s, want %s", st, got, want)
		}
	}
}
