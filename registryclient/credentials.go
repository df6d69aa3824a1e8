package registryclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/berthrt/berth/errdefs"
)

// Credential is what a registry host accepts: a user name and password
// (or personal access token), or an identity token (an OAuth2 refresh
// token from a previous login). The zero Credential means anonymous.
type Credential struct {
	Username string
	Password string
	// IdentityToken, when set, is exchanged for access tokens with the
	// OAuth2 refresh_token grant instead of sending the password.
	IdentityToken string
}

// IsZero reports whether c is anonymous.
func (c Credential) IsZero() bool { return c == Credential{} }

// Credentials looks up the credential for a registry host ("docker.io",
// "ghcr.io", "127.0.0.1:5000"). A host without credentials gives the zero
// Credential and a nil error.
type Credentials interface {
	Get(ctx context.Context, host string) (Credential, error)
}

// StaticCredentials maps hosts to credentials.
type StaticCredentials map[string]Credential

// Get implements Credentials.
func (s StaticCredentials) Get(_ context.Context, host string) (Credential, error) {
	return s[host], nil
}

// DockerConfig reads credentials the way the docker CLI stores them:
// config.json's "auths" (base64 "user:password" in "auth", or
// "username"/"password", or "identitytoken"), and credential helpers named by
// "credHelpers" (per host) or "credsStore" (default), run as
// docker-credential-<name> get. The file is read at every Get, so a
// concurrent `docker login` is seen.
type DockerConfig struct {
	// Dir is the directory holding config.json. Zero: $DOCKER_CONFIG, else
	// ~/.docker.
	Dir string
}

type dockerConfigFile struct {
	Auths map[string]struct {
		Auth          string `json:"auth"`
		Username      string `json:"username"`
		Password      string `json:"password"`
		IdentityToken string `json:"identitytoken"`
	} `json:"auths"`
	CredsStore  string            `json:"credsStore"`
	CredHelpers map[string]string `json:"credHelpers"`
}

func (d DockerConfig) path() (string, error) {
	dir := d.Dir
	if dir == "" {
		dir = os.Getenv("DOCKER_CONFIG")
	}
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(home, ".docker")
	}
	return filepath.Join(dir, "config.json"), nil
}

// configKeys are the keys config.json may use for host, best first.
func configKeys(host string) []string {
	if host == DockerHub || host == "index.docker.io" || host == DockerHubEndpoint {
		return []string{DockerHubConfigKey, "index.docker.io", "docker.io", DockerHubEndpoint, "https://index.docker.io/v1"}
	}
	return []string{host, "https://" + host, "http://" + host}
}

// normalizeKey reduces a config.json key ("https://host/v1/") to its host.
func normalizeKey(k string) string {
	k = strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://")
	if i := strings.IndexByte(k, '/'); i >= 0 {
		k = k[:i]
	}
	if k == "index.docker.io" || k == DockerHubEndpoint {
		return DockerHub
	}
	return k
}

// Get implements Credentials.
func (d DockerConfig) Get(ctx context.Context, host string) (Credential, error) {
	p, err := d.path()
	if err != nil {
		return Credential{}, nil
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return Credential{}, nil
	}
	if err != nil {
		return Credential{}, fmt.Errorf("read docker config: %w", err)
	}
	var f dockerConfigFile
	if err := json.Unmarshal(data, &f); err != nil {
		return Credential{}, fmt.Errorf("parse %s: %v: %w", p, err, errdefs.ErrInvalid)
	}
	keys := configKeys(host)
	want := normalizeKey(host)
	// A per-host helper wins, then the auths entry, then the default store.
	for k, helper := range f.CredHelpers {
		if normalizeKey(k) == want && helper != "" {
			return runCredentialHelper(ctx, helper, keys[0])
		}
	}
	found := false
	var entry = f.Auths[keys[0]]
	for _, k := range keys {
		if e, ok := f.Auths[k]; ok {
			entry, found = e, true
			break
		}
	}
	if !found {
		for k, e := range f.Auths {
			if normalizeKey(k) == want {
				entry, found = e, true
				break
			}
		}
	}
	if found {
		c := Credential{Username: entry.Username, Password: entry.Password, IdentityToken: entry.IdentityToken}
		if entry.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(entry.Auth)
			if err != nil {
				return Credential{}, fmt.Errorf("%s: auths[%q].auth is not base64: %w", p, host, errdefs.ErrInvalid)
			}
			u, pw, ok := strings.Cut(string(raw), ":")
			if !ok {
				return Credential{}, fmt.Errorf("%s: auths[%q].auth is not user:password: %w", p, host, errdefs.ErrInvalid)
			}
			c.Username, c.Password = u, pw
		}
		if !c.IsZero() || f.CredsStore == "" {
			return c, nil
		}
	}
	if f.CredsStore != "" {
		return runCredentialHelper(ctx, f.CredsStore, keys[0])
	}
	return Credential{}, nil
}

// runCredentialHelper runs docker-credential-<name> get with serverURL on
// stdin. A helper that knows nothing of the host ("credentials not found
// in native keychain") gives the zero Credential.
func runCredentialHelper(ctx context.Context, name, serverURL string) (Credential, error) {
	prog := "docker-credential-" + name
	cmd := exec.CommandContext(ctx, prog, "get")
	cmd.Stdin = strings.NewReader(serverURL)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stdout.String() + " " + stderr.String())
		if strings.Contains(strings.ToLower(msg), "credentials not found") {
			return Credential{}, nil
		}
		return Credential{}, fmt.Errorf("credential helper %s for %s: %v: %s", prog, serverURL, err, msg)
	}
	var out struct {
		Username string `json:"Username"`
		Secret   string `json:"Secret"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return Credential{}, fmt.Errorf("credential helper %s: bad output: %v: %w", prog, err, errdefs.ErrInvalid)
	}
	if out.Username == "<token>" {
		return Credential{IdentityToken: out.Secret}, nil
	}
	return Credential{Username: out.Username, Password: out.Secret}, nil
}
