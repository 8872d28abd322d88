package exporter

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// DefaultBaseURL pointed the spans of a production process, one serving
// others, at 127.0.0.1 without saying so.
func TestDefaultBaseURLPointsAtLoopbackSilently(t *testing.T) {
	e := New(nil, nil)
	require.True(t, e.loopback, "the default is a loopback URL")
	assert.False(t, New(nil, nil, WithBaseURL("https://fr.example.com/snapshots/")).loopback)
	assert.True(t, New(nil, nil, WithBaseURL("http://localhost:8081/")).loopback)
	assert.True(t, New(nil, nil, WithBaseURL("http://[::1]:8081/")).loopback)

	listening := func(addrs ...string) func() ([]netip.AddrPort, error) {
		return func() ([]netip.AddrPort, error) {
			var out []netip.AddrPort
			for _, a := range addrs {
				out = append(out, netip.MustParseAddrPort(a))
			}
			return out, nil
		}
	}
	assert.NoError(t, e.warnLoopback(listening("127.0.0.1:8080", "[::1]:8081", "[::ffff:127.0.0.1]:9")),
		"a process on loopback only: its reader is on this machine")
	err := e.warnLoopback(listening("127.0.0.1:8081", "0.0.0.0:8080"))
	require.ErrorIs(t, err, ErrLoopbackURL, "a process serving others")
	assert.Contains(t, err.Error(), "0.0.0.0:8080")
	assert.Contains(t, err.Error(), EnvBaseURL, "says how to fix it")
	assert.NoError(t, e.warnLoopback(func() ([]netip.AddrPort, error) { return nil, errors.ErrUnsupported }),
		"cannot tell: no warning")
}

func TestParseListeners(t *testing.T) {
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0
   1: 0100007F:10E1 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0 100 0 0 10 0
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 333 1 0 100 0 0 10 0
   3: 0100007F:928C 0100007F:A4E5 01 00000000:00000000 03:00000E06 00000000     0        0 111 3 0
`
	tcp6 := `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 444 1 0
   1: 0000000000000000FFFF00000100007F:1F92 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 555 1 0
`
	ours := map[string]bool{"111": true, "222": true, "444": true, "555": true}
	got, err := parseListeners(strings.NewReader(tcp), ours)
	require.NoError(t, err)
	assert.Equal(t, []netip.AddrPort{
		netip.MustParseAddrPort("0.0.0.0:8080"),
		netip.MustParseAddrPort("127.0.0.1:4321"),
	}, got, "listening sockets of this process only")
	got, err = parseListeners(strings.NewReader(tcp6), ours)
	require.NoError(t, err)
	assert.Equal(t, []netip.AddrPort{
		netip.MustParseAddrPort("[::1]:8081"),
		netip.MustParseAddrPort("[::ffff:127.0.0.1]:8082"),
	}, got)

	_, err = parseListeners(strings.NewReader("header\n 0: 0100:1F90 0:0 0A 0 0 0 0 0 111\n"), ours)
	assert.Error(t, err, "a malformed address")
}

func TestProcessListeners(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	addrs, err := processListeners()
	require.NoError(t, err)
	assert.Contains(t, addrs, netip.MustParseAddrPort(l.Addr().String()))
}
