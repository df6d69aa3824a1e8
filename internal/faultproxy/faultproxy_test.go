package faultproxy

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func origin(t *testing.T, body []byte) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, []byte, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestRules(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	p := Start(t, origin(t, body))

	p.SetRules(Rule{Status: 503, RetryAfter: "2", Times: 1})
	resp, _, err := get(t, p.URL+"/blob")
	if err != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("status rule: %v %v", resp, err)
	}
	if resp, b, err := get(t, p.URL+"/blob"); err != nil || resp.StatusCode != 200 || !bytes.Equal(b, body) {
		t.Fatalf("after Times ran out: %v", err)
	}

	p.SetRules(Rule{ResetEvery: 100000})
	p.ResetCounters()
	_, b, err := get(t, p.URL+"/blob")
	if err == nil || len(b) != 100000 {
		t.Fatalf("reset: got %d bytes, %v", len(b), err)
	}
	if p.BytesSent() != 100000 || p.Requests() != 1 || p.Faults() != 1 {
		t.Errorf("counters: %d bytes, %d requests, %d faults", p.BytesSent(), p.Requests(), p.Faults())
	}

	p.SetRules(Rule{TruncateAt: 1000})
	resp, b, err = get(t, p.URL+"/blob")
	if err != nil || len(b) != 1000 || resp.ContentLength != 1000 {
		t.Fatalf("truncate: %d bytes, %v", len(b), err)
	}

	p.SetRules(Rule{CorruptAt: 5})
	_, b, err = get(t, p.URL+"/blob")
	if err != nil || b[4] != body[4]^0xff || !bytes.Equal(b[5:], body[5:]) || !bytes.Equal(b[:4], body[:4]) {
		t.Fatalf("corrupt: %v", err)
	}

	p.SetRules(Rule{IgnoreRange: true})
	resp, b, err = get(t, p.URL+"/blob", "Range", "bytes=10-")
	if err != nil || resp.StatusCode != 200 || len(b) != len(body) {
		t.Fatalf("ignore range: %d bytes, %v", len(b), err)
	}
	p.SetRules()
	resp, b, err = get(t, p.URL+"/blob", "Range", "bytes=10-")
	if err != nil || resp.StatusCode != 206 || !bytes.Equal(b, body[10:]) {
		t.Fatalf("range passes through: %v", err)
	}

	p.SetRules(Rule{StallAfter: 10, Stall: 300 * time.Millisecond})
	start := time.Now()
	_, b, err = get(t, p.URL+"/blob")
	if err != nil || len(b) != len(body) || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("stall: %d bytes after %v, %v", len(b), time.Since(start), err)
	}

	p.SetRules()
	p.ResetCounters()
	if resp, err := http.Post(p.URL+"/blob", "application/octet-stream", bytes.NewReader(body[:5000])); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	if n := p.BytesReceived(); n != 5000 {
		t.Errorf("BytesReceived = %d, want 5000", n)
	}

	p.SetRules(Rule{Path: "/other", Status: 500})
	if resp, _, err := get(t, p.URL+"/blob"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("path filter: %v", err)
	}
}
