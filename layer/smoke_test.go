//go:build linux

package layer

import (
	"testing"
)

func TestSmoke(t *testing.T) {
	s := newStore(t)
	tb := mkTar(t, ent{Name: "etc/"}, ent{Name: "etc/passwd", Body: "root:x:0:0"}, ent{Name: "bin/sh", Type: '2', Link: "busybox"})
	l := unpack(t, s, "", tb)
	t.Logf("%+v", l)
	t.Logf("%v", names(tree(t, s.LayerDir(l.ChainID))))
}
