//go:build linux

package netdev_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/berthrt/berth/netdev"
)

// A container (here: any process in its own network namespace) joins a
// user-defined network with a published port, and leaves it.
func ExampleManager() {
	ctx := context.Background()
	m := &netdev.Manager{Root: "/var/lib/myapp"} // RunDir /run/berth, table "berth"
	defer m.Close()
	if err := m.Cleanup(ctx); err != nil { // what crashed owners left
		log.Print(err)
	}
	if _, err := m.CreateNetwork(ctx, netdev.NetworkConfig{Name: "web"}); err != nil {
		log.Fatal(err)
	}
	pid := 12345 // a process in a fresh network namespace
	ep, err := m.Attach(ctx, netdev.EndpointConfig{
		ContainerID: "c1",
		Network:     "web",
		Pid:         pid,
		Name:        "api",
		Ports:       []netdev.PortMapping{{ContainerPort: 8080}}, // random host port
		HostsPath:   "/var/lib/myapp/containers/c1/hosts",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s on %s, port %d published on %d\n", ep.IP, ep.IfName, ep.Ports[0].ContainerPort, ep.Ports[0].HostPort)
	if err := m.Detach(ctx, ep); err != nil {
		log.Fatal(err)
	}
	if err := m.RemoveNetwork(ctx, "web"); err != nil {
		log.Fatal(err)
	}
}

func ExampleResolvConf() {
	host := []byte("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n")
	os.Stdout.Write(netdev.ResolvConf(host, nil, nil, nil))
	// Output:
	// search lan
	// nameserver 8.8.8.8
	// nameserver 8.8.4.4
	// options edns0 trust-ad
}
