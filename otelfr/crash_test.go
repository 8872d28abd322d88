package otelfr_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelfr/otel-flightrecorder/analysis"
	"github.com/otelfr/otel-flightrecorder/otelfr"
)

// crashChild builds testdata/crashchild into the test's directory (from
// the build cache after the first test), without the race detector: its
// shadow memory leaves no room for an address-space limit.
func crashChild(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "crashchild")
	out, err := exec.Command("go", "build", "-o", path, "./testdata/crashchild").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return path
}

// crash is what a crashed child left.
type crash struct {
	dir    string
	open   []string // span IDs of the spans it kept open
	death  time.Time
	stderr string
}

// runChild runs the crash child in disk mode on a new directory until it
// dies as told; kill, if set, is how long after its start the test kills
// it. limit wraps its command line (a memory limit).
func runChild(t *testing.T, die string, kill time.Duration, limit func(args []string) []string) crash {
	return runChildIn(t, die, kill, limit, nil)
}

// runChildIn is runChild with started, if set, called with the child's
// PID as soon as it runs.
func runChildIn(t *testing.T, die string, kill time.Duration, limit func(args []string) []string, started func(pid int)) crash {
	t.Helper()
	c := crash{dir: t.TempDir()}
	args := []string{crashChild(t), "-dir", c.dir, "-die", die}
	if limit != nil {
		args = limit(args)
	}
	cmd := exec.Command(args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	if started != nil {
		started(cmd.Process.Pid)
	}
	begun := time.Now()
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
		}
	})
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "open" {
			c.open = append(c.open, f[2])
		}
		if sc.Text() == "ready" {
			break
		}
	}
	if len(c.open) != 3 {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("the child printed %d open spans, not 3; stderr: %s", len(c.open), stderr.String())
	}
	if kill > 0 {
		time.Sleep(time.Until(begun.Add(kill)))
		c.death = time.Now()
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	}
	go func() { _, _ = bufio.NewReader(stdout).WriteTo(discard{}) }()
	err = cmd.Wait()
	killed = true
	if kill == 0 {
		c.death = time.Now()
	}
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "the child dies")
	c.stderr = stderr.String()
	t.Logf("child died (%v) %v after its start", err, c.death.Sub(begun).Round(time.Millisecond))
	return c
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// checkCrash starts a recorder over the crashed child's ring and checks
// its crash snapshot: a window reaching at least 5s back from the death,
// and the child's open spans listed as open.
func checkCrash(t *testing.T, c crash) *otelfr.Snapshot {
	t.Helper()
	_, err := os.Stat(filepath.Join(c.dir, "clean"))
	require.ErrorIs(t, err, os.ErrNotExist, "a crashed ring is not marked clean")

	rec, err := otelfr.Start(otelfr.WithDisk(c.dir), otelfr.WithMinAge(6*time.Second), otelfr.WithMaxBytes(1<<30))
	require.NoError(t, err)
	defer func() { require.NoError(t, rec.Stop(t.Context())) }()
	var buf bytes.Buffer
	s, err := rec.WriteCrashSnapshot(t.Context(), &buf)
	require.NoError(t, err)
	assert.Equal(t, otelfr.ReasonCrash, s.Reason)
	assert.Equal(t, int64(buf.Len()), s.Size())
	// What the crash loses: the generation being written, from the
	// window's end to the death.
	t.Logf("crash snapshot: %d bytes, window %v, ends %v before the death",
		s.Size(), s.End.Sub(s.Start).Round(time.Millisecond), c.death.Sub(s.End).Round(time.Millisecond))
	assert.False(t, s.Start.After(c.death.Add(-5*time.Second)), "the window %v..%v covers 5s before the death at %v", s.Start, s.End, c.death)
	// At most the generation in progress is lost: about a second, more
	// on a loaded machine.
	assert.True(t, s.End.After(c.death.Add(-3*time.Second)), "the window ends %v before the death", c.death.Sub(s.End))

	open, err := analysis.OpenSpans(buf.Bytes())
	require.NoError(t, err)
	got := map[string]analysis.SpanInfo{}
	for _, sp := range open {
		got[sp.SpanID.String()] = sp
	}
	for _, id := range c.open {
		sp, ok := got[id]
		if assert.True(t, ok, "span %s open at the crash is listed", id) {
			assert.Equal(t, analysis.StatusPartial, sp.Status)
			assert.True(t, strings.HasPrefix(sp.Name, "held-"), sp.Name)
			assert.True(t, sp.Start.Before(c.death))
		}
	}
	require.NoError(t, rec.RemoveCrash())
	_, err = rec.WriteCrashSnapshot(t.Context(), &buf)
	require.ErrorIs(t, err, otelfr.ErrNoCrash, "removed")
	return s
}

// TestCrashSnapshotAfterSIGKILL kills a process recording in disk mode
// under load after 7.5s: the next start makes a crash snapshot of the last
// seconds before the kill that lists the spans open then.
func TestCrashSnapshotAfterSIGKILL(t *testing.T) {
	c := runChild(t, "kill", 7500*time.Millisecond, nil)
	s := checkCrash(t, c)
	assert.Empty(t, s.CrashOutput, "SIGKILL leaves the runtime no word")
}

// TestCrashSnapshotAfterPanic: the panic's text is on the snapshot.
func TestCrashSnapshotAfterPanic(t *testing.T) {
	c := runChild(t, "panic", 0, nil)
	require.Contains(t, c.stderr, "panic: crashchild: deliberate panic")
	s := checkCrash(t, c)
	assert.Contains(t, s.CrashOutput, "panic: crashchild: deliberate panic")
	assert.Contains(t, s.CrashOutput, "main.main()")
}

// TestCrashSnapshotAfterOutOfMemory limits the child's address space
// (RLIMIT_AS) so that its allocations fail and the runtime dies with
// "fatal error: out of memory".
func TestCrashSnapshotAfterOutOfMemory(t *testing.T) {
	sh, err := exec.LookPath("sh")
	require.NoError(t, err)
	c := runChild(t, "oom", 0, func(args []string) []string {
		// 3 GiB: the runtime's own reservations and the load fit, the
		// child's 64 MiB allocations soon do not. Allocated, not touched.
		return append([]string{sh, "-c", `ulimit -v 3145728 && exec "$@"`, "sh"}, args...)
	})
	require.Contains(t, c.stderr, "fatal error: out of memory")
	s := checkCrash(t, c)
	// The runtime writes a fatal error's message to standard error only
	// (golang/go#76859); the crash output has the stacks, starting at the
	// failed allocation.
	assert.Contains(t, s.CrashOutput, "runtime.throw")
	assert.Contains(t, s.CrashOutput, "runtime.mallocgc")
	assert.Contains(t, s.CrashOutput, "main.main()")
}

// TestCrashSnapshotAfterCgroupOOMKill runs the child in a memory cgroup of
// its own, below this process's (cgroup v1 memory.limit_in_bytes, or v2
// memory.max), 256 MiB, where it grows until the kernel's OOM killer kills
// it. It needs a memory controller this process may create a cgroup in
// (root, in most containers); where there is none it is skipped, saying
// why.
func TestCrashSnapshotAfterCgroupOOMKill(t *testing.T) {
	cg, limitFile, err := newMemoryCgroup(t, 256<<20)
	if err != nil {
		t.Skipf("no memory cgroup to make here: %v", err)
	}
	c := runChildIn(t, "grow", 0, nil, func(pid int) {
		require.NoError(t, os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644))
	})
	t.Logf("cgroup %s, %s", cg, limitFile)
	events := "memory.events" // v2
	if limitFile == "memory.limit_in_bytes" {
		events = "memory.oom_control" // v1
	}
	b, err := os.ReadFile(filepath.Join(cg, events))
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^oom_kill [1-9]`, string(b), "the kernel's OOM killer killed it")
	s := checkCrash(t, c)
	assert.Empty(t, s.CrashOutput, "the OOM killer's SIGKILL leaves the runtime no word")
}

// newMemoryCgroup makes a cgroup below this process's, limited to limit
// bytes of memory, removed at the end of the test.
func newMemoryCgroup(t *testing.T, limit int64) (dir, file string, err error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", "", err
	}
	var base string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		switch {
		case len(f) == 3 && f[1] == "memory":
			base, file = filepath.Join("/sys/fs/cgroup/memory", f[2]), "memory.limit_in_bytes"
		case len(f) == 3 && f[0] == "0" && f[1] == "" && base == "":
			ctl, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", f[2], "cgroup.subtree_control"))
			if err == nil && strings.Contains(string(ctl), "memory") {
				base, file = filepath.Join("/sys/fs/cgroup", f[2]), "memory.max"
			}
		}
	}
	if base == "" {
		return "", "", fmt.Errorf("no memory controller in /proc/self/cgroup:\n%s", b)
	}
	dir = filepath.Join(base, fmt.Sprintf("otelfr-crash-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", "", err
	}
	t.Cleanup(func() {
		// Empty once the child is dead; the kernel may take a moment.
		for range 50 {
			if os.Remove(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("cgroup %s left behind", dir)
	})
	if err := os.WriteFile(filepath.Join(dir, file), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
		return "", "", err
	}
	// No swap to flee into (cgroup v1 only has the file with swap accounting).
	_ = os.WriteFile(filepath.Join(dir, "memory.memsw.limit_in_bytes"), []byte(strconv.FormatInt(limit, 10)), 0o644)
	return dir, file, nil
}
