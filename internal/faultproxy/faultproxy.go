// Package faultproxy is an HTTP reverse proxy for tests that sits between a
// client and a real server (a registry) and injects faults by rule: error
// statuses for the first K requests, 429 with Retry-After, connection
// resets every N bytes of a body, stalls, truncated bodies, corrupted bytes,
// and ignored Range headers. It listens on 127.0.0.1 only and counts the
// requests it saw and the body bytes it sent.
package faultproxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Rule is one fault. A request matches when Method and Path match; the
// first matching rule that still has uses left applies (Times counts them),
// and a request no rule matches is forwarded untouched.
type Rule struct {
	// Method matches the request method; "" matches any.
	Method string
	// Path matches when the request path contains it; "" matches any.
	// "/blobs/" and "/manifests/" are the useful ones.
	Path string
	// Times is how many requests the rule applies to; 0 means all.
	Times int

	// Drop resets the connection (TCP RST) instead of answering: the
	// client sees a network error before any response.
	Drop bool

	// Status, when non-zero, answers the request with this status (and a
	// registry-style error body) instead of forwarding it.
	Status int
	// RetryAfter is sent as the Retry-After header with Status.
	RetryAfter string

	// ResetEvery resets the connection (TCP RST) after this many body
	// bytes of each matching response, once the client's kernel has
	// acknowledged them (on Linux; elsewhere in-flight bytes may be lost).
	ResetEvery int64
	// StallAfter bytes of the body, the proxy stops sending for Stall (or
	// until the client goes away). With StallAfter 0, it stalls before
	// sending the headers.
	StallAfter int64
	Stall      time.Duration
	// TruncateAt > 0 ends the body cleanly after this many bytes, with the
	// Content-Length rewritten to match, so the client sees a short but
	// well-formed response.
	TruncateAt int64
	// CorruptAt >= 1 flips the bits of the byte at offset CorruptAt-1 of
	// the body (so the zero Rule corrupts nothing).
	CorruptAt int64
	// IgnoreRange drops the request's Range header, as servers without
	// range support do.
	IgnoreRange bool
}

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	// URL is "http://127.0.0.1:port"; Host is "127.0.0.1:port".
	URL, Host string

	target    *url.URL
	transport *http.Transport
	srv       *httptest.Server

	mu    sync.Mutex
	rules []*ruleState

	requests      atomic.Int64
	bytesSent     atomic.Int64
	bytesReceived atomic.Int64
	faults        atomic.Int64
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type ruleState struct {
	Rule
	used int
}

// Start runs a proxy to target ("http://127.0.0.1:5000") for the duration
// of tb.
func Start(tb testing.TB, target string, rules ...Rule) *Proxy {
	tb.Helper()
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		tb.Fatalf("faultproxy: bad target %q: %v", target, err)
	}
	p := &Proxy{target: u, transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 32}}
	if u.Scheme == "https" {
		tb.Fatalf("faultproxy: https targets are not supported")
	}
	p.SetRules(rules...)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: p}}
	p.srv.Start()
	p.URL = p.srv.URL
	p.Host = strings.TrimPrefix(p.URL, "http://")
	tb.Cleanup(func() {
		p.srv.CloseClientConnections()
		p.srv.Close()
		p.transport.CloseIdleConnections()
	})
	return p
}

// SetRules replaces the rules (and their use counts).
func (p *Proxy) SetRules(rules ...Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
	for _, r := range rules {
		p.rules = append(p.rules, &ruleState{Rule: r})
	}
}

// Requests is the number of requests received.
func (p *Proxy) Requests() int64 { return p.requests.Load() }

// BytesSent is the number of response body bytes sent to clients.
func (p *Proxy) BytesSent() int64 { return p.bytesSent.Load() }

// BytesReceived is the number of request body bytes received from clients
// (uploads).
func (p *Proxy) BytesReceived() int64 { return p.bytesReceived.Load() }

// Faults is the number of requests a rule applied to.
func (p *Proxy) Faults() int64 { return p.faults.Load() }

// ResetCounters zeroes Requests, BytesSent and Faults.
func (p *Proxy) ResetCounters() {
	p.requests.Store(0)
	p.bytesSent.Store(0)
	p.bytesReceived.Store(0)
	p.faults.Store(0)
}

func (p *Proxy) match(r *http.Request) *Rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, rs := range p.rules {
		if rs.Method != "" && rs.Method != r.Method {
			continue
		}
		if rs.Path != "" && !strings.Contains(r.URL.Path, rs.Path) {
			continue
		}
		if rs.Times > 0 && rs.used >= rs.Times {
			continue
		}
		rs.used++
		rule := rs.Rule
		return &rule
	}
	return nil
}

var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	rule := p.match(r)
	if rule != nil {
		p.faults.Add(1)
	}
	if rule != nil && rule.Drop {
		if r.Body != nil {
			io.Copy(io.Discard, io.LimitReader(r.Body, 1<<30))
		}
		resetConn(w, false)
		return
	}
	if rule != nil && rule.Status != 0 {
		if rule.RetryAfter != "" {
			w.Header().Set("Retry-After", rule.RetryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rule.Status)
		fmt.Fprintf(w, `{"errors":[{"code":"UNAVAILABLE","message":"faultproxy: injected %d"}]}`, rule.Status)
		return
	}
	if rule != nil && rule.Stall > 0 && rule.StallAfter == 0 {
		if !sleep(r, rule.Stall) {
			return
		}
	}

	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = p.target.Scheme, p.target.Host
	out.Host = r.Host // the registry builds Location URLs from it: keep them on the proxy
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	if rule != nil && rule.IgnoreRange {
		out.Header.Del("Range")
	}
	if r.ContentLength == 0 {
		out.Body = nil
	} else {
		out.Body = countingBody{r.Body, &p.bytesReceived}
	}
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		http.Error(w, "faultproxy: upstream: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	for _, h := range hopHeaders {
		w.Header().Del(h)
	}
	limit := int64(-1)
	if rule != nil && rule.TruncateAt > 0 && resp.ContentLength > rule.TruncateAt {
		limit = rule.TruncateAt
		w.Header().Set("Content-Length", strconv.FormatInt(limit, 10))
	}
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead {
		return
	}
	body := io.Reader(resp.Body)
	if limit >= 0 {
		body = io.LimitReader(body, limit)
	}
	p.copyBody(w, r, body, rule)
}

// copyBody streams body to w, applying rule's per-byte faults.
func (p *Proxy) copyBody(w http.ResponseWriter, r *http.Request, body io.Reader, rule *Rule) {
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	var off int64
	stalled := false
	for {
		n, rerr := body.Read(buf)
		chunk := buf[:n]
		for len(chunk) > 0 {
			m := int64(len(chunk))
			if rule != nil && rule.ResetEvery > 0 {
				m = min(m, rule.ResetEvery-off%rule.ResetEvery)
			}
			if rule != nil && rule.Stall > 0 && rule.StallAfter > 0 && !stalled && off < rule.StallAfter {
				m = min(m, rule.StallAfter-off)
			}
			part := chunk[:m]
			if rule != nil && rule.CorruptAt >= 1 && rule.CorruptAt-1 >= off && rule.CorruptAt-1 < off+m {
				part = append([]byte(nil), part...)
				part[rule.CorruptAt-1-off] ^= 0xff
			}
			if _, err := w.Write(part); err != nil {
				return
			}
			p.bytesSent.Add(m)
			off += m
			chunk = chunk[m:]
			if rule != nil && rule.Stall > 0 && rule.StallAfter > 0 && !stalled && off == rule.StallAfter {
				stalled = true
				if flusher != nil {
					flusher.Flush()
				}
				if !sleep(r, rule.Stall) {
					return
				}
			}
			if rule != nil && rule.ResetEvery > 0 && off%rule.ResetEvery == 0 {
				resetConn(w, true)
				return
			}
		}
		if rerr != nil {
			return
		}
	}
}

// resetConn flushes what was written (if flush) and closes the connection
// with a TCP RST.
func resetConn(w http.ResponseWriter, flush bool) {
	if f, ok := w.(http.Flusher); ok && flush {
		f.Flush()
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, bufrw, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	bufrw.Flush()
	if tc, ok := conn.(*net.TCPConn); ok {
		// Wait (briefly) until the peer has acknowledged what was sent, so
		// the fault is "N bytes, then a reset", not "N bytes minus whatever
		// the kernel still had queued".
		deadline := time.Now().Add(time.Second)
		for unsent(tc) > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		tc.SetLinger(0)
	}
	conn.Close()
}

// sleep waits d or until the client goes away (false).
func sleep(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}
