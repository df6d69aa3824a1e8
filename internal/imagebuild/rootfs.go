package imagebuild

import (
	"archive/tar"

	"github.com/berthrt/berth/internal/toolbox"
)

// baseDirs are the directories of a minimal rootfs.
func baseDirs() []File {
	return []File{
		Dir("bin", 0o755),
		Dir("dev", 0o755),
		Dir("etc", 0o755),
		Reg("etc/group", 0o644, toolbox.Group),
		Reg("etc/passwd", 0o644, toolbox.Passwd),
		Dir("home", 0o755),
		{Name: "home/tester", Type: tar.TypeDir, Mode: 0o755, Uid: 1000, Gid: 1000},
		Dir("proc", 0o555),
		Dir("root", 0o700),
		Dir("sys", 0o555),
		Dir("tmp", 0o1777),
	}
}

// Toolbox returns the files of a toolbox rootfs around binary (the static
// toolbox program): /bin/toolbox and a symlink /bin/<applet> for each
// applet, /etc/passwd and /etc/group (toolbox.Passwd, toolbox.Group),
// /root, /home/tester (1000:1000), /tmp (1777) and empty /proc, /sys and
// /dev. A matching image config sets Env PATH=/bin.
func Toolbox(binary []byte) []File {
	files := baseDirs()
	files = append(files, File{Name: "bin/toolbox", Mode: 0o755, Data: binary})
	for _, a := range toolbox.Applets() {
		files = append(files, Symlink("bin/"+a, "toolbox"))
	}
	return files
}

// Busybox returns the files of a minimal busybox rootfs: /bin/busybox
// (binary, which must be static, like Debian's busybox-static) with a
// symlink /bin/<applet> for each of applets (as `busybox --list` prints
// them), and the same /etc, /home, /root, /tmp, /proc, /sys and /dev as
// Toolbox.
func Busybox(binary []byte, applets []string) []File {
	files := baseDirs()
	files = append(files, File{Name: "bin/busybox", Mode: 0o755, Data: binary})
	for _, a := range applets {
		if a != "busybox" && a != "" {
			files = append(files, Symlink("bin/"+a, "busybox"))
		}
	}
	return files
}
