//go:build linux

package layer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berthrt/berth/internal/testutil"
)

// childStress pulls, snapshots, removes and collects in a loop, as a
// program sharing the root with others would.
func childStress() {
	ctx := context.Background()
	id, _ := strconv.Atoi(os.Getenv("ID"))
	s, err := OpenWith(os.Getenv("ROOT"), Options{NoSync: true})
	if err != nil {
		panic(err)
	}
	sn, err := s.Snapshotter()
	if err != nil {
		panic(err)
	}
	var t testing.T // mkTar only needs a TB for failures, which do not happen here
	common := mkTar(&t, ent{Name: "etc/os-release", Body: "common"})
	for i := 0; i < 10; i++ {
		err := func() error {
			lease, err := s.Lease(ctx)
			if err != nil {
				return err
			}
			defer lease.Release()
			base, err := s.Unpack(ctx, bytes.NewReader(gzBytes(common)), MediaTypeLayerGzip, "", digest.FromBytes(common))
			if err != nil {
				return err
			}
			own := mkTar(&t, ent{Name: fmt.Sprintf("p%d/i%d", id, i), Body: "x"}, ent{Name: "etc/.wh.os-release"})
			top, err := s.Unpack(ctx, bytes.NewReader(own), MediaTypeLayer, base.ChainID, digest.FromBytes(own))
			if err != nil {
				return err
			}
			owner := fmt.Sprintf("image/%d-%d", id, i)
			if err := s.Ref(ctx, owner, top.ChainID); err != nil {
				return err
			}
			lease.Release()
			key := fmt.Sprintf("c%d-%d", id, i)
			if _, err := sn.Prepare(ctx, key, top.ChainID); err != nil {
				return err
			}
			if _, err := sn.Changes(ctx, key); err != nil {
				return err
			}
			if err := sn.Remove(ctx, key); err != nil {
				return err
			}
			if i%2 == 0 {
				if err := s.Unref(ctx, owner); err != nil {
					return err
				}
			}
			_, err = s.GC(ctx)
			return err
		}()
		if err != nil {
			fmt.Fprintf(os.Stderr, "child %d round %d: %v\n", id, i, err)
			os.Exit(1)
		}
	}
}

func gzBytes(b []byte) []byte { return gz(nil, b) }

// Several processes share one root: pulls, snapshots and GC interleave
// and the store stays consistent.
func TestMultiProcessStress(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newStore(t)
	var wg sync.WaitGroup
	for id := 0; id < 3; id++ {
		wg.Add(1)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "BERTH_LAYER_TEST_CHILD=stress", "ROOT="+s.Root(), "ID="+strconv.Itoa(id))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			defer wg.Done()
			if err := cmd.Wait(); err != nil {
				t.Errorf("child %d: %v", id, err)
			}
		}()
	}
	wg.Wait()
	ctx := context.Background()
	if probs, err := s.Check(ctx); err != nil || len(probs) != 0 {
		t.Fatalf("check: %v %v", probs, err)
	}
	refs, _ := s.Refs(ctx)
	if len(refs) != 15 { // the odd rounds keep their image
		t.Errorf("%d owners: %v", len(refs), refs)
	}
	for owner, ds := range refs {
		for _, d := range ds {
			if _, err := s.Chain(d); err != nil {
				t.Errorf("%s: %v", owner, err)
			}
		}
	}
	if keys, _ := s.listSnapshots(); len(keys) != 0 {
		t.Errorf("snapshots left: %v", keys)
	}
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(s.path("tmp")); len(ents) != 0 {
		t.Errorf("tmp holds %v", ents)
	}
}
