//go:build linux

package namespace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
)

// The init message (the container's whole Config) is the one message an
// init decodes before it can do anything, in a process whose encoding/json
// is cold: building json's field tables for Config and everything below it
// cost 1-2 ms there, against 0.1 ms warm. So it travels in a compact binary
// form instead, written and read by walking the value with reflect: every
// exported field without a `json:"-"` tag, in declaration order (what JSON
// would carry, so a new field can never be left behind). Owner and init are
// the same binary, so the two sides always agree on the layout. Other
// messages stay JSON.
//
// The form: bool one byte; integers varints; floats their bits; strings and
// []byte a length then the bytes; slices and maps 0 for nil or length+1,
// then the elements (map keys and values alternating); pointers 0 for nil
// or 1 then the value; arrays and structs their elements in order.

// wireMagic starts a binary packet; a JSON packet never starts with it.
const wireMagic = 0

var errWire = errors.New("bad binary message")

// marshalWire returns the binary form of *v (v a pointer), after wireMagic.
func marshalWire(v any) ([]byte, error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return nil, fmt.Errorf("%w: need a non-nil pointer, got %T", errWire, v)
	}
	return appendWire([]byte{wireMagic}, rv.Elem())
}

// unmarshalWire fills *v (v a pointer) from b, which starts with wireMagic.
func unmarshalWire(b []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("%w: need a non-nil pointer, got %T", errWire, v)
	}
	if len(b) == 0 || b[0] != wireMagic {
		return fmt.Errorf("%w: no magic byte", errWire)
	}
	r := &wireReader{b: b[1:]}
	if err := r.value(rv.Elem()); err != nil {
		return err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d bytes left over", errWire, len(r.b))
	}
	return nil
}

// wireField says whether a struct field travels (what JSON would carry).
func wireField(f reflect.StructField) bool {
	return f.IsExported() && f.Tag.Get("json") != "-"
}

func appendWire(b []byte, v reflect.Value) ([]byte, error) {
	switch v.Kind() {
	case reflect.Bool:
		if v.Bool() {
			return append(b, 1), nil
		}
		return append(b, 0), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return binary.AppendVarint(b, v.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return binary.AppendUvarint(b, v.Uint()), nil
	case reflect.Float32, reflect.Float64:
		return binary.AppendUvarint(b, math.Float64bits(v.Float())), nil
	case reflect.String:
		b = binary.AppendUvarint(b, uint64(v.Len()))
		return append(b, v.String()...), nil
	case reflect.Slice:
		if v.IsNil() {
			return append(b, 0), nil
		}
		b = binary.AppendUvarint(b, uint64(v.Len())+1)
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return append(b, v.Bytes()...), nil
		}
		return appendElems(b, v)
	case reflect.Array:
		return appendElems(b, v)
	case reflect.Map:
		if v.IsNil() {
			return append(b, 0), nil
		}
		b = binary.AppendUvarint(b, uint64(v.Len())+1)
		var err error
		for it := v.MapRange(); it.Next(); {
			if b, err = appendWire(b, it.Key()); err != nil {
				return nil, err
			}
			if b, err = appendWire(b, it.Value()); err != nil {
				return nil, err
			}
		}
		return b, nil
	case reflect.Pointer:
		if v.IsNil() {
			return append(b, 0), nil
		}
		return appendWire(append(b, 1), v.Elem())
	case reflect.Struct:
		t := v.Type()
		var err error
		for i := 0; i < t.NumField(); i++ {
			if !wireField(t.Field(i)) {
				continue
			}
			if b, err = appendWire(b, v.Field(i)); err != nil {
				return nil, fmt.Errorf("%s.%s: %w", t.Name(), t.Field(i).Name, err)
			}
		}
		return b, nil
	}
	return nil, fmt.Errorf("%w: cannot encode a %s", errWire, v.Type())
}

func appendElems(b []byte, v reflect.Value) ([]byte, error) {
	var err error
	for i := 0; i < v.Len(); i++ {
		if b, err = appendWire(b, v.Index(i)); err != nil {
			return nil, err
		}
	}
	return b, nil
}

type wireReader struct{ b []byte }

func (r *wireReader) uvarint() (uint64, error) {
	x, n := binary.Uvarint(r.b)
	if n <= 0 {
		return 0, fmt.Errorf("%w: truncated", errWire)
	}
	r.b = r.b[n:]
	return x, nil
}

func (r *wireReader) varint() (int64, error) {
	x, n := binary.Varint(r.b)
	if n <= 0 {
		return 0, fmt.Errorf("%w: truncated", errWire)
	}
	r.b = r.b[n:]
	return x, nil
}

// length reads a length and checks that at least min bytes per element
// remain for it, so a corrupt length cannot make a huge allocation.
func (r *wireReader) length(min int) (int, error) {
	n, err := r.uvarint()
	if err != nil {
		return 0, err
	}
	if n > uint64(len(r.b)/max(min, 1)) {
		return 0, fmt.Errorf("%w: length %d past the end", errWire, n)
	}
	return int(n), nil
}

// count reads the length+1 of a non-nil slice or map, checking it like
// length.
func (r *wireReader) count(min int) (int, error) {
	n, err := r.uvarint()
	if err != nil {
		return 0, err
	}
	if n == 0 || n-1 > uint64(len(r.b)/max(min, 1)) {
		return 0, fmt.Errorf("%w: count %d past the end", errWire, n)
	}
	return int(n - 1), nil
}

// present reads the nil marker of a slice, map or pointer.
func (r *wireReader) present() (bool, error) {
	if len(r.b) == 0 {
		return false, fmt.Errorf("%w: truncated", errWire)
	}
	if r.b[0] == 0 {
		r.b = r.b[1:]
		return false, nil
	}
	return true, nil
}

func (r *wireReader) value(v reflect.Value) error {
	switch v.Kind() {
	case reflect.Bool:
		if len(r.b) == 0 || r.b[0] > 1 {
			return fmt.Errorf("%w: bad bool", errWire)
		}
		v.SetBool(r.b[0] == 1)
		r.b = r.b[1:]
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		x, err := r.varint()
		if err != nil {
			return err
		}
		if v.OverflowInt(x) {
			return fmt.Errorf("%w: %d overflows %s", errWire, x, v.Type())
		}
		v.SetInt(x)
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		x, err := r.uvarint()
		if err != nil {
			return err
		}
		if v.OverflowUint(x) {
			return fmt.Errorf("%w: %d overflows %s", errWire, x, v.Type())
		}
		v.SetUint(x)
		return nil
	case reflect.Float32, reflect.Float64:
		x, err := r.uvarint()
		if err != nil {
			return err
		}
		v.SetFloat(math.Float64frombits(x))
		return nil
	case reflect.String:
		n, err := r.length(1)
		if err != nil {
			return err
		}
		v.SetString(string(r.b[:n]))
		r.b = r.b[n:]
		return nil
	case reflect.Slice:
		ok, err := r.present()
		if err != nil || !ok {
			return err
		}
		n, err := r.count(1)
		if err != nil {
			return err
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes(append([]byte{}, r.b[:n]...))
			r.b = r.b[n:]
			return nil
		}
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := 0; i < n; i++ {
			if err := r.value(s.Index(i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if err := r.value(v.Index(i)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		ok, err := r.present()
		if err != nil || !ok {
			return err
		}
		n, err := r.count(2)
		if err != nil {
			return err
		}
		m := reflect.MakeMapWithSize(v.Type(), n)
		kt, vt := v.Type().Key(), v.Type().Elem()
		for i := 0; i < n; i++ {
			k, e := reflect.New(kt).Elem(), reflect.New(vt).Elem()
			if err := r.value(k); err != nil {
				return err
			}
			if err := r.value(e); err != nil {
				return err
			}
			m.SetMapIndex(k, e)
		}
		v.Set(m)
		return nil
	case reflect.Pointer:
		ok, err := r.present()
		if err != nil || !ok {
			return err
		}
		r.b = r.b[1:]
		p := reflect.New(v.Type().Elem())
		if err := r.value(p.Elem()); err != nil {
			return err
		}
		v.Set(p)
		return nil
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			if !wireField(t.Field(i)) {
				continue
			}
			if err := r.value(v.Field(i)); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%w: cannot decode a %s", errWire, v.Type())
}
