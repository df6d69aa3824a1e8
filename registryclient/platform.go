package registryclient

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/berthrt/berth/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultPlatform is the platform images are selected for when the caller
// names none: linux (berth runs Linux containers whatever the build's GOOS),
// the program's GOARCH, and for arm the GOARM it was built with (v7 when
// unknown) and v8 for arm64. No /proc/cpuinfo probing: the binary's own
// architecture is what it can run.
func DefaultPlatform() ocispec.Platform {
	p := ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	switch runtime.GOARCH {
	case "arm64":
		p.Variant = "v8"
	case "arm":
		p.Variant = "v7"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "GOARM" && s.Value != "" {
					p.Variant = "v" + strings.SplitN(s.Value, ",", 2)[0]
				}
			}
		}
	}
	return p
}

// ParsePlatform reads "os/arch[/variant]" (as docker --platform does), or
// "arch" alone for linux. Architecture aliases are normalised: x86_64 and
// x86-64 to amd64, aarch64 to arm64, armhf to arm/v7, armel to arm/v6,
// i386 to 386.
func ParsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(strings.ToLower(strings.TrimSpace(s)), "/")
	var p ocispec.Platform
	switch len(parts) {
	case 1:
		p.OS, p.Architecture = "linux", parts[0]
	case 2:
		p.OS, p.Architecture = parts[0], parts[1]
	case 3:
		p.OS, p.Architecture, p.Variant = parts[0], parts[1], parts[2]
	default:
		return p, fmt.Errorf("platform %q: want os/arch[/variant]: %w", s, errdefs.ErrInvalid)
	}
	for _, f := range parts {
		if f == "" {
			return p, fmt.Errorf("platform %q has an empty part: %w", s, errdefs.ErrInvalid)
		}
	}
	return NormalizePlatform(p), nil
}

// NormalizePlatform maps architecture aliases to GOARCH names and fills the
// default variant (arm64: v8; arm: v7; amd64 v1 is "").
func NormalizePlatform(p ocispec.Platform) ocispec.Platform {
	p.OS = strings.ToLower(p.OS)
	p.Architecture = strings.ToLower(p.Architecture)
	p.Variant = strings.ToLower(p.Variant)
	switch p.Architecture {
	case "x86_64", "x86-64":
		p.Architecture = "amd64"
	case "aarch64":
		p.Architecture = "arm64"
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v6"
	case "i386", "i686":
		p.Architecture = "386"
	}
	switch p.Architecture {
	case "arm64":
		if p.Variant == "" || p.Variant == "8" {
			p.Variant = "v8"
		}
	case "arm":
		if p.Variant == "" {
			p.Variant = "v7"
		} else if !strings.HasPrefix(p.Variant, "v") {
			p.Variant = "v" + p.Variant
		}
	case "amd64":
		if p.Variant == "v1" {
			p.Variant = ""
		}
	}
	return p
}

// PlatformString formats p as os/arch[/variant].
func PlatformString(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// platformRank returns how well have serves want: 0 for an exact match,
// higher for an older compatible variant (arm/v6 on an arm/v7 host, amd64
// v2 on a v3 host), -1 when have cannot run on want.
func platformRank(want, have ocispec.Platform) int {
	want, have = NormalizePlatform(want), NormalizePlatform(have)
	if want.OS != have.OS {
		return -1
	}
	if want.Architecture == have.Architecture && want.Variant == have.Variant {
		return 0
	}
	// Compatible older variants, best first.
	var compat []string
	switch want.Architecture + "/" + want.Variant {
	case "arm64/v8":
		if have.Architecture == "arm" {
			compat = []string{"v8", "v7", "v6", "v5"}
			if i := slices.Index(compat, have.Variant); i >= 0 {
				return 10 + i
			}
		}
		return -1
	case "arm/v8":
		compat = []string{"v8", "v7", "v6", "v5"}
	case "arm/v7":
		compat = []string{"v7", "v6", "v5"}
	case "arm/v6":
		compat = []string{"v6", "v5"}
	case "amd64/v4":
		compat = []string{"v4", "v3", "v2", ""}
	case "amd64/v3":
		compat = []string{"v3", "v2", ""}
	case "amd64/v2":
		compat = []string{"v2", ""}
	}
	if want.Architecture != have.Architecture {
		return -1
	}
	if i := slices.Index(compat, have.Variant); i >= 0 {
		return i
	}
	return -1
}

// SelectManifest picks the entry of an index for platform: the best match
// as platformRank orders them, the first one among equals. An entry without
// a platform, or for "unknown/unknown" (attestations), is never chosen. With
// a zero platform, the first entry with a platform is chosen (any
// platform). When nothing matches, the error wraps errdefs.ErrNotFound and
// lists what the index offers.
func SelectManifest(index ocispec.Index, platform ocispec.Platform) (ocispec.Descriptor, error) {
	best, bestRank := -1, -1
	var offers []string
	for i, d := range index.Manifests {
		if d.Platform == nil || d.Platform.OS == "unknown" || d.Platform.Architecture == "unknown" {
			continue
		}
		offers = append(offers, PlatformString(NormalizePlatform(*d.Platform)))
		if platform.OS == "" && platform.Architecture == "" {
			if best < 0 {
				best, bestRank = i, 0
			}
			continue
		}
		if r := platformRank(platform, *d.Platform); r >= 0 && (best < 0 || r < bestRank) {
			best, bestRank = i, r
		}
	}
	if best < 0 {
		if len(offers) == 0 {
			return ocispec.Descriptor{}, fmt.Errorf("no manifest for platform %s: the index lists no platforms: %w", PlatformString(platform), errdefs.ErrNotFound)
		}
		return ocispec.Descriptor{}, fmt.Errorf("no manifest for platform %s; the index offers %s: %w",
			PlatformString(NormalizePlatform(platform)), strings.Join(offers, ", "), errdefs.ErrNotFound)
	}
	return index.Manifests[best], nil
}
