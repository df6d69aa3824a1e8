package registryclient

import (
	"errors"
	"strings"
	"testing"

	"github.com/berthrt/berth/errdefs"
	digest "github.com/opencontainers/go-digest"
)

const hexA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func TestParseReference(t *testing.T) {
	dg := digest.Digest("sha256:" + hexA)
	ok := []struct {
		in       string
		want     Reference
		familiar string
	}{
		{"alpine", Reference{"docker.io", "library/alpine", "latest", ""}, "alpine:latest"},
		{"alpine:3.20", Reference{"docker.io", "library/alpine", "3.20", ""}, "alpine:3.20"},
		{"library/alpine", Reference{"docker.io", "library/alpine", "latest", ""}, "alpine:latest"},
		{"docker.io/alpine", Reference{"docker.io", "library/alpine", "latest", ""}, "alpine:latest"},
		{"index.docker.io/library/alpine:edge", Reference{"docker.io", "library/alpine", "edge", ""}, "alpine:edge"},
		{"docker.io/library/a/b", Reference{"docker.io", "library/a/b", "latest", ""}, "library/a/b:latest"},
		{"user/app:1.2", Reference{"docker.io", "user/app", "1.2", ""}, "user/app:1.2"},
		{"ghcr.io/o/app", Reference{"ghcr.io", "o/app", "latest", ""}, "ghcr.io/o/app:latest"},
		{"localhost/app", Reference{"localhost", "app", "latest", ""}, "localhost/app:latest"},
		{"localhost:5000/a/b:t", Reference{"localhost:5000", "a/b", "t", ""}, "localhost:5000/a/b:t"},
		{"127.0.0.1:5000/x", Reference{"127.0.0.1:5000", "x", "latest", ""}, "127.0.0.1:5000/x:latest"},
		{"[::1]:5000/x:y", Reference{"[::1]:5000", "x", "y", ""}, "[::1]:5000/x:y"},
		{"[fe80::1]/x", Reference{"[fe80::1]", "x", "latest", ""}, "[fe80::1]/x:latest"},
		{"foo:5000/bar", Reference{"foo:5000", "bar", "latest", ""}, "foo:5000/bar:latest"},
		{"localhost:5000", Reference{"docker.io", "library/localhost", "5000", ""}, "localhost:5000"},
		{"Foo/bar", Reference{"Foo", "bar", "latest", ""}, "Foo/bar:latest"},
		{"app@sha256:" + hexA, Reference{"docker.io", "library/app", "", dg}, "app@sha256:" + hexA},
		{"app:1@sha256:" + hexA, Reference{"docker.io", "library/app", "1", dg}, "app:1@sha256:" + hexA},
		{"h.io/a_b/c__d/e---f/g.h:T_1.x-y", Reference{"h.io", "a_b/c__d/e---f/g.h", "T_1.x-y", ""}, "h.io/a_b/c__d/e---f/g.h:T_1.x-y"},
		{"x:" + strings.Repeat("a", 128), Reference{"docker.io", "library/x", strings.Repeat("a", 128), ""}, "x:" + strings.Repeat("a", 128)},
	}
	for _, c := range ok {
		got, err := ParseReference(c.in)
		if err != nil {
			t.Errorf("ParseReference(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParseReference(%q) = %#v, want %#v", c.in, got, c.want)
		}
		if f := got.Familiar(); f != c.familiar {
			t.Errorf("ParseReference(%q).Familiar() = %q, want %q", c.in, f, c.familiar)
		}
		again, err := ParseReference(got.String())
		if err != nil || again != got {
			t.Errorf("round trip of %q via %q: %#v, %v", c.in, got.String(), again, err)
		}
	}

	bad := []struct{ in, mention string }{
		{"", "empty"},
		{hexA, "image ID"},
		{"Foo", "lowercase"},
		{"foo/Bar", "lowercase"},
		{"-foo", `"-foo"`},
		{"foo-", `"foo-"`},
		{"foo//bar", "empty path component"},
		{"foo___bar", `"foo___bar"`},
		{"foo._bar", `"foo._bar"`},
		{"foo/bar:", "tag"},
		{"foo:.x", "tag"},
		{"foo:" + strings.Repeat("a", 129), "tag"},
		{"foo@sha256:abc", "digest"},
		{"foo@md5:" + hexA, "digest"},
		{"foo@sha256:" + strings.ToUpper(hexA), "digest"},
		{"foo.com:abc/bar", "port"},
		{"foo.com:/bar", "port"},
		{"-h.io/bar", "label"},
		{":tag", "empty"},
		{"@sha256:" + hexA, "empty"},
		{"h.io/", "empty"},
		{"foo:bar:baz", "foo:bar"},
		{"h.io/" + strings.Repeat("a", 260), "characters"},
		{"a b", `"a b"`},
	}
	for _, c := range bad {
		_, err := ParseReference(c.in)
		if err == nil {
			t.Errorf("ParseReference(%q): no error", c.in)
			continue
		}
		if !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("ParseReference(%q): %v does not wrap ErrInvalid", c.in, err)
		}
		if !strings.Contains(err.Error(), c.mention) {
			t.Errorf("ParseReference(%q): %q does not mention %q", c.in, err, c.mention)
		}
	}
}

func FuzzParseReference(f *testing.F) {
	for _, s := range []string{"alpine", "a/b:c", "h:5/x@sha256:" + hexA, "[::1]:5000/x", "Foo/bar", "localhost", "x:y:z", "a__b", "a@b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReference(s)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("%q: error %v is not ErrInvalid", s, err)
			}
			return
		}
		if r.Registry == "" || r.Repository == "" || (r.Tag == "" && r.Digest == "") {
			t.Fatalf("%q: incomplete %#v", s, r)
		}
		for _, form := range []string{r.String(), r.Familiar()} {
			again, err := ParseReference(form)
			if err != nil || again != r {
				t.Fatalf("%q -> %q -> %#v, %v; want %#v", s, form, again, err, r)
			}
		}
	})
}

func TestParseWWWAuthenticate(t *testing.T) {
	chs := ParseWWWAuthenticate(`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push" , error="insufficient_scope"`,
		`Basic realm="x\"y", charset=UTF-8`)
	if len(chs) != 2 {
		t.Fatalf("got %d challenges: %#v", len(chs), chs)
	}
	if chs[0].Scheme != "bearer" || chs[0].Params["realm"] != "https://auth.docker.io/token" ||
		chs[0].Params["service"] != "registry.docker.io" || chs[0].Params["scope"] != "repository:library/alpine:pull,push" ||
		chs[0].Params["error"] != "insufficient_scope" {
		t.Errorf("bearer: %#v", chs[0])
	}
	if chs[1].Scheme != "basic" || chs[1].Params["realm"] != `x"y` || chs[1].Params["charset"] != "UTF-8" {
		t.Errorf("basic: %#v", chs[1])
	}
	// Two challenges in one header value.
	chs = ParseWWWAuthenticate(`Basic realm="a", Bearer realm="b",service=s`)
	if len(chs) != 2 || chs[1].Scheme != "bearer" || chs[1].Params["realm"] != "b" || chs[1].Params["service"] != "s" {
		t.Errorf("combined: %#v", chs)
	}
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func FuzzWWWAuthenticate(f *testing.F) {
	f.Add("https://auth/token", "registry", "repository:a/b:pull", `Bearer realm="x",,=,"`)
	f.Add(`a"b\c`, "", "x y", "Basic abc==")
	f.Fuzz(func(t *testing.T, realm, service, scope, raw string) {
		ParseWWWAuthenticate(raw) // must not panic
		h := "Bearer realm=" + quote(realm) + ",service=" + quote(service) + ", scope=" + quote(scope)
		chs := ParseWWWAuthenticate(h)
		if len(chs) < 1 || chs[0].Scheme != "bearer" {
			t.Fatalf("%q: %#v", h, chs)
		}
		p := chs[0].Params
		if p["realm"] != realm || p["service"] != service || p["scope"] != scope {
			t.Fatalf("%q: got %#v", h, p)
		}
	})
}

func TestNextLink(t *testing.T) {
	cases := map[string]string{
		`</v2/x/tags/list?n=2&last=b>; rel="next"`:         "/v2/x/tags/list?n=2&last=b",
		`<http://h/a>; rel=prev, <http://h/b>; rel="next"`: "http://h/b",
		`<http://h/a>; rel="prev"`:                         "",
		``:                                                 "",
	}
	for in, want := range cases {
		if got := nextLink([]string{in}); got != want {
			t.Errorf("nextLink(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIsInsecure(t *testing.T) {
	c := &Client{Insecure: []string{"reg.lan:5000", "10.1.0.0/16", "plain.example"}}
	for host, want := range map[string]bool{
		"localhost": true, "localhost:5000": true, "127.0.0.1:1": true, "127.9.9.9": true, "[::1]:5000": true,
		"reg.lan:5000": true, "reg.lan:5001": false, "10.1.2.3:5000": true, "10.2.0.1": false,
		"plain.example:443": true, "docker.io": false, "registry-1.docker.io": false,
	} {
		if got := c.IsInsecure(host); got != want {
			t.Errorf("IsInsecure(%q) = %v, want %v", host, got, want)
		}
	}
}
