// Package imagebuild writes small OCI and Docker images deterministically,
// for tests, benchmarks and the CLI's import path: no daemon, no network,
// no external tool.
//
// An image is built from layers given as uncompressed tar bytes (LayerTar
// makes them from File entries), an ocispec.ImageConfig and a platform.
// Build compresses the layers, writes the config and the manifest, and
// returns a Built: the manifest bytes and descriptor plus every blob by
// digest. Index combines several Built images into a multi-platform OCI
// index or Docker manifest list. The writers lay a Built out as an OCI image
// layout directory, an OCI archive (the same layout as a tar stream) or a
// `docker save` archive.
//
// Decisions:
//
//   - Everything is in memory ([]byte). Test images are megabytes; keeping
//     bytes makes the API trivial and lets a test tamper with any blob
//     (corrupt a layer, drop a blob) before writing it out.
//   - Output is a pure function of the input: tar entries keep the order
//     the caller gives, with the Unix epoch as default mtime, no user or
//     group names, PAX records sorted; gzip headers carry no name or time;
//     zstd runs single-threaded. Both compress at their fastest level. Two builds of the same input have the same
//     digests, so tests can compare digests across processes.
//   - LayerTar writes exactly the entries it is given: parent directories
//     and whiteouts (".wh.NAME", ".wh..wh..opq") are ordinary files the
//     caller adds. It panics on an entry that archive/tar cannot encode,
//     since the input is a program's literal, not outside data.
//   - Docker schema 2 images use the same JSON shapes as OCI with Docker's
//     media types; zstd layers in Docker manifests use containerd's
//     "application/vnd.docker.image.rootfs.diff.tar.zstd".
//   - The platform defaults to linux and the builder's GOARCH, so a default
//     image runs on the machine that runs the test.
//   - Toolbox and Busybox return the files of a minimal rootfs around the
//     toolbox test program (package toolbox) or Debian's busybox-static.
//
// This is not a general image builder: no Dockerfile, no layer diffing, no
// streaming of large layers.
package imagebuild
