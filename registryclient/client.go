package registryclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthrt/berth/errdefs"
)

// DefaultCertsDir is where Docker keeps per-registry TLS material.
const DefaultCertsDir = "/etc/docker/certs.d"

// Client talks to OCI/Docker registries. The zero Client is ready to use:
// anonymous, system TLS roots plus /etc/docker/certs.d, plain HTTP allowed
// for loopback registries only, five attempts per request. Fields must not
// change once calls have started; CertsDir, Insecure and StallTimeout shape
// the transport built for a host at its first use. A Client is
// safe for concurrent use; it caches per-host state (scheme, challenges,
// tokens, transports), so reuse one.
type Client struct {
	// Transport sends the requests. Zero: a clone of http.DefaultTransport
	// per registry host, with TLS set up from CertsDir and Insecure. A
	// caller-supplied Transport is used as is: CertsDir and the TLS part
	// of Insecure do not apply to it.
	Transport http.RoundTripper

	// Credentials gives the credential for a host. Zero: anonymous. Use
	// DockerConfig{} for the docker CLI's credentials.
	Credentials Credentials

	// Insecure lists registries ("host", "host:port", or a CIDR such as
	// "10.0.0.0/8") that may be reached over plain HTTP, or over HTTPS
	// without certificate verification, as Docker's insecure-registries.
	// localhost, 127.0.0.0/8 and ::1 are always insecure. For these hosts
	// HTTPS is tried first, then plain HTTP.
	Insecure []string

	// CertsDir holds per-registry TLS material as Docker reads it:
	// <CertsDir>/<host[:port]>/*.crt are extra CA roots, *.cert + *.key are
	// client certificate pairs. Zero: DefaultCertsDir.
	CertsDir string

	// Mirrors maps a registry ("docker.io") to mirrors tried in order
	// before it, for reads only ("https://mirror.example", "host:5000",
	// "http://10.0.0.1:5000"). Any failure of a mirror, including "not
	// found", falls through to the next and finally to the registry.
	Mirrors map[string][]string

	// UserAgent is sent with every request. Zero: "berth-registryclient".
	UserAgent string

	// Retry bounds retries of failed requests. Zero: see RetryPolicy.
	Retry RetryPolicy

	// StallTimeout aborts (and retries) a request whose response headers,
	// or the next bytes of whose body, do not arrive in time. Zero: 60 s;
	// negative: no limit (ctx still applies).
	StallTimeout time.Duration

	// MaxManifestSize refuses larger manifests. Zero: 4 MiB.
	MaxManifestSize int64

	// ChunkedUploads makes blob pushes send UploadChunkSize PATCH requests
	// instead of one PUT. Zero: monolithic uploads.
	ChunkedUploads bool

	// Logger receives debug messages about retries and fallbacks. Zero: silent.
	Logger *slog.Logger

	auths      sync.Map // host -> *authState
	schemes    sync.Map // host -> "https" | "http"
	transports sync.Map // host -> http.RoundTripper
}

// RetryPolicy says how often and how patiently a request is repeated after
// a network error, a timeout, or a 408, 429 or 5xx answer. The delay
// doubles from MinDelay up to MaxDelay, with jitter; a Retry-After header
// replaces it (up to MaxRetryAfter). A wait that would outlast the
// context's deadline is not started: the call fails at once. A blob download that made progress since
// its last failure does not count that failure.
type RetryPolicy struct {
	// Attempts is the number of tries per request. Zero: 5; 1: no retries.
	Attempts int
	// MinDelay is the first wait. Zero: 100 ms.
	MinDelay time.Duration
	// MaxDelay caps a wait. Zero: 5 s.
	MaxDelay time.Duration
	// MaxRetryAfter caps the wait a server asks for with Retry-After.
	// Zero: 1 minute.
	MaxRetryAfter time.Duration
}

func (p RetryPolicy) maxRetryAfter() time.Duration {
	if p.MaxRetryAfter <= 0 {
		return time.Minute
	}
	return p.MaxRetryAfter
}

func (p RetryPolicy) attempts() int {
	if p.Attempts <= 0 {
		return 5
	}
	return p.Attempts
}

func (p RetryPolicy) maxDelay() time.Duration {
	if p.MaxDelay <= 0 {
		return 5 * time.Second
	}
	return p.MaxDelay
}

// delay is the wait before retry n (n >= 1).
func (p RetryPolicy) delay(n int) time.Duration {
	d := p.MinDelay
	if d <= 0 {
		d = 100 * time.Millisecond
	}
	for i := 1; i < n && d < p.maxDelay(); i++ {
		d *= 2
	}
	d = min(d, p.maxDelay())
	// Full jitter in [d/2, d].
	return d/2 + rand.N(d/2+1)
}

func (c *Client) userAgent() string {
	if c.UserAgent != "" {
		return c.UserAgent
	}
	return "berth-registryclient"
}

func (c *Client) setUA(r *http.Request) { r.Header.Set("User-Agent", c.userAgent()) }

func (c *Client) stallTimeout() time.Duration {
	switch {
	case c.StallTimeout < 0:
		return 0
	case c.StallTimeout == 0:
		return 60 * time.Second
	}
	return c.StallTimeout
}

func (c *Client) log() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// endpoint is one server to send a repository's requests to: the registry
// itself or one of its mirrors.
type endpoint struct {
	host     string // as used in URLs: "registry-1.docker.io", "127.0.0.1:5000"
	credHost string // for Credentials: "docker.io" for Docker Hub
	scheme   string // "https" or "http"
	mirror   bool
}

func (ep *endpoint) url(path string) string { return ep.scheme + "://" + ep.host + path }

// IsInsecure reports whether host may be reached over plain HTTP: loopback
// addresses, localhost, and the hosts and networks listed in Insecure.
func (c *Client) IsInsecure(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	if ip != nil && ip.IsLoopback() {
		return true
	}
	for _, e := range c.Insecure {
		e = strings.TrimPrefix(strings.TrimPrefix(e, "http://"), "https://")
		if e == host || e == h {
			return true
		}
		if _, n, err := net.ParseCIDR(e); err == nil && ip != nil && n.Contains(ip) {
			return true
		}
	}
	return false
}

// endpoints lists where to send a read (pull) for registry: its mirrors,
// then the registry itself. The scheme of each is settled (a probe for
// insecure hosts).
func (c *Client) endpoints(ctx context.Context, registry string) ([]*endpoint, error) {
	var eps []*endpoint
	for _, m := range c.Mirrors[registry] {
		scheme := ""
		if rest, ok := strings.CutPrefix(m, "http://"); ok {
			scheme, m = "http", rest
		} else if rest, ok := strings.CutPrefix(m, "https://"); ok {
			scheme, m = "https", rest
		}
		m = strings.TrimRight(m, "/")
		if i := strings.IndexByte(m, '/'); i >= 0 {
			m = m[:i]
		}
		ep := &endpoint{host: m, credHost: m, scheme: scheme, mirror: true}
		if err := c.settleScheme(ctx, ep); err != nil {
			c.log().Debug("registry mirror unreachable", "mirror", m, "err", err)
			continue
		}
		eps = append(eps, ep)
	}
	ep, err := c.registryEndpoint(ctx, registry)
	if err != nil {
		if len(eps) > 0 {
			c.log().Debug("registry unreachable; mirrors only", "registry", registry, "err", err)
			return eps, nil
		}
		return nil, err
	}
	return append(eps, ep), nil
}

// registryEndpoint is registry's own endpoint, with its scheme settled:
// where writes, logins and catalogs go (never to a mirror).
func (c *Client) registryEndpoint(ctx context.Context, registry string) (*endpoint, error) {
	host := registry
	if registry == DockerHub || registry == "index.docker.io" {
		host = DockerHubEndpoint
	}
	ep := &endpoint{host: host, credHost: registry}
	if err := c.settleScheme(ctx, ep); err != nil {
		return nil, err
	}
	return ep, nil
}

// settleScheme picks https, or for insecure hosts whichever of https and
// http answers /v2/ (https first, like Docker), and remembers the choice.
func (c *Client) settleScheme(ctx context.Context, ep *endpoint) error {
	if ep.scheme == "http" {
		return nil
	}
	if !c.IsInsecure(ep.host) {
		ep.scheme = "https"
		return nil
	}
	if v, ok := c.schemes.Load(ep.host); ok {
		ep.scheme = v.(string)
		return nil
	}
	tr := c.transportFor(ep.host)
	var firstErr error
	for _, scheme := range []string{"https", "http"} {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		req, err := http.NewRequestWithContext(pctx, http.MethodGet, scheme+"://"+ep.host+"/v2/", nil)
		if err != nil {
			cancel()
			return fmt.Errorf("registry %s: %v: %w", ep.host, err, errdefs.ErrInvalid)
		}
		c.setUA(req)
		resp, err := tr.RoundTrip(req)
		if err == nil && scheme == "http" && firstErr != nil && resp.StatusCode == http.StatusBadRequest {
			// A TLS server telling a plain-HTTP client off: the HTTPS
			// error is the real one.
			drain(resp)
			cancel()
			break
		}
		if err == nil {
			if resp.StatusCode == http.StatusUnauthorized {
				c.authFor(ep.host).learn(resp.Header)
			}
			drain(resp)
			cancel()
			ep.scheme = scheme
			c.schemes.Store(ep.host, scheme)
			return nil
		}
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return fmt.Errorf("registry %s answers neither https nor http: %w: %w", ep.host, firstErr, errdefs.ErrUnavailable)
}

// transportFor returns the RoundTripper for host (and builds its TLS
// configuration from CertsDir the first time).
func (c *Client) transportFor(host string) http.RoundTripper {
	if c.Transport != nil {
		return c.Transport
	}
	if v, ok := c.transports.Load(host); ok {
		return v.(http.RoundTripper)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	cfg, err := c.TLSConfig(host)
	if err != nil {
		c.log().Warn("registry TLS configuration", "host", host, "err", err)
	}
	t.TLSClientConfig = cfg
	t.MaxIdleConnsPerHost = 16
	if st := c.stallTimeout(); st > 0 {
		t.ResponseHeaderTimeout = st
	}
	v, _ := c.transports.LoadOrStore(host, http.RoundTripper(t))
	return v.(http.RoundTripper)
}

// TLSConfig is the TLS client configuration the zero Transport uses for
// host: system roots plus <CertsDir>/<host>/*.crt, client certificates from
// *.cert/*.key pairs there, and no verification for insecure hosts. An
// error reading the directory is returned with the best configuration
// that could be built.
func (c *Client) TLSConfig(host string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.IsInsecure(host) {
		cfg.InsecureSkipVerify = true
	}
	dir := c.CertsDir
	if dir == "" {
		dir = DefaultCertsDir
	}
	entries, err := os.ReadDir(filepath.Join(dir, host))
	if errors.Is(err, os.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return cfg, err
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		p := filepath.Join(dir, host, name)
		switch {
		case strings.HasSuffix(name, ".crt"):
			pem, err := os.ReadFile(p)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if cfg.RootCAs == nil {
				if cfg.RootCAs, err = x509.SystemCertPool(); err != nil || cfg.RootCAs == nil {
					cfg.RootCAs = x509.NewCertPool()
				}
			}
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				errs = append(errs, fmt.Errorf("%s: no PEM certificate", p))
			}
		case strings.HasSuffix(name, ".cert"):
			keyPath := strings.TrimSuffix(p, ".cert") + ".key"
			pair, err := tls.LoadX509KeyPair(p, keyPath)
			if err != nil {
				errs = append(errs, fmt.Errorf("client certificate %s: %w", p, err))
				continue
			}
			cfg.Certificates = append(cfg.Certificates, pair)
		}
	}
	return cfg, errors.Join(errs...)
}

// request describes one registry API call, re-buildable for retries.
type request struct {
	method string
	path   string // "/v2/..." on the endpoint, or
	rawURL string // an absolute URL (upload locations)
	query  url.Values
	header http.Header
	// body opens the request body afresh for each attempt; nil: none.
	body          func() (io.ReadCloser, error)
	contentLength int64
	scopes        []string
	// noRetry: a failure after the body was sent cannot be retried (the
	// body cannot be re-opened).
	noRetry bool
	// noAuth: the URL is on another host (an upload location elsewhere);
	// do not send the registry's credentials there.
	noAuth bool
}

// url is where r goes on ep, with r.query merged into the URL's own.
func (r *request) url(ep *endpoint) (string, error) {
	u := r.rawURL
	if u == "" {
		u = ep.url(r.path)
	}
	if len(r.query) == 0 {
		return u, nil
	}
	pu, err := url.Parse(u)
	if err != nil {
		return "", fmt.Errorf("bad URL %q: %w", u, errdefs.ErrInvalid)
	}
	q := pu.Query()
	for k, v := range r.query {
		q[k] = v
	}
	pu.RawQuery = q.Encode()
	return pu.String(), nil
}

// send performs r against ep: it answers auth challenges, retries
// temporary failures per c.Retry, and returns the final response, whatever
// its status, for the caller to check. Errors: ctx's, or one wrapping
// errdefs.ErrUnavailable when retries ran out on network errors.
func (c *Client) send(ctx context.Context, ep *endpoint, r *request) (*http.Response, error) {
	tr := c.transportFor(ep.host)
	authRetried := false
	attempts := c.Retry.attempts()
	if r.noRetry {
		attempts = 1
	}
	u, err := r.url(ep)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 1; ; attempt++ {
		var body io.ReadCloser
		if r.body != nil {
			b, err := r.body()
			if err != nil {
				return nil, err
			}
			body = b
		}
		req, err := http.NewRequestWithContext(ctx, r.method, u, body)
		if err != nil {
			if body != nil {
				body.Close()
			}
			return nil, fmt.Errorf("bad request %s %s: %v: %w", r.method, redactURL(u), err, errdefs.ErrInvalid)
		}
		if r.body != nil {
			req.ContentLength = r.contentLength
			req.GetBody = nil
		}
		for k, v := range r.header {
			req.Header[k] = v
		}
		c.setUA(req)
		if !r.noAuth {
			if err := c.authorize(ctx, ep, req, r.scopes); err != nil {
				if body != nil {
					body.Close()
				}
				return nil, err
			}
		}
		resp, err := (&http.Client{Transport: tr}).Do(req)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if !retryableNetError(err) {
				return nil, err
			}
			lastErr = err
		case resp.StatusCode == http.StatusUnauthorized && !authRetried:
			a := c.authFor(ep.host)
			theirs, ok := a.learn(resp.Header)
			drain(resp)
			if !ok {
				return resp, nil // nothing we can answer; caller reports the 401
			}
			a.forget(r.scopes)
			r.scopes = mergeScopes(r.scopes, theirs)
			authRetried = true
			attempt-- // an auth round trip is not a failed attempt
			continue
		case retryableStatus(resp.StatusCode):
			wait = retryAfter(resp.Header.Get("Retry-After"), c.Retry.maxRetryAfter())
			lastErr = newError(resp)
		default:
			return resp, nil
		}
		if attempt >= attempts {
			var re *Error
			if errors.As(lastErr, &re) {
				return nil, fmt.Errorf("giving up after %d attempts: %w", attempt, lastErr)
			}
			return nil, fmt.Errorf("%s %s: giving up after %d attempts: %w: %w", r.method, redactURL(u), attempt, lastErr, errdefs.ErrUnavailable)
		}
		if wait == 0 {
			wait = c.Retry.delay(attempt)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return nil, fmt.Errorf("%s %s: not waiting %v to retry past the deadline: %w: %w", r.method, redactURL(u), wait, lastErr, errdefs.ErrUnavailable)
		}
		c.log().Debug("registry request failed; retrying", "method", r.method, "url", redactURL(u), "attempt", attempt, "wait", wait, "err", lastErr)
		if err := sleepCtx(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// sendSimple sends one re-buildable request with retries but no registry
// auth (token endpoints, pings).
func (c *Client) sendSimple(ctx context.Context, tr http.RoundTripper, build func() (*http.Request, error)) (*http.Response, error) {
	var lastErr error
	for attempt := 1; ; attempt++ {
		req, err := build()
		if err != nil {
			return nil, err
		}
		if req.Header.Get("User-Agent") == "" {
			c.setUA(req)
		}
		resp, err := (&http.Client{Transport: tr}).Do(req)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if !retryableNetError(err) {
				return nil, err
			}
			lastErr = err
		case retryableStatus(resp.StatusCode):
			wait = retryAfter(resp.Header.Get("Retry-After"), c.Retry.maxRetryAfter())
			lastErr = newError(resp)
		default:
			return resp, nil
		}
		if attempt >= c.Retry.attempts() {
			return nil, fmt.Errorf("giving up after %d attempts: %w: %w", attempt, lastErr, errdefs.ErrUnavailable)
		}
		if wait == 0 {
			wait = c.Retry.delay(attempt)
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return nil, err
		}
	}
}

func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retryAfter reads a Retry-After header (seconds or an HTTP date); 0 when
// absent or unreadable. It is capped at limit.
func retryAfter(h string, limit time.Duration) time.Duration {
	if h == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = time.Until(t)
	}
	if d < 0 {
		return 0
	}
	return min(d, limit)
}

// retryableNetError reports whether a transport error may pass: resets,
// timeouts, refused connections, early EOFs. Certificate problems and
// protocol mismatches do not.
func retryableNetError(err error) bool {
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var recordErr tls.RecordHeaderError
	switch {
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr),
		errors.As(err, &invalid), errors.As(err, &recordErr):
		return false
	case errors.Is(err, context.Canceled):
		return false
	}
	var ue *url.Error
	if errors.As(err, &ue) && strings.Contains(ue.Err.Error(), "server gave HTTP response to HTTPS client") {
		return false
	}
	return true
}

// errTransfer marks a response body that broke off (reset, early EOF):
// the whole request may be repeated.
var errTransfer = errors.New("transfer interrupted")

// retryTransfer repeats fn, which sends a request and reads its (small)
// body, when the body broke off, per c.Retry.
func (c *Client) retryTransfer(ctx context.Context, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || !errors.Is(err, errTransfer) || attempt >= c.Retry.attempts() || ctx.Err() != nil {
			return err
		}
		c.log().Debug("response body broke off; repeating the request", "attempt", attempt, "err", err)
		if err := sleepCtx(ctx, c.Retry.delay(attempt)); err != nil {
			return err
		}
	}
}
