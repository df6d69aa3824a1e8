package registryclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berthrt/berth/errdefs"
)

// Challenge is one authentication challenge of a WWW-Authenticate header:
// a scheme ("bearer", "basic", lower-cased) and its parameters (keys
// lower-cased: "realm", "service", "scope", "error").
type Challenge struct {
	Scheme string
	Params map[string]string
}

// ParseWWWAuthenticate reads the challenges of one or more
// WWW-Authenticate header values (RFC 7235: a scheme, then comma-separated
// name=value or name="quoted value" parameters; several challenges may share
// one header). It never fails: malformed parts are skipped.
func ParseWWWAuthenticate(values ...string) []Challenge {
	var out []Challenge
	for _, s := range values {
		var cur *Challenge
		i := 0
		for i < len(s) {
			for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == ',') {
				i++
			}
			start := i
			for i < len(s) && isTokenChar(s[i]) {
				i++
			}
			tok := s[start:i]
			if tok == "" {
				if i < len(s) {
					i++ // skip a character that cannot start anything
				}
				continue
			}
			j := i
			for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
				j++
			}
			if j < len(s) && s[j] == '=' && cur != nil {
				// name=value
				i = j + 1
				for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
					i++
				}
				var val string
				if i < len(s) && s[i] == '"' {
					i++
					var b strings.Builder
					for i < len(s) && s[i] != '"' {
						if s[i] == '\\' && i+1 < len(s) {
							i++
						}
						b.WriteByte(s[i])
						i++
					}
					i++ // closing quote (or past the end)
					val = b.String()
				} else {
					vs := i
					for i < len(s) && isTokenChar(s[i]) || (i < len(s) && s[i] == '=' && i > vs) {
						i++
					}
					val = s[vs:i]
				}
				cur.Params[strings.ToLower(tok)] = val
				continue
			}
			if j < len(s) && s[j] == '=' {
				// token68 or junk before any scheme: skip to the next comma.
				for i < len(s) && s[i] != ',' {
					i++
				}
				continue
			}
			out = append(out, Challenge{Scheme: strings.ToLower(tok), Params: map[string]string{}})
			cur = &out[len(out)-1]
			// A token68 credential directly after the scheme ("Basic abc==") is skipped.
		}
	}
	return out
}

func isTokenChar(c byte) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~/:", c) >= 0
}

// authState is what the client knows about one host's authentication: the
// challenge it answered with, and the bearer tokens fetched so far, by scope.
type authState struct {
	mu       sync.Mutex
	scheme   string // "", "basic" or "bearer"
	realm    string
	service  string
	tokens   map[string]cachedToken
	inflight map[string]*tokenFlight // fetches under way, by scope key
	cred     *Credential             // looked up once; dropped on a 401
}

// tokenFlight lets concurrent requests for the same scopes share one fetch.
type tokenFlight struct {
	done chan struct{}
	tok  string
	err  error
}

type cachedToken struct {
	token   string
	expires time.Time
}

func (c *Client) authFor(host string) *authState {
	v, _ := c.auths.LoadOrStore(host, &authState{tokens: map[string]cachedToken{}, inflight: map[string]*tokenFlight{}})
	return v.(*authState)
}

// learn records the challenges of a 401 response. It reports whether the
// host asked for something the client can answer.
func (a *authState) learn(h http.Header) (scopes []string, ok bool) {
	chs := ParseWWWAuthenticate(h.Values("WWW-Authenticate")...)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cred = nil // look the credential up again: it may have changed
	for _, ch := range chs {
		if ch.Scheme == "bearer" && ch.Params["realm"] != "" {
			a.scheme, a.realm, a.service = "bearer", ch.Params["realm"], ch.Params["service"]
			if s := ch.Params["scope"]; s != "" {
				scopes = strings.Fields(s)
			}
			return scopes, true
		}
	}
	for _, ch := range chs {
		if ch.Scheme == "basic" {
			a.scheme = "basic"
			return nil, true
		}
	}
	return nil, false
}

// forget drops a cached token that the registry refused.
func (a *authState) forget(scopes []string) {
	a.mu.Lock()
	delete(a.tokens, scopeKey(scopes))
	a.mu.Unlock()
}

func scopeKey(scopes []string) string {
	s := slices.Clone(scopes)
	slices.Sort(s)
	return strings.Join(slices.Compact(s), " ")
}

// mergeScopes adds the scopes a challenge asked for to ours.
func mergeScopes(ours, theirs []string) []string {
	out := slices.Clone(ours)
	for _, s := range theirs {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// authorize sets req's Authorization header for the host's known scheme,
// fetching a bearer token for scopes when none is cached.
func (c *Client) authorize(ctx context.Context, ep *endpoint, req *http.Request, scopes []string) error {
	a := c.authFor(ep.host)
	a.mu.Lock()
	scheme := a.scheme
	a.mu.Unlock()
	switch scheme {
	case "basic":
		cred, err := c.hostCredential(ctx, ep, a)
		if err != nil {
			return err
		}
		if cred.Username != "" || cred.Password != "" {
			req.SetBasicAuth(cred.Username, cred.Password)
		}
	case "bearer":
		tok, err := c.token(ctx, ep, a, scopes, Credential{}, false)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return nil
}

// hostCredential is the credential for ep, looked up once per host (and
// again after a 401), so that credential helpers do not run per request.
func (c *Client) hostCredential(ctx context.Context, ep *endpoint, a *authState) (Credential, error) {
	a.mu.Lock()
	if a.cred != nil {
		cred := *a.cred
		a.mu.Unlock()
		return cred, nil
	}
	a.mu.Unlock()
	cred, err := c.credential(ctx, ep.credHost)
	if err != nil {
		return Credential{}, err
	}
	a.mu.Lock()
	a.cred = &cred
	a.mu.Unlock()
	return cred, nil
}

func (c *Client) credential(ctx context.Context, host string) (Credential, error) {
	if c.Credentials == nil {
		return Credential{}, nil
	}
	cred, err := c.Credentials.Get(ctx, host)
	if err != nil {
		return Credential{}, fmt.Errorf("credentials for %s: %w", host, err)
	}
	return cred, nil
}

// token returns a cached bearer token for scopes, or fetches one (once,
// however many requests wait for it). With useCred (Login) it fetches with
// cred, bypassing the cache.
func (c *Client) token(ctx context.Context, ep *endpoint, a *authState, scopes []string, cred Credential, useCred bool) (string, error) {
	key := scopeKey(scopes)
	a.mu.Lock()
	realm, service := a.realm, a.service
	if useCred {
		a.mu.Unlock()
		tok, _, err := c.fetchToken(ctx, ep, realm, service, key, cred)
		return tok, err
	}
	if t, ok := a.tokens[key]; ok && time.Now().Before(t.expires) {
		a.mu.Unlock()
		return t.token, nil
	}
	if f := a.inflight[key]; f != nil {
		a.mu.Unlock()
		select {
		case <-f.done:
			if f.err != nil && ctx.Err() == nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) {
				// The fetch died with its caller's context, not ours: try again.
				return c.token(ctx, ep, a, scopes, cred, useCred)
			}
			return f.tok, f.err
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	f := &tokenFlight{done: make(chan struct{})}
	a.inflight[key] = f
	a.mu.Unlock()

	var expires time.Time
	cred, f.err = c.hostCredential(ctx, ep, a)
	if f.err == nil {
		f.tok, expires, f.err = c.fetchToken(ctx, ep, realm, service, key, cred)
	}
	a.mu.Lock()
	delete(a.inflight, key)
	if f.err == nil {
		a.tokens[key] = cachedToken{token: f.tok, expires: expires}
	}
	a.mu.Unlock()
	close(f.done)
	return f.tok, f.err
}

// fetchToken asks the realm for a token for the scopes in key: with the
// OAuth2 refresh_token grant (POST) when cred has an identity token, else
// with GET, sending basic auth when there is a user name.
func (c *Client) fetchToken(ctx context.Context, ep *endpoint, realmURL, service, key string, cred Credential) (string, time.Time, error) {
	realm, err := url.Parse(realmURL)
	if err != nil || (realm.Scheme != "https" && realm.Scheme != "http") {
		return "", time.Time{}, fmt.Errorf("token realm %q of %s is not an http(s) URL: %w", realmURL, ep.host, errdefs.ErrInvalid)
	}
	q := url.Values{}
	if service != "" {
		q.Set("service", service)
	}
	for _, s := range strings.Fields(key) {
		q.Add("scope", s)
	}
	var resp *http.Response
	tr := c.transportFor(realm.Host)
	if cred.IdentityToken != "" {
		q.Set("grant_type", "refresh_token")
		q.Set("refresh_token", cred.IdentityToken)
		q.Set("client_id", c.userAgent())
		body := q.Encode()
		resp, err = c.sendSimple(ctx, tr, func() (*http.Request, error) {
			r, err := http.NewRequestWithContext(ctx, http.MethodPost, realm.String(), strings.NewReader(body))
			if err == nil {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			return r, err
		})
	} else {
		u := *realm
		rq := u.Query()
		for k, v := range q {
			rq[k] = v
		}
		if cred.Username != "" {
			rq.Set("account", cred.Username)
		}
		u.RawQuery = rq.Encode()
		resp, err = c.sendSimple(ctx, tr, func() (*http.Request, error) {
			r, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
			if err == nil && (cred.Username != "" || cred.Password != "") {
				r.SetBasicAuth(cred.Username, cred.Password)
			}
			return r, err
		})
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("fetch token for %s from %s: %w", ep.host, redactURL(realmURL), err)
	}
	if resp.StatusCode != http.StatusOK {
		e := newError(resp)
		if e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden {
			return "", time.Time{}, fmt.Errorf("fetch token for %s (scope %q): %w: %w", ep.host, key, e, errdefs.ErrUnauthorized)
		}
		return "", time.Time{}, fmt.Errorf("fetch token for %s (scope %q): %w", ep.host, key, e)
	}
	defer resp.Body.Close()
	var tr2 struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		IssuedAt    string `json:"issued_at"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tr2); err != nil {
		return "", time.Time{}, fmt.Errorf("token response from %s: %v: %w", redactURL(realmURL), err, errdefs.ErrInvalid)
	}
	tok := tr2.AccessToken
	if tok == "" {
		tok = tr2.Token
	}
	if tok == "" {
		return "", time.Time{}, fmt.Errorf("token response from %s has no token: %w", redactURL(realmURL), errdefs.ErrInvalid)
	}
	// The spec's default lifetime is 60 s; keep a margin for clock skew
	// and for requests in flight.
	life := time.Duration(tr2.ExpiresIn) * time.Second
	if life < 60*time.Second {
		life = 60 * time.Second
	}
	issued := time.Now()
	if at, err := time.Parse(time.RFC3339, tr2.IssuedAt); err == nil && at.Before(issued) && issued.Sub(at) < life {
		issued = at
	}
	return tok, issued.Add(life - life/10), nil
}

// Login checks cred against host ("docker.io", "127.0.0.1:5000", ...): it
// answers the registry's /v2/ challenge with it, and returns nil when the
// registry accepts it (or asks for none). A refused credential gives an
// error wrapping errdefs.ErrUnauthorized. Login stores nothing.
//
// host may also be given as docker login takes it
// ("https://index.docker.io/v1/").
func (c *Client) Login(ctx context.Context, host string, cred Credential) error {
	host = normalizeKey(host)
	ep, err := c.registryEndpoint(ctx, host)
	if err != nil {
		return fmt.Errorf("login to %s: %w", host, err)
	}
	tr := c.transportFor(ep.host)
	ping := func(auth string) (*http.Response, error) {
		return c.sendSimple(ctx, tr, func() (*http.Request, error) {
			r, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.url("/v2/"), nil)
			if err == nil {
				c.setUA(r)
				if auth != "" {
					r.Header.Set("Authorization", auth)
				}
			}
			return r, err
		})
	}
	resp, err := ping("")
	if err != nil {
		return fmt.Errorf("login to %s: %w", host, err)
	}
	if resp.StatusCode == http.StatusOK {
		resp.Body.Close()
		return nil
	}
	if resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("login to %s: %w", host, newError(resp))
	}
	resp.Body.Close()
	a := c.authFor(ep.host)
	if _, ok := a.learn(resp.Header); !ok {
		return fmt.Errorf("login to %s: registry asks for an unknown authentication scheme %q: %w", host, resp.Header.Get("WWW-Authenticate"), errdefs.ErrUnsupported)
	}
	a.mu.Lock()
	scheme := a.scheme
	a.mu.Unlock()
	var auth string
	if scheme == "basic" {
		auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(cred.Username+":"+cred.Password))
	} else {
		tok, err := c.token(ctx, ep, a, nil, cred, true)
		if err != nil {
			return fmt.Errorf("login to %s: %w", host, err)
		}
		auth = "Bearer " + tok
	}
	resp, err = ping(auth)
	if err != nil {
		return fmt.Errorf("login to %s: %w", host, err)
	}
	if resp.StatusCode != http.StatusOK {
		e := newError(resp)
		if e.StatusCode == http.StatusUnauthorized {
			return fmt.Errorf("login to %s as %q: %w", host, cred.Username, e)
		}
		return fmt.Errorf("login to %s: %w", host, e)
	}
	resp.Body.Close()
	return nil
}
