package exporter

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// ErrLoopbackURL is reported, wrapped, to otel.Handle once per [Exporter]
// when it links a span to a snapshot URL on a loopback address (as
// [DefaultBaseURL] is) while the process listens on an address other than
// loopback: then the process most likely serves others (in a container, on
// a host of a fleet), and the people who read its traces cannot open the
// link. Set [WithBaseURL] or OTELFR_SNAPSHOT_BASE_URL to the URL they reach
// the viewer at. The check reads the process's sockets from /proc, so it
// is made on Linux only.
var ErrLoopbackURL = errors.New("otelfr/exporter: snapshot links point at a loopback address")

// loopbackHost reports whether base names a loopback host.
func loopbackHost(base string) bool {
	u, err := url.Parse(base)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// warnLoopback reports ErrLoopbackURL if the process listens on an address
// that is not loopback, as listening says.
func (e *Exporter) warnLoopback(listening func() ([]netip.AddrPort, error)) error {
	addrs, err := listening()
	if err != nil {
		return nil // cannot tell: say nothing rather than guess
	}
	for _, a := range addrs {
		if !a.Addr().Unmap().IsLoopback() {
			return fmt.Errorf("%w (%s), but this process listens on %s: readers of its traces elsewhere cannot open them; set %s or WithBaseURL to the URL they reach the viewer at",
				ErrLoopbackURL, e.baseURL, a, EnvBaseURL)
		}
	}
	return nil
}

// processListeners returns the TCP addresses the process listens on. It
// fails on systems other than Linux.
func processListeners() ([]netip.AddrPort, error) {
	if runtime.GOOS != "linux" {
		return nil, errors.ErrUnsupported
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	inodes := make(map[string]bool, len(fds))
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if inode, ok := strings.CutPrefix(target, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	var addrs []netip.AddrPort
	for _, name := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		f, err := os.Open(name)
		if errors.Is(err, os.ErrNotExist) {
			continue // no IPv6
		}
		if err != nil {
			return nil, err
		}
		more, err := parseListeners(f, inodes)
		f.Close()
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, more...)
	}
	return addrs, nil
}

// parseListeners reads a /proc/net/tcp or tcp6 table and returns the local
// addresses of the sockets in the LISTEN state whose inodes are in inodes.
func parseListeners(r io.Reader, inodes map[string]bool) ([]netip.AddrPort, error) {
	const listen = "0A"
	var addrs []netip.AddrPort
	sc := bufio.NewScanner(r)
	sc.Scan() // the header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[3] != listen || !inodes[f[9]] {
			continue
		}
		a, err := parseProcAddr(f[1])
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, a)
	}
	return addrs, sc.Err()
}

// parseProcAddr parses "0100007F:1F90": an IPv4 or IPv6 address in hex,
// in 32-bit words of host byte order (little endian where Linux runs
// otelfr), and a port in hex.
func parseProcAddr(s string) (netip.AddrPort, error) {
	host, port, ok := strings.Cut(s, ":")
	b, err := hex.DecodeString(host)
	if !ok || err != nil || (len(b) != net.IPv4len && len(b) != net.IPv6len) {
		return netip.AddrPort{}, fmt.Errorf("otelfr/exporter: socket address %q", s)
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	var p uint16
	if _, err := fmt.Sscanf(port, "%X", &p); err != nil {
		return netip.AddrPort{}, fmt.Errorf("otelfr/exporter: socket address %q", s)
	}
	ip, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(ip, p), nil
}
