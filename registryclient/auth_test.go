package registryclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/berthrt/berth/errdefs"
)

// fakeBearer is a registry and token server in one: tokens are "tok-N",
// only the newest is accepted, and each names the scopes it grants.
type fakeBearer struct {
	mu       sync.Mutex
	n        int
	valid    string
	granted  string
	scopes   []string // scope params of token requests, in order
	posts    int
	srv      *httptest.Server
	needPush bool
}

func newFakeBearer(t *testing.T) *fakeBearer {
	f := &fakeBearer{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if r.URL.Path == "/token" {
			r.ParseForm()
			if r.Method == http.MethodPost {
				f.posts++
				if r.PostForm.Get("refresh_token") != "refresh-me" || r.PostForm.Get("grant_type") != "refresh_token" {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
			} else if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "p" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			if r.Form.Get("service") != "fake" {
				http.Error(w, "service", http.StatusBadRequest)
				return
			}
			f.n++
			f.valid = fmt.Sprintf("tok-%d", f.n)
			f.granted = strings.Join(r.Form["scope"], " ")
			f.scopes = append(f.scopes, f.granted)
			fmt.Fprintf(w, `{"access_token":%q,"expires_in":300,"issued_at":"2020-01-01T00:00:00Z"}`, f.valid)
			return
		}
		challenge := func(scope string) {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="fake",scope="%s"`, f.srv.URL, scope))
			w.WriteHeader(http.StatusUnauthorized)
		}
		want := "repository:x/y:pull"
		if f.needPush {
			want = "repository:x/y:pull,push"
		}
		if r.Header.Get("Authorization") != "Bearer "+f.valid || f.valid == "" {
			challenge(want)
			return
		}
		if r.URL.Path == "/v2/" {
			return // any valid token will do
		}
		if !strings.Contains(f.granted, want) {
			challenge(want) // insufficient scope
			return
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Docker-Content-Digest", "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a")
		w.Header().Set("Content-Length", "2")
		if r.Method == http.MethodGet {
			w.Write([]byte("{}"))
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeBearer) host() string { return strings.TrimPrefix(f.srv.URL, "http://") }

func TestBearerTokenRotationAndScopes(t *testing.T) {
	f := newFakeBearer(t)
	ctx := context.Background()
	ref, _ := ParseReference(f.host() + "/x/y:1")
	c := &Client{Credentials: StaticCredentials{f.host(): {Username: "u", Password: "p"}}}
	if _, err := c.Resolve(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Resolve(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if f.n != 1 {
		t.Errorf("%d tokens fetched for two requests, want 1 (cached)", f.n)
	}
	// The registry stops accepting the token (revoked, rotated): the
	// client fetches a new one and repeats the request.
	f.mu.Lock()
	f.valid = "revoked"
	f.mu.Unlock()
	if _, err := c.Resolve(ctx, ref); err != nil {
		t.Fatalf("after revocation: %v", err)
	}
	if f.n != 2 {
		t.Errorf("%d tokens after revocation, want 2", f.n)
	}
	// The registry asks for more scope than the client asked for: the
	// challenge's scope is added.
	f.mu.Lock()
	f.needPush = true
	f.mu.Unlock()
	if _, err := c.Resolve(ctx, ref); err != nil {
		t.Fatalf("insufficient scope: %v", err)
	}
	if last := f.scopes[len(f.scopes)-1]; !strings.Contains(last, "repository:x/y:pull,push") {
		t.Errorf("last token request asked for %q", last)
	}
	// Identity tokens use the OAuth2 refresh_token grant.
	f.mu.Lock()
	f.needPush = false
	f.mu.Unlock()
	ic := &Client{Credentials: StaticCredentials{f.host(): {IdentityToken: "refresh-me"}}}
	if _, err := ic.Resolve(ctx, ref); err != nil || f.posts != 1 {
		t.Errorf("identity token: %v, %d POSTs", err, f.posts)
	}
	// Login without a scope.
	if err := c.Login(ctx, f.host(), Credential{Username: "u", Password: "p"}); err != nil {
		t.Errorf("Login: %v", err)
	}
	if err := c.Login(ctx, f.host(), Credential{Username: "u", Password: "wrong"}); !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Errorf("Login with a wrong password: %v", err)
	}
}
