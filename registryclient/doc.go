// Package registryclient is a client for OCI distribution (Docker Registry
// v2) registries: image references, authentication, manifests and indexes,
// blobs, tag lists, and pushes. It builds on every OS and depends only on
// the standard library, image-spec and go-digest; pulling whole images into
// a store is package berth's job, built on OpenBlob and FetchImageManifest.
//
//	c := &registryclient.Client{Credentials: registryclient.DockerConfig{}}
//	ref, _ := registryclient.ParseReference("alpine:3.20")
//	desc, manifest, err := c.FetchImageManifest(ctx, ref, nil) // host platform
//	rc, err := c.OpenBlob(ctx, ref, layerDesc, 0)              // verified stream
//
// # Design decisions
//
// References are parsed exactly as Docker does (ParseReference): a bare
// name is Docker Hub's, official images get "library/", no tag means
// "latest". Errors name the part that is wrong and wrap errdefs.ErrInvalid.
//
// A Client is a plain struct with a useful zero value, like http.Client.
// It holds per-host state (the scheme of insecure hosts, authentication
// challenges, bearer tokens by scope, transports), so one Client should be
// shared. There is no per-repository object: every call takes the
// Reference, which keeps the API small and calls independent.
//
// Authentication follows the registry: the first request goes out
// anonymously, a 401 teaches the client the host's challenge (Bearer with
// realm, service and scope, or Basic), and later requests authorize up
// front. Bearer tokens are fetched with GET (basic auth when there is a
// user name) or, for identity tokens, the OAuth2 refresh_token POST, and
// cached per host and scope set until shortly before they expire.
// Credentials are looked up per call through the Credentials interface, so
// a credential helper is run only when a token is needed.
//
// Plain HTTP is allowed only for loopback and for hosts listed in Insecure
// (Docker's rule); for those, HTTPS without verification is tried first,
// then HTTP, and the outcome is remembered. TLS roots are the system's plus
// Docker's certs.d directory.
//
// Every manifest and blob is checked against its digest while it streams.
// A BlobReader resumes a broken transfer with a Range request from the last
// byte it delivered, so a reset costs only the bytes in flight; an offset
// lets a content store resume a download an earlier process began (the
// digest can then only be checked by the store, which has all the bytes).
// Retries are bounded (RetryPolicy) and honour Retry-After; a download that
// keeps making progress is never given up on because of the number of
// failures alone. Exhausted retries give errors wrapping
// errdefs.ErrUnavailable; context cancellation returns the context's error.
//
// Errors from the registry are *Error values carrying status, code and
// message, matching the errdefs kinds with errors.Is (404 is ErrNotFound,
// 401/403 ErrUnauthorized, and so on), with a Temporary method.
//
// Mirrors apply to reads only (pushes go to the registry itself), and any
// mirror failure falls through to the next mirror and finally the origin.
//
// Docker schema1 manifests are refused (ErrUnsupported): they are
// deprecated, unsigned in practice, and no maintained registry serves them
// unless asked for.
//
// Platform selection (SelectManifest) prefers an exact os/arch/variant
// match and otherwise the newest compatible older variant (arm/v6 on an
// arm/v7 host, amd64/v2 on a v3 request); the default platform comes from
// the running binary (GOARCH, GOARM), not from /proc/cpuinfo.
//
// # When not to use it
//
// For whole-image copying between registries and layouts with every
// format and signature feature, use a full library such as
// go-containerregistry or containers/image; this package covers what berth
// needs to pull and push images.
package registryclient

import (
	// go-digest needs the hash implementations registered.
	_ "crypto/sha256"
	_ "crypto/sha512"
)
