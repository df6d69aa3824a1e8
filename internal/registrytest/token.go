package registrytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// tokenServer issues registry bearer tokens (JWTs signed with ES256, the
// signing certificate in the x5c header, trusted by the registry through
// its rootcertbundle), as the distribution token-auth spec describes.
//
// GET /token?service=&scope=... with basic auth (or anonymous when there are
// no users) grants every scope asked for. POST /token with
// grant_type=refresh_token accepts a user's password as the refresh token;
// grant_type=password takes username and password.
type tokenServer struct {
	url      string
	certFile string
	requests atomic.Int64
	count    func() int
}

func startTokenServer(tb testing.TB, dir string, users map[string]string) *tokenServer {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(7),
		Subject:               pkix.Name{CommonName: "registrytest token signer"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	ts := &tokenServer{certFile: filepath.Join(dir, "token-signer.crt")}
	ts.count = func() int { return int(ts.requests.Load()) }
	if err := os.WriteFile(ts.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		tb.Fatal(err)
	}
	x5c := base64.StdEncoding.EncodeToString(der)

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.requests.Add(1)
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		subject := ""
		switch r.Method {
		case http.MethodGet:
			u, p, ok := r.BasicAuth()
			if ok {
				if want, known := users[u]; !known || want != p {
					http.Error(w, `{"details":"bad credentials"}`, http.StatusUnauthorized)
					return
				}
				subject = u
			} else if len(users) > 0 {
				w.Header().Set("WWW-Authenticate", `Basic realm="registrytest"`)
				http.Error(w, `{"details":"credentials required"}`, http.StatusUnauthorized)
				return
			}
		case http.MethodPost:
			switch r.PostForm.Get("grant_type") {
			case "refresh_token":
				rt := r.PostForm.Get("refresh_token")
				for u, p := range users {
					if p == rt {
						subject = u
					}
				}
			case "password":
				u := r.PostForm.Get("username")
				if want, known := users[u]; known && want == r.PostForm.Get("password") {
					subject = u
				}
			}
			if subject == "" {
				http.Error(w, `{"error":"invalid_grant"}`, http.StatusUnauthorized)
				return
			}
		default:
			http.Error(w, "method", http.StatusMethodNotAllowed)
			return
		}
		type access struct {
			Type    string   `json:"type"`
			Name    string   `json:"name"`
			Actions []string `json:"actions"`
		}
		grants := []access{}
		for _, s := range r.Form["scope"] {
			for _, one := range strings.Fields(s) {
				parts := strings.Split(one, ":")
				if len(parts) < 3 {
					continue
				}
				// The name may itself contain ':' (host:port never does here).
				grants = append(grants, access{Type: parts[0], Name: strings.Join(parts[1:len(parts)-1], ":"), Actions: strings.Split(parts[len(parts)-1], ",")})
			}
		}
		now := time.Now()
		header, _ := json.Marshal(map[string]any{"typ": "JWT", "alg": "ES256", "x5c": []string{x5c}})
		claims, _ := json.Marshal(map[string]any{
			"iss": "registrytest-issuer", "sub": subject, "aud": r.Form.Get("service"),
			"exp": now.Add(5 * time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(),
			"jti": base64.RawURLEncoding.EncodeToString(big.NewInt(now.UnixNano()).Bytes()), "access": grants,
		})
		signed := b64(header) + "." + b64(claims)
		sum := sha256.Sum256([]byte(signed))
		rr, ss, err := ecdsa.Sign(rand.Reader, key, sum[:])
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		sig := make([]byte, 64)
		rr.FillBytes(sig[:32])
		ss.FillBytes(sig[32:])
		tok := signed + "." + b64(sig)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"token": tok, "access_token": tok, "expires_in": 300, "issued_at": now.UTC().Format(time.RFC3339),
		})
	}))
	tb.Cleanup(srv.Close)
	ts.url = srv.URL + "/token"
	return ts
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
