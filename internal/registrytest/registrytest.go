// Package registrytest runs a real registry server for tests: Debian's
// docker-registry (CNCF Distribution 2.8) as a child process, on a free
// loopback port, with its storage under the test's temporary directory,
// optionally behind TLS (a CA generated per registry) and htpasswd basic
// auth, or bearer-token auth served by a token server in the test process.
// The server is killed in tb.Cleanup.
package registrytest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/berthrt/berth/internal/testutil"
)

// Options configure a registry. The zero Options give a plain-HTTP
// registry without authentication.
type Options struct {
	// TLS serves HTTPS with a certificate for 127.0.0.1, ::1 and localhost
	// signed by a CA made for this registry (Registry.CA, Registry.CertsDir).
	TLS bool
	// ClientCerts (implies TLS) makes the registry require a client
	// certificate signed by its CA; CertsDir/<Host>/client.cert and
	// client.key hold one, as Docker's certs.d layout has it.
	ClientCerts bool
	// Htpasswd maps user names to passwords; non-empty turns on basic auth
	// (or, with Token, the token server's accounts).
	Htpasswd map[string]string
	// Token puts the registry behind bearer-token auth: a token server in
	// the test process (Registry.TokenURL) issues signed JWTs granting
	// whatever is asked, to anonymous users when Htpasswd is empty, else to
	// the users it lists.
	Token bool
}

// Registry is a running registry server.
type Registry struct {
	// Host is "127.0.0.1:port", for references ("127.0.0.1:port/repo:tag").
	Host string
	// URL is "http://127.0.0.1:port" or "https://...".
	URL string
	// CA is the PEM certificate of the CA that signed the server's
	// certificate (TLS only).
	CA []byte
	// CertsDir is a directory in Docker's certs.d layout that trusts CA:
	// <CertsDir>/<Host>/ca.crt, plus client.cert and client.key with
	// ClientCerts (TLS only).
	CertsDir string
	// Dir is the registry's storage root.
	Dir string
	// TokenURL is the token server's realm (Token only).
	TokenURL string
	// TokenRequests counts requests the token server answered.
	TokenRequests func() int

	cmd        *exec.Cmd
	done       chan struct{}
	logPath    string
	clientCert *tls.Certificate
}

// Stop kills the registry now (to test a registry that goes away); the
// storage stays. It is safe to call more than once.
func (r *Registry) Stop() {
	r.cmd.Process.Kill()
	<-r.done
}

// Log returns what the registry has logged so far (errors only).
func (r *Registry) Log() string {
	b, _ := os.ReadFile(r.logPath)
	return string(b)
}

// Start runs a registry for the duration of tb.
func Start(tb testing.TB, opts Options) *Registry {
	tb.Helper()
	bin := testutil.RequiresCommand(tb, "docker-registry")
	dir := tb.TempDir()
	r := &Registry{Dir: filepath.Join(dir, "data")}

	var cfg strings.Builder
	fmt.Fprintf(&cfg, "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n")
	fmt.Fprintf(&cfg, "storage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n", r.Dir)
	if opts.Token {
		ts := startTokenServer(tb, dir, opts.Htpasswd)
		r.TokenURL, r.TokenRequests = ts.url, ts.count
		fmt.Fprintf(&cfg, "auth:\n  token:\n    realm: %s\n    service: registrytest\n    issuer: registrytest-issuer\n    rootcertbundle: %s\n", ts.url, ts.certFile)
	} else if len(opts.Htpasswd) > 0 {
		htpasswd := filepath.Join(dir, "htpasswd")
		writeHtpasswd(tb, htpasswd, opts.Htpasswd)
		fmt.Fprintf(&cfg, "auth:\n  htpasswd:\n    realm: registrytest\n    path: %s\n", htpasswd)
	}
	var ca *certAuthority
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if opts.TLS || opts.ClientCerts {
		ca = newCA(tb)
		r.CA = ca.pem
		ca.issue(tb, serverCertTemplate(), certFile, keyFile)
		if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca.pem, 0o644); err != nil {
			tb.Fatal(err)
		}
		if opts.ClientCerts {
			ca.issue(tb, clientCertTemplate(), filepath.Join(dir, "client.cert"), filepath.Join(dir, "client.key"))
			pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.cert"), filepath.Join(dir, "client.key"))
			if err != nil {
				tb.Fatal(err)
			}
			r.clientCert = &pair
		}
	}

	var lastErr error
	for try := 0; try < 5; try++ {
		port := freePort(tb)
		r.Host = fmt.Sprintf("127.0.0.1:%d", port)
		scheme := "http"
		if ca != nil {
			scheme = "https"
		}
		r.URL = scheme + "://" + r.Host
		conf := cfg.String() + fmt.Sprintf("http:\n  addr: %s\n  secret: registrytest\n  headers:\n    X-Content-Type-Options: [nosniff]\n", r.Host)
		if ca != nil {
			conf += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", certFile, keyFile)
			if opts.ClientCerts {
				conf += fmt.Sprintf("    clientcas:\n      - %s\n", filepath.Join(dir, "ca.crt"))
			}
		}
		confPath := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			tb.Fatal(err)
		}
		logPath := filepath.Join(dir, fmt.Sprintf("registry-%d.log", try))
		logf, err := os.Create(logPath)
		if err != nil {
			tb.Fatal(err)
		}
		cmd := exec.Command(bin, "serve", confPath)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			tb.Fatalf("start docker-registry: %v", err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); logf.Close(); close(done) }()
		if err := r.waitReady(done, 10*time.Second); err != nil {
			cmd.Process.Kill()
			<-done
			log, _ := os.ReadFile(logPath)
			lastErr = fmt.Errorf("%v; log:\n%s", err, log)
			continue
		}
		r.cmd, r.done, r.logPath = cmd, done, logPath
		tb.Cleanup(func() {
			r.Stop()
			if tb.Failed() {
				if log, _ := os.ReadFile(logPath); len(log) > 0 {
					tb.Logf("docker-registry log:\n%s", tail(log, 4096))
				}
			}
		})
		if ca != nil {
			r.CertsDir = filepath.Join(dir, "certs.d")
			hostDir := filepath.Join(r.CertsDir, r.Host)
			if err := os.MkdirAll(hostDir, 0o755); err != nil {
				tb.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(hostDir, "ca.crt"), r.CA, 0o644); err != nil {
				tb.Fatal(err)
			}
			if opts.ClientCerts {
				for _, name := range []string{"client.cert", "client.key"} {
					b, err := os.ReadFile(filepath.Join(dir, name))
					if err == nil {
						err = os.WriteFile(filepath.Join(hostDir, name), b, 0o600)
					}
					if err != nil {
						tb.Fatal(err)
					}
				}
			}
		}
		return r
	}
	tb.Fatalf("docker-registry did not come up: %v", lastErr)
	return nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// waitReady polls /v2/ until the server answers (200 or 401).
func (r *Registry) waitReady(exited <-chan struct{}, limit time.Duration) error {
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	if r.clientCert != nil {
		tr.TLSClientConfig.Certificates = []tls.Certificate{*r.clientCert}
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Second}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("docker-registry exited")
		default:
		}
		resp, err := client.Get(r.URL + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("docker-registry at %s not ready after %v", r.URL, limit)
}

// Ref is Host + "/" + repoAndTag, for convenience.
func (r *Registry) Ref(repoAndTag string) string { return r.Host + "/" + repoAndTag }

func freePort(tb testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeHtpasswd writes bcrypt entries with htpasswd(1) at the lowest cost,
// since the registry checks the hash on every request.
func writeHtpasswd(tb testing.TB, path string, users map[string]string) {
	htpasswd := testutil.RequiresCommand(tb, "htpasswd")
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	for _, u := range names {
		out, err := exec.Command(htpasswd, "-nbB", "-C", "4", u, users[u]).Output()
		if err != nil {
			tb.Fatalf("htpasswd for %s: %v", u, err)
		}
		buf.Write(bytes.TrimSpace(out))
		buf.WriteByte('\n')
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// certAuthority is a CA made for one registry.
type certAuthority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(tb testing.TB) *certAuthority {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "registrytest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &certAuthority{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a certificate signed by ca and its key to certFile, keyFile.
func (ca *certAuthority) issue(tb testing.TB, tmpl *x509.Certificate, certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		tb.Fatal(err)
	}
}

func serverCertTemplate() *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		DNSNames:     []string{"localhost"},
	}
}

func clientCertTemplate() *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: big.NewInt(3),
		Subject:      pkix.Name{CommonName: "registrytest client"},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}
