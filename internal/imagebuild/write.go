package imagebuild

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// entry is one file of an archive or layout, by its slash path.
type entry struct {
	name string
	data []byte
}

// layoutIndex returns the index.json of a layout that lists b under ref
// (the org.opencontainers.image.ref.name annotation; empty adds none),
// keeping the entries of prev that name other refs.
func layoutIndex(prev []byte, ref string, b Built) ([]byte, error) {
	idx := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
	}
	if prev != nil {
		if err := json.Unmarshal(prev, &idx); err != nil {
			return nil, fmt.Errorf("reading existing index.json: %w", err)
		}
	}
	d := b.Desc
	if ref != "" {
		idx.Manifests = slices.DeleteFunc(idx.Manifests, func(m ocispec.Descriptor) bool {
			return m.Annotations[ocispec.AnnotationRefName] == ref
		})
		d.Annotations = map[string]string{ocispec.AnnotationRefName: ref}
	}
	idx.Manifests = append(idx.Manifests, d)
	return json.MarshalIndent(idx, "", "  ")
}

func blobEntries(b Built) []entry {
	var es []entry
	for d, data := range b.Blobs {
		es = append(es, entry{"blobs/" + d.Algorithm().String() + "/" + d.Encoded(), data})
	}
	slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	return es
}

var layoutFile = []byte(`{"imageLayoutVersion":"` + ocispec.ImageLayoutVersion + `"}`)

// WriteOCILayout writes b into the OCI image layout at dir (created if
// missing) and lists it in index.json under ref. An existing layout is
// extended: its blobs stay, and its index entries stay except one that
// already carries the name ref. For a multi-platform image pass the Built
// that Index returned. Blobs and files are written to temporary names and
// renamed, but index.json is read, changed and replaced without a lock: do
// not let two writers share a layout at once.
func WriteOCILayout(dir, ref string, b Built) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, e := range blobEntries(b) {
		p := filepath.Join(dir, filepath.FromSlash(e.name))
		if _, err := os.Stat(p); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := writeAtomic(p, e.data); err != nil {
			return err
		}
	}
	if err := writeAtomic(filepath.Join(dir, ocispec.ImageLayoutFile), layoutFile); err != nil {
		return err
	}
	indexPath := filepath.Join(dir, ocispec.ImageIndexFile)
	prev, err := os.ReadFile(indexPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	idx, err := layoutIndex(prev, ref, b)
	if err != nil {
		return fmt.Errorf("imagebuild: %s: %w", indexPath, err)
	}
	return writeAtomic(indexPath, idx)
}

func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// WriteOCIArchive writes b as an OCI layout in a tar stream (what
// `skopeo copy oci-archive:` reads), listed under ref.
func WriteOCIArchive(w io.Writer, ref string, b Built) error {
	idx, err := layoutIndex(nil, ref, b)
	if err != nil {
		return err
	}
	es := []entry{{name: "blobs/"}, {name: "blobs/sha256/"}}
	es = append(es, blobEntries(b)...)
	es = append(es, entry{ocispec.ImageLayoutFile, layoutFile}, entry{ocispec.ImageIndexFile, idx})
	return writeTar(w, es)
}

// writeTar writes entries (a name ending in "/" is a directory) with fixed
// metadata.
func writeTar(w io.Writer, es []entry) error {
	tw := tar.NewWriter(w)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// dockerManifestEntry is one image in a docker save archive's manifest.json.
type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// WriteDockerArchive writes b, an image (not an index), in the format of
// `docker save` (what `docker load` and `skopeo copy docker-archive:`
// read): manifest.json, the config as <hex>.json, each layer uncompressed
// as <diffID hex>/layer.tar, and the legacy repositories file. repoTag
// ("name:tag") may be empty for an untagged image.
func WriteDockerArchive(w io.Writer, repoTag string, b Built) error {
	m, err := b.manifest()
	if err != nil {
		return err
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(b.Config, &cfg); err != nil {
		return fmt.Errorf("imagebuild: config: %w", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return fmt.Errorf("imagebuild: config lists %d diff IDs for %d layers", len(cfg.RootFS.DiffIDs), len(m.Layers))
	}
	cfgName := m.Config.Digest.Encoded() + ".json"
	me := dockerManifestEntry{Config: cfgName, RepoTags: []string{}, Layers: []string{}}
	if repoTag != "" {
		me.RepoTags = []string{repoTag}
	}
	es := []entry{{cfgName, b.Config}}
	seen := map[digest.Digest]bool{}
	for i, l := range m.Layers {
		diffID := cfg.RootFS.DiffIDs[i]
		dir := diffID.Encoded() + "/"
		me.Layers = append(me.Layers, dir+"layer.tar")
		if seen[diffID] {
			continue
		}
		seen[diffID] = true
		blob, ok := b.Blobs[l.Digest]
		if !ok {
			return fmt.Errorf("imagebuild: missing layer blob %s", l.Digest)
		}
		c, err := CompressionOf(l.MediaType)
		if err != nil {
			return err
		}
		tarData, err := Decompress(blob, c)
		if err != nil {
			return fmt.Errorf("imagebuild: layer %s: %w", l.Digest, err)
		}
		es = append(es, entry{name: dir}, entry{dir + "VERSION", []byte("1.0")}, entry{dir + "layer.tar", tarData})
	}
	manifest, err := json.Marshal([]dockerManifestEntry{me})
	if err != nil {
		return err
	}
	es = append(es, entry{"manifest.json", manifest})
	if repoTag != "" && len(m.Layers) > 0 {
		repo, tag := splitRepoTag(repoTag)
		last := cfg.RootFS.DiffIDs[len(cfg.RootFS.DiffIDs)-1].Encoded()
		repos, err := json.Marshal(map[string]map[string]string{repo: {tag: last}})
		if err != nil {
			return err
		}
		es = append(es, entry{"repositories", repos})
	}
	return writeTar(w, es)
}

// splitRepoTag splits "host:5000/name:tag" at the tag's colon.
func splitRepoTag(s string) (repo, tag string) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 || strings.Contains(s[i:], "/") {
		return s, "latest"
	}
	return s[:i], s[i+1:]
}
