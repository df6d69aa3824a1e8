package registrytest

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestStartPlain(t *testing.T) {
	r := Start(t, Options{})
	resp, err := http.Get(r.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestStartTLSBasic(t *testing.T) {
	r := Start(t, Options{TLS: true, Htpasswd: map[string]string{"alice": "s3cret"}})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(r.CA)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	resp, err := c.Get(r.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("anonymous: status %d, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", r.URL+"/v2/", nil)
	req.SetBasicAuth("alice", "s3cret")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("alice: status %d, want 200", resp.StatusCode)
	}
}

func TestStartToken(t *testing.T) {
	r := Start(t, Options{Token: true, Htpasswd: map[string]string{"bob": "pw"}})
	resp, err := http.Get(r.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", r.TokenURL+"?service=registrytest&scope="+url.QueryEscape("repository:x/y:pull"), nil)
	req.SetBasicAuth("bob", "pw")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("token: %d %s", resp.StatusCode, body)
	}
	var tok struct{ Token string }
	if err := jsonUnmarshal(body, &tok); err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest("GET", r.URL+"/v2/x/y/tags/list", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	// 404 NAME_UNKNOWN means the token was accepted.
	if resp.StatusCode != 404 {
		t.Fatalf("with token: %d %s", resp.StatusCode, body)
	}
}

func TestStop(t *testing.T) {
	r := Start(t, Options{})
	r.Stop()
	r.Stop()
	if _, err := http.Get(r.URL + "/v2/"); err == nil {
		t.Fatal("registry still answers after Stop")
	}
}
