//go:build linux

// Package berthtest helps `go test` use real containers: a runtime on a
// temporary root that cleans up after the test, containers that are
// deleted with the test, and wait strategies (a log line, a TCP port, an
// HTTP answer) for services started in them.
//
//	func TestAgainstRedis(t *testing.T) {
//		rt := berthtest.Runtime(t)
//		img := berthtest.Pull(t, rt, "127.0.0.1:5000/redis:7")
//		c := berthtest.Start(t, rt, berth.ContainerConfig{Image: img})
//		addr := berthtest.WaitForPort(t, c, 6379, 30*time.Second)
//		...
//	}
//
// Every helper fails the test (t.Fatal) instead of returning an error.
package berthtest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/berthrt/berth"
	"github.com/berthrt/berth/cgroup"
)

// Runtime returns a runtime on a new temporary root, with a cgroup parent
// of its own. At the end of the test every container of the root is
// deleted and the cgroup parent removed.
func Runtime(tb testing.TB) *berth.Runtime {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("berthtest needs root")
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	parent := "berth-test-" + hex.EncodeToString(b)
	rt, err := berth.New(berth.Config{Root: tb.TempDir(), CgroupParent: parent})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx := context.Background()
		cs, _ := rt.Containers(ctx, true)
		for _, c := range cs {
			if err := c.Delete(ctx, berth.DeleteOptions{Force: true}); err != nil {
				tb.Errorf("berthtest: delete container %s: %v", c.ID(), err)
			}
		}
		rt.Close()
		if err := cgroup.Cleanup(parent, nil); err != nil {
			tb.Errorf("berthtest: cgroup cleanup: %v", err)
		}
	})
	return rt
}

// Pull pulls ref into rt.
func Pull(tb testing.TB, rt *berth.Runtime, ref string) *berth.Image {
	tb.Helper()
	img, err := rt.Pull(context.Background(), ref, berth.PullOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return img
}

// Start creates and starts a container that is deleted (killed first if
// need be) when the test ends.
func Start(tb testing.TB, rt *berth.Runtime, cfg berth.ContainerConfig) *berth.Container {
	tb.Helper()
	ctx := context.Background()
	c, err := rt.Create(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := c.Delete(context.Background(), berth.DeleteOptions{Force: true}); err != nil && !strings.Contains(err.Error(), "not found") {
			tb.Errorf("berthtest: delete %s: %v", c.ID(), err)
		}
	})
	if err := c.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	return c
}

// WaitForLog waits until the container's output has a line containing
// substr.
func WaitForLog(tb testing.TB, c *berth.Container, substr string, timeout time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	rc, err := c.Logs(ctx, berth.LogsOptions{Follow: true})
	if err != nil {
		tb.Fatal(err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		if strings.Contains(sc.Text(), substr) {
			return
		}
	}
	tb.Fatalf("berthtest: no log line with %q within %v", substr, timeout)
}

// WaitForPort waits until the container accepts TCP connections on port
// (at its address on its first network) and returns "ip:port".
func WaitForPort(tb testing.TB, c *berth.Container, port int, timeout time.Duration) string {
	tb.Helper()
	addr := Addr(tb, c, port)
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err == nil {
			conn.Close()
			return addr
		}
		if time.Now().After(deadline) {
			tb.Fatalf("berthtest: %s not accepting connections within %v: %v", addr, timeout, err)
		}
		if !c.State().Running {
			tb.Fatalf("berthtest: container exited while waiting for %s: %+v", addr, c.State())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitForHTTP waits until GET url answers with status and returns the body.
func WaitForHTTP(tb testing.TB, url string, status int, timeout time.Duration) string {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	var last error
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			var sb strings.Builder
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				sb.WriteString(sc.Text() + "\n")
			}
			resp.Body.Close()
			if resp.StatusCode == status {
				return sb.String()
			}
			last = fmt.Errorf("status %d", resp.StatusCode)
		} else {
			last = err
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("berthtest: GET %s: no %d within %v: %v", url, status, timeout, last)
	return ""
}

// Addr returns "ip:port" of the container on its first network.
func Addr(tb testing.TB, c *berth.Container, port int) string {
	tb.Helper()
	info, err := c.Inspect(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	for _, n := range info.NetworkSettings.Networks {
		return net.JoinHostPort(n.IPAddress, fmt.Sprint(port))
	}
	tb.Fatalf("berthtest: container %s has no network address", c.ID())
	return ""
}
