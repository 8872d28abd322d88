package testutil

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestS3Server writes an object signed with the server's credentials,
// reads it back unsigned, and reads it again after a stop and a start:
// what the object-storage tests rely on.
func TestS3Server(t *testing.T) {
	start := time.Now()
	s := StartS3(t)
	t.Logf("started in %v at %s", time.Since(start).Round(time.Millisecond), s.Endpoint)
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)

	body := make([]byte, 16<<20)
	for i := range body {
		body[i] = byte(i * 7 / 5)
	}
	object := s.Endpoint + "/" + s.Bucket + "/snapshots/a.trace"

	put := func(accessKey, secretKey string) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, object, bytes.NewReader(body))
		require.NoError(t, err)
		if accessKey != "" {
			signV4(req, body, s.Region, accessKey, secretKey, time.Now())
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	get := func() {
		t.Helper()
		t0 := time.Now()
		resp, err := client.Get(object)
		require.NoError(t, err)
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "unsigned GET: %.500s", got)
		require.True(t, bytes.Equal(body, got), "the object reads back as written (%d bytes of %d)", len(got), len(body))
		t.Logf("GET 16 MiB in %v", time.Since(t0).Round(time.Millisecond))
	}

	assert.Equal(t, http.StatusForbidden, put("", "").StatusCode, "an unsigned PUT is refused")
	assert.Equal(t, http.StatusForbidden, put(s.AccessKeyID, "wrong"+s.SecretAccessKey).StatusCode, "a PUT signed with a wrong key is refused")
	t0 := time.Now()
	require.Equal(t, http.StatusOK, put(s.AccessKeyID, s.SecretAccessKey).StatusCode, "a PUT signed with the server's credentials")
	t.Logf("PUT 16 MiB in %v", time.Since(t0).Round(time.Millisecond))
	get()

	client.CloseIdleConnections()
	t0 = time.Now()
	s.Stop()
	t.Logf("stopped in %v", time.Since(t0).Round(time.Millisecond))
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(s.Endpoint, "http://"), time.Second)
	if err == nil {
		conn.Close()
	}
	require.Error(t, err, "nothing listens on the S3 port once stopped")
	s.Stop() // a no-op

	t0 = time.Now()
	s.Start()
	t.Logf("started again in %v", time.Since(t0).Round(time.Millisecond))
	get()
}

// signV4 signs req with AWS Signature Version 4 for service s3, over the
// whole payload, as an SDK would.
func signV4(req *http.Request, payload []byte, region, accessKey, secretKey string, now time.Time) {
	now = now.UTC()
	amzDate, day := now.Format("20060102T150405Z"), now.Format("20060102")
	payloadHash := sha256Hex(payload)
	req.Header.Set("X-Amz-Date", amzDate)
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	const signed = "host;x-amz-content-sha256;x-amz-date"
	canonical := strings.Join([]string{
		req.Method,
		req.URL.EscapedPath(),
		req.URL.Query().Encode(),
		"host:" + req.URL.Host + "\n" +
			"x-amz-content-sha256:" + payloadHash + "\n" +
			"x-amz-date:" + amzDate + "\n",
		signed,
		payloadHash,
	}, "\n")
	scope := day + "/" + region + "/s3/aws4_request"
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + sha256Hex([]byte(canonical))
	key := []byte("AWS4" + secretKey)
	for _, part := range []string{day, region, "s3", "aws4_request"} {
		key = hmacSHA256(key, part)
	}
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+accessKey+"/"+scope+
		", SignedHeaders="+signed+", Signature="+hex.EncodeToString(hmacSHA256(key, toSign)))
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func hmacSHA256(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

// TestS3URL pins the URL's form: the one gocloud.dev/blob's s3 driver
// reads.
func TestS3URL(t *testing.T) {
	s := &S3Server{Endpoint: "http://127.0.0.1:20001", Bucket: "b", Region: "us-east-1"}
	u, err := url.Parse(s.URL())
	require.NoError(t, err)
	assert.Equal(t, "s3", u.Scheme)
	assert.Equal(t, "b", u.Host)
	assert.Equal(t, url.Values{"endpoint": {"http://127.0.0.1:20001"}, "region": {"us-east-1"}, "use_path_style": {"true"}}, u.Query())
}
