package berth

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image is an image in the runtime's store: a manifest, its config and its
// layers. It is an immutable view; the accessors read the parsed config.
type Image struct {
	// Name is the reference the image was pulled, loaded or tagged as
	// (normalised, e.g. docker.io/library/alpine:3.20); empty for an image
	// looked up by digest only.
	Name string
	// Digest is the digest of the image's manifest (for a multi-platform
	// image, of the platform's manifest that was selected).
	Digest digest.Digest
	// Manifest and Config as stored.
	Manifest ocispec.Manifest
	Config   ocispec.Image
	// Created is when the image was stored here.
	Created time.Time
	// Size is the sum of the compressed layer sizes.
	Size int64

	healthcheck *Healthcheck
}

// ID is the digest of the image's config, as Docker names images.
func (i *Image) ID() digest.Digest { return i.Manifest.Config.Digest }

// Entrypoint of the image config.
func (i *Image) Entrypoint() []string { return i.Config.Config.Entrypoint }

// Cmd of the image config.
func (i *Image) Cmd() []string { return i.Config.Config.Cmd }

// Env of the image config, as KEY=VALUE strings.
func (i *Image) Env() []string { return i.Config.Config.Env }

// User of the image config ("" means root).
func (i *Image) User() string { return i.Config.Config.User }

// WorkingDir of the image config ("" means /).
func (i *Image) WorkingDir() string { return i.Config.Config.WorkingDir }

// Labels of the image config.
func (i *Image) Labels() map[string]string { return i.Config.Config.Labels }

// StopSignal of the image config ("" means SIGTERM).
func (i *Image) StopSignal() string { return i.Config.Config.StopSignal }

// ExposedPorts of the image config, sorted ("80/tcp", "53/udp").
func (i *Image) ExposedPorts() []string { return sortedKeys(i.Config.Config.ExposedPorts) }

// Volumes of the image config, sorted.
func (i *Image) Volumes() []string { return sortedKeys(i.Config.Config.Volumes) }

// DiffIDs are the digests of the uncompressed layers, base first.
func (i *Image) DiffIDs() []digest.Digest { return i.Config.RootFS.DiffIDs }

// Platform is os/arch[/variant] of the image.
func (i *Image) Platform() string {
	p := i.Config.OS + "/" + i.Config.Architecture
	if i.Config.Variant != "" {
		p += "/" + i.Config.Variant
	}
	return p
}

// Healthcheck is the image's HEALTHCHECK, Docker's extension of the config.
type Healthcheck struct {
	Test        []string      `json:"Test,omitempty"`
	Interval    time.Duration `json:"Interval,omitempty"`
	Timeout     time.Duration `json:"Timeout,omitempty"`
	StartPeriod time.Duration `json:"StartPeriod,omitempty"`
	Retries     int           `json:"Retries,omitempty"`
}

// Healthcheck returns the image's HEALTHCHECK, or nil when it has none.
// The OCI config type does not carry it, so it is read from the raw config.
func (i *Image) Healthcheck() *Healthcheck { return i.healthcheck }

func sortedKeys(m map[string]struct{}) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// parseImageConfig decodes a config blob, keeping Docker's Healthcheck.
func parseImageConfig(b []byte) (ocispec.Image, *Healthcheck, error) {
	var cfg ocispec.Image
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, nil, fmt.Errorf("decode image config: %v: %w", err, ErrInvalid)
	}
	var extra struct {
		Config struct {
			Healthcheck *Healthcheck `json:"Healthcheck"`
		} `json:"config"`
	}
	_ = json.Unmarshal(b, &extra)
	return cfg, extra.Config.Healthcheck, nil
}
