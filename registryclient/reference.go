package registryclient

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/berthrt/berth/errdefs"
	digest "github.com/opencontainers/go-digest"
)

// Docker Hub's names. References without a registry mean DockerHub; its
// one-component repositories live under "library/"; its API is served from
// DockerHubEndpoint, and credentials for it are stored under
// DockerHubConfigKey in config.json.
const (
	DockerHub          = "docker.io"
	DockerHubEndpoint  = "registry-1.docker.io"
	DockerHubConfigKey = "https://index.docker.io/v1/"
	defaultTag         = "latest"
	maxNameLength      = 255
)

var (
	// A path component: lower-case alphanumerics separated by ".", "_",
	// "__" or a run of "-", as in the distribution spec.
	pathComponentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	domainLabelRE   = regexp.MustCompile(`^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$`)
	ipv6RE          = regexp.MustCompile(`^\[[a-fA-F0-9:]+\]$`)
	tagRE           = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)
	digestRE        = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$`)
	hex64RE         = regexp.MustCompile(`^[a-f0-9]{64}$`)
)

// Reference names an image in a registry, fully qualified: ParseReference
// fills Registry and Repository and, when the input names neither a tag nor
// a digest, sets Tag to "latest".
type Reference struct {
	// Registry is the registry's host, with ":port" when one was given:
	// "docker.io", "ghcr.io", "127.0.0.1:5000", "[::1]:5000".
	Registry string
	// Repository is the path inside the registry: "library/alpine".
	Repository string
	// Tag is the tag, or "" when the reference names a digest only.
	Tag string
	// Digest pins the content; when set, it wins over Tag for fetching.
	Digest digest.Digest
}

// ParseReference reads an image reference exactly as Docker does
// (distribution's ParseNormalizedNamed followed by TagNameOnly):
//
//	alpine                          docker.io/library/alpine:latest
//	user/app:1.2                    docker.io/user/app:1.2
//	host:5000/team/app              host:5000/team/app:latest
//	localhost/app@sha256:<hex>      localhost/app@sha256:<hex>
//	app:1.2@sha256:<hex>            docker.io/library/app:1.2@sha256:<hex>
//
// The first path component is a registry when it contains "." or ":", is
// "localhost", or has upper-case letters. An invalid reference gives an
// error that wraps errdefs.ErrInvalid and names the part that is wrong.
func ParseReference(s string) (Reference, error) {
	bad := func(format string, args ...any) (Reference, error) {
		return Reference{}, fmt.Errorf("invalid reference %q: %s: %w", s, fmt.Sprintf(format, args...), errdefs.ErrInvalid)
	}
	if s == "" {
		return bad("empty reference")
	}
	if hex64RE.MatchString(s) {
		return bad("a 64-character hexadecimal string is an image ID, not a repository name")
	}
	var ref Reference
	rest := s
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		ds := rest[i+1:]
		rest = rest[:i]
		if !digestRE.MatchString(ds) {
			return bad("digest %q is not algorithm:hex", ds)
		}
		d, err := digest.Parse(ds)
		if err != nil {
			return bad("digest %q: %v", ds, err)
		}
		ref.Digest = d
	}
	// The tag follows the last ':' that comes after the last '/'.
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && i > strings.LastIndexByte(rest, '/') {
		tag := rest[i+1:]
		rest = rest[:i]
		if !tagRE.MatchString(tag) {
			return bad("tag %q must be 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'", tag)
		}
		ref.Tag = tag
	}
	if rest == "" {
		return bad("repository name is empty")
	}

	domain, remainder := DockerHub, rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		first := rest[:i]
		if looksLikeRegistry(first) {
			domain, remainder = first, rest[i+1:]
		}
	} else if strings.ContainsAny(rest, ":[]") {
		return bad("name %q has a registry but no repository", rest)
	}
	if domain == "index.docker.io" {
		domain = DockerHub
	}
	if err := checkDomain(domain); err != nil {
		return bad("registry %q: %v", domain, err)
	}
	if remainder == "" {
		return bad("repository name is empty")
	}
	if domain == DockerHub && !strings.ContainsRune(remainder, '/') {
		remainder = "library/" + remainder
	}
	if strings.ToLower(remainder) != remainder {
		return bad("repository name %q must be lowercase", remainder)
	}
	for _, c := range strings.Split(remainder, "/") {
		if c == "" {
			return bad("repository %q has an empty path component", remainder)
		}
		if !pathComponentRE.MatchString(c) {
			return bad("repository path component %q must be [a-z0-9] separated by '.', '_', '__' or '-'", c)
		}
	}
	if n := len(domain) + 1 + len(remainder); n > maxNameLength {
		return bad("name is %d characters, more than %d", n, maxNameLength)
	}
	ref.Registry, ref.Repository = domain, remainder
	if ref.Tag == "" && ref.Digest == "" {
		ref.Tag = defaultTag
	}
	return ref, nil
}

func checkDomain(d string) error {
	host, port := d, ""
	if strings.HasPrefix(d, "[") {
		i := strings.IndexByte(d, ']')
		if i < 0 {
			return fmt.Errorf("unterminated IPv6 address")
		}
		host, port = d[:i+1], strings.TrimPrefix(d[i+1:], ":")
		if !ipv6RE.MatchString(host) {
			return fmt.Errorf("bad IPv6 address %q", host)
		}
		if port == "" && len(d) > i+1 {
			return fmt.Errorf("empty port")
		}
	} else {
		if i := strings.IndexByte(d, ':'); i >= 0 {
			host, port = d[:i], d[i+1:]
			if port == "" {
				return fmt.Errorf("empty port")
			}
		}
		if host == "" {
			return fmt.Errorf("empty host name")
		}
		for _, l := range strings.Split(host, ".") {
			if !domainLabelRE.MatchString(l) {
				return fmt.Errorf("host name label %q must be [A-Za-z0-9-], not starting or ending with '-'", l)
			}
		}
	}
	if port != "" {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil || strings.Trim(port, "0123456789") != "" {
			return fmt.Errorf("port %q is not a number from 0 to 65535", port)
		}
	}
	return nil
}

// Name is the repository's full name: "docker.io/library/alpine".
func (r Reference) Name() string { return r.Registry + "/" + r.Repository }

// String is the canonical form: registry/repository[:tag][@digest].
func (r Reference) String() string { return r.withTagDigest(r.Name()) }

// withTagDigest appends ":tag" and "@digest", those r has, to name.
func (r Reference) withTagDigest(name string) string {
	if r.Tag != "" {
		name += ":" + r.Tag
	}
	if r.Digest != "" {
		name += "@" + r.Digest.String()
	}
	return name
}

// FamiliarName is the name as Docker shows it: without "docker.io/", and
// without "library/" for official images.
func (r Reference) FamiliarName() string {
	if r.Registry != DockerHub {
		return r.Name()
	}
	if rest, ok := strings.CutPrefix(r.Repository, "library/"); ok && !strings.Contains(rest, "/") {
		return rest
	}
	// A first component that looks like a registry ("0.0/x", "localhost/x")
	// would be read back as one: keep the docker.io prefix then.
	if first, _, ok := strings.Cut(r.Repository, "/"); ok && looksLikeRegistry(first) {
		return r.Name()
	}
	return r.Repository
}

// looksLikeRegistry reports whether the first component of a name is taken
// as a registry host, as Docker reads names.
func looksLikeRegistry(first string) bool {
	return strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first
}

// Familiar is the short form Docker prints: "alpine:latest",
// "user/app:1.2", "ghcr.io/o/app@sha256:...".
func (r Reference) Familiar() string { return r.withTagDigest(r.FamiliarName()) }

// WithDigest returns r pinned to d (the tag is kept for display).
func (r Reference) WithDigest(d digest.Digest) Reference { r.Digest = d; return r }

// WithTag returns r with tag t and no digest.
func (r Reference) WithTag(t string) Reference { r.Tag, r.Digest = t, ""; return r }

// object is what the registry API's manifests endpoint takes: the digest
// when there is one, else the tag.
func (r Reference) object() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	if r.Tag != "" {
		return r.Tag
	}
	return defaultTag
}
