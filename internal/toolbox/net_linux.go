package toolbox

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

func newFlags(e *env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

// httpApplet serves HTTP on -addr (default :8080) and prints "listening on
// ADDR". Routes:
//
//	/            the hostname and a newline
//	/echo        the request body, or the value of ?msg=
//	/env         the environment, one VAR=value a line
//	/headers     the request headers, "Key: value" a line, sorted
//	/remote      the client's address as the server sees it (host:port)
//	/status/N    an empty response with status N
//	/healthz     "ok"
//	/exit?code=N answers, then exits with status N
func httpApplet(e *env, args []string) int {
	fs := newFlags(e, "http")
	addr := fs.String("addr", ":8080", "listen address")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return e.fail("http", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		h, _ := os.Hostname()
		fmt.Fprintln(w, h)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		if m, ok := r.URL.Query()["msg"]; ok {
			io.WriteString(w, strings.Join(m, " "))
			return
		}
		io.Copy(w, r.Body)
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		for _, kv := range os.Environ() {
			fmt.Fprintln(w, kv)
		}
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		var lines []string
		for k, vs := range r.Header {
			for _, v := range vs {
				lines = append(lines, k+": "+v)
			}
		}
		sort.Strings(lines)
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	})
	mux.HandleFunc("/remote", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, r.RemoteAddr)
	})
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		c, err := strconv.Atoi(r.PathValue("code"))
		if err != nil || c < 100 || c > 999 {
			http.Error(w, "bad status", http.StatusBadRequest)
			return
		}
		w.WriteHeader(c)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		c, _ := strconv.Atoi(r.URL.Query().Get("code"))
		io.WriteString(w, "bye\n")
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		go func() {
			time.Sleep(50 * time.Millisecond)
			os.Exit(c & 0xff)
		}()
	})
	fmt.Fprintf(e.stdout, "listening on %s\n", ln.Addr())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return e.fail("http", srv.Serve(ln))
}

// fetchApplet GETs URL and prints the body; exit 1 unless the status is 2xx.
func fetchApplet(e *env, args []string) int {
	fs := newFlags(e, "fetch")
	timeout := fs.Duration("timeout", 10*time.Second, "overall timeout")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		return e.usage("fetch", "[-timeout D] URL")
	}
	// No proxy from the environment: tests talk to loopback and to
	// containers they made.
	c := &http.Client{Timeout: *timeout, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Get(fs.Arg(0))
	if err != nil {
		return e.fail("fetch", err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(e.stdout, resp.Body); err != nil {
		return e.fail("fetch", err)
	}
	if resp.StatusCode/100 != 2 {
		fmt.Fprintf(e.stderr, "fetch: %s\n", resp.Status)
		return 1
	}
	return 0
}

// tcpEchoApplet echoes every TCP connection on -addr back to its sender.
func tcpEchoApplet(e *env, args []string) int {
	fs := newFlags(e, "tcp-echo")
	addr := fs.String("addr", ":7", "listen address")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return e.fail("tcp-echo", err)
	}
	fmt.Fprintf(e.stdout, "listening on %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			return e.fail("tcp-echo", err)
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

// udpEchoApplet sends every UDP datagram on -addr back to its sender.
func udpEchoApplet(e *env, args []string) int {
	fs := newFlags(e, "udp-echo")
	addr := fs.String("addr", ":7", "listen address")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	pc, err := net.ListenPacket("udp", *addr)
	if err != nil {
		return e.fail("udp-echo", err)
	}
	fmt.Fprintf(e.stdout, "listening on %s\n", pc.LocalAddr())
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return e.fail("udp-echo", err)
		}
		pc.WriteTo(buf[:n], from)
	}
}

// connectApplet is a small nc: it connects to HOST:PORT, copies stdin to the
// connection (then half-closes it) and the connection to stdout. With -udp
// it sends stdin as one datagram and prints one reply. Errors name the errno
// ("connect: ECONNREFUSED").
func connectApplet(e *env, args []string) int {
	fs := newFlags(e, "connect")
	udp := fs.Bool("udp", false, "use UDP")
	timeout := fs.Duration("timeout", 5*time.Second, "dial (and UDP reply) timeout")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		return e.usage("connect", "[-udp] [-timeout D] HOST:PORT")
	}
	if *udp {
		c, err := net.DialTimeout("udp", fs.Arg(0), *timeout)
		if err != nil {
			return e.fail("connect", errors.New(errnoName(err)))
		}
		defer c.Close()
		data, err := io.ReadAll(e.stdin)
		if err != nil {
			return e.fail("connect", err)
		}
		if _, err := c.Write(data); err != nil {
			return e.fail("connect", errors.New(errnoName(err)))
		}
		c.SetReadDeadline(time.Now().Add(*timeout))
		buf := make([]byte, 64<<10)
		n, err := c.Read(buf)
		if err != nil {
			return e.fail("connect", errors.New(errnoName(err)))
		}
		e.stdout.Write(buf[:n])
		return 0
	}
	d := net.Dialer{Timeout: *timeout}
	c, err := d.DialContext(context.Background(), "tcp", fs.Arg(0))
	if err != nil {
		return e.fail("connect", errors.New(errnoName(err)))
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(e.stdout, c)
		done <- err
	}()
	io.Copy(c, e.stdin)
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	if err := <-done; err != nil {
		return e.fail("connect", err)
	}
	return 0
}

// resolveApplet looks NAME up with the pure-Go resolver (/etc/hosts, then
// /etc/resolv.conf) and prints its addresses, one a line.
func resolveApplet(e *env, args []string) int {
	if len(args) != 2 {
		return e.usage("resolve", "NAME")
	}
	r := &net.Resolver{PreferGo: true}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := r.LookupHost(ctx, args[1])
	if err != nil {
		return e.fail("resolve", err)
	}
	for _, a := range addrs {
		fmt.Fprintln(e.stdout, a)
	}
	return 0
}

// addrsApplet prints "NAME MTU FLAGS ADDR..." for every network interface.
func addrsApplet(e *env, args []string) int {
	ifs, err := net.Interfaces()
	if err != nil {
		return e.fail("addrs", err)
	}
	for _, ifc := range ifs {
		addrs, _ := ifc.Addrs()
		var as []string
		for _, a := range addrs {
			as = append(as, a.String())
		}
		flags := strings.ReplaceAll(ifc.Flags.String(), "|", ",")
		line := fmt.Sprintf("%s %d %s", ifc.Name, ifc.MTU, flags)
		if len(as) > 0 {
			line += " " + strings.Join(as, " ")
		}
		fmt.Fprintln(e.stdout, line)
	}
	return 0
}
