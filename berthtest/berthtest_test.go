//go:build linux

package berthtest_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/berthrt/berth"
	"github.com/berthrt/berth/berthtest"
	"github.com/berthrt/berth/internal/imagebuild"
	"github.com/berthrt/berth/internal/toolbox/toolboxtest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestHTTPServiceInAContainer(t *testing.T) {
	rt := berthtest.Runtime(t)
	layer := imagebuild.LayerTar(imagebuild.Toolbox(toolboxtest.Bytes(t)))
	img, err := rt.Import(context.Background(), bytes.NewReader(layer), berth.ImportOptions{
		Ref: "berthtest/toolbox", Config: ocispec.ImageConfig{Env: []string{"PATH=/bin"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := berthtest.Start(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"http", "-addr", ":8080"}})
	addr := berthtest.WaitForPort(t, c, 8080, 10*time.Second)
	body := berthtest.WaitForHTTP(t, fmt.Sprintf("http://%s/echo?msg=hi", addr), 200, 10*time.Second)
	if strings.TrimSpace(body) != "hi" {
		t.Errorf("body %q", body)
	}
	logger := berthtest.Start(t, rt, berth.ContainerConfig{Image: img, Cmd: []string{"echo", "ready to serve"}, NetworkMode: "none"})
	berthtest.WaitForLog(t, logger, "ready", 10*time.Second)
}
