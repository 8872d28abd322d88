package testutil

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// AssertDropsSlowClients checks that the HTTP/1.1 server at addr, whose
// limits the caller has made small, does not let a client hold it: GET
// path with a request body that dribbles in a byte at a time, and a
// keep-alive connection left idle after its request, are each closed by
// the server within within; a request whose headers exceed maxHeaderBytes
// by far is refused with 431. It takes at most a few times within.
func AssertDropsSlowClients(t *testing.T, addr, path string, maxHeaderBytes int, within time.Duration) {
	t.Helper()
	request := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\n"

	t.Run("slow body", func(t *testing.T) {
		conn := dial(t, addr)
		_, err := io.WriteString(conn, request+"Content-Length: 65536\r\n\r\n")
		require.NoError(t, err)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := conn.Write([]byte{'x'}); err != nil {
						return // closed
					}
				}
			}
		})
		defer wg.Wait()
		defer close(stop)
		assertClosed(t, conn, within, "a connection whose body dribbles in")
	})

	t.Run("idle keep-alive", func(t *testing.T) {
		conn := dial(t, addr)
		_, err := io.WriteString(conn, request+"\r\n")
		require.NoError(t, err)
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(within)))
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err, "the first request is answered")
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.False(t, resp.Close, "the server keeps the connection alive")
		assertClosed(t, readerConn{br, conn}, within, "an idle keep-alive connection")
	})

	t.Run("large headers", func(t *testing.T) {
		conn := dial(t, addr)
		big := "X-Big: " + strings.Repeat("a", 2*maxHeaderBytes+8<<10) + "\r\n"
		// The server may answer, and close, before it has read everything.
		var wg sync.WaitGroup
		wg.Go(func() { _, _ = io.WriteString(conn, request+big+"\r\n") })
		defer wg.Wait()
		defer conn.Close()
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(within)))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode, "headers over %d bytes", maxHeaderBytes)
	})
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readerConn reads what a bufio.Reader holds before the connection.
type readerConn struct {
	io.Reader
	net.Conn
}

func (c readerConn) Read(p []byte) (int, error) { return c.Reader.Read(p) }

// assertClosed reads conn until the server closes it, failing t if that
// takes longer than within.
func assertClosed(t *testing.T, conn net.Conn, within time.Duration, what string) {
	t.Helper()
	start := time.Now()
	require.NoError(t, conn.SetReadDeadline(start.Add(within)))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("%s is still open after %v", what, within)
		return
	}
	t.Logf("%s closed by the server after %v (%v)", what, time.Since(start).Round(time.Millisecond), err)
}
