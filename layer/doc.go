// Package layer stores image content and turns layers into root file
// systems: a content-addressed blob store with resumable downloads, a safe
// layer unpacker, snapshots (overlayfs, or copies where overlay cannot be
// used), diffs for commits, reference counting and garbage collection.
//
// # Layout
//
// Everything lives under one root directory, shared safely by goroutines
// and by processes (flock):
//
//	<root>/blobs/sha256/<hex>        verified blobs (layers, manifests, configs)
//	<root>/ingest/sha256-<hex>       partial downloads, kept for resume
//	<root>/layers/<hex>/diff         an unpacked layer (hex of its ChainID), overlay form
//	<root>/layers/<hex>/layer.json   its DiffID, parent and size
//	<root>/l/<short>                 short symlinks to layer diff dirs, for overlay options
//	<root>/snapshots/<key>/          a snapshot: upper/ and work/ (overlay) or rootfs/ (copy)
//	<root>/refs/<hash>.json          what one owner references
//	<root>/locks/                    flock files: gc.lock, refs.lock, per layer/ingest/snapshot/ref owner
//	<root>/tmp/                      work in progress; removed at Open and GC when unused
//
// # Decisions
//
//   - Every change is made under a temporary name and renamed into place,
//     so a crash at any instant leaves the old state or the new one. Layers
//     are synced (syncfs) before they are published, unless Options.NoSync.
//   - A layer is unpacked once even when several processes want it at the
//     same time: Unpack locks the layer's ChainID (when the caller knows the
//     DiffID, as it does from the image config) and re-checks after the lock.
//     It reads a stream once, so it can unpack while downloading, and it does
//     not need the parent unpacked first, so an image's layers can be
//     downloaded and unpacked in parallel.
//   - Lock files are internal/fsutil's flocks: after taking a lock they
//     check the file is still the one at the path, so per-item lock files
//     can be deleted by their holder and do not pile up.
//   - Unpacked layers are in overlay form, ready as lower directories:
//     whiteouts are 0/0 character devices and opaque directories carry
//     trusted.overlay.opaque=y. The copy snapshotter reads the same form.
//   - Extraction trusts nothing in the tar: see Apply. Paths are resolved
//     with openat2 RESOLVE_IN_ROOT (a careful component walk where openat2 is
//     missing). Limits (ApplyOptions) make bombs fail cleanly with
//     errdefs.ErrInvalid. Diff reads a snapshot the same way, so a running
//     container cannot point it at host files.
//   - GC is mark and sweep from explicit references (Ref/Unref), not from
//     parsing manifests: callers reference manifests, configs, layer blobs
//     and ChainIDs of what they keep. Leases keep GC away from work in
//     progress.
//   - Snapshotter is an interface because two implementations exist;
//     everything else is a concrete type.
//
// # When not to use it
//
// The content store (Writer, Open, ReadAll, Walk), references, GC and
// Decompress build on any Unix; Apply, Unpack and the snapshotters need
// Linux. On Windows the package is empty.
//
// The layer half of the store needs root (or CAP_SYS_ADMIN, CAP_CHOWN,
// CAP_MKNOD) for overlay mounts, ownership and device nodes; rootless use
// (user namespaces, fuse-overlayfs) is not supported yet.
package layer
