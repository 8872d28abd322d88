package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/otelfr/otel-flightrecorder/analysis"
	"github.com/otelfr/otel-flightrecorder/otelfr"
)

// isDir reports whether name is a directory: a disk ring
// (otelfr.WithDisk), which analyze reads with otelfr.ReadDisk.
func isDir(name string) bool {
	st, err := os.Stat(name)
	return err == nil && st.IsDir()
}

// readRing reads the disk ring in dir, and what it says of itself.
func readRing(dir string) ([]byte, ringReport, error) {
	var buf bytes.Buffer
	s, err := otelfr.ReadDisk(dir, &buf)
	if err != nil {
		return nil, ringReport{}, err
	}
	return buf.Bytes(), ringReport{Dir: dir, Reason: s.Reason, WindowStart: s.Start, WindowEnd: s.End, Size: s.Size(), CrashOutput: s.CrashOutput}, nil
}

// ringReport is what `otelfr analyze DIR` prints, and its JSON.
type ringReport struct {
	Dir         string              `json:"dir"`
	Reason      string              `json:"reason"`
	WindowStart time.Time           `json:"window_start"`
	WindowEnd   time.Time           `json:"window_end"`
	Size        int64               `json:"size"`
	CrashOutput string              `json:"crash_output,omitempty"`
	OpenSpans   []analysis.SpanInfo `json:"open_spans"`
}

// crashOutputLines is how much of the crash output analyze prints; --json
// has all of it.
const crashOutputLines = 40

func printRing(w io.Writer, r ringReport) {
	fmt.Fprintf(w, "%s: disk ring (%s), window %s to %s (%v), %d bytes\n", printable(r.Dir), r.Reason,
		r.WindowStart.Format(time.RFC3339Nano), r.WindowEnd.Format(time.RFC3339Nano), round(r.WindowEnd.Sub(r.WindowStart)), r.Size)
	if r.Reason == otelfr.ReasonCrash {
		if r.CrashOutput == "" {
			fmt.Fprintln(w, "crash output: none (killed without a word: SIGKILL, the OOM killer)")
		} else {
			lines := strings.Split(strings.TrimRight(r.CrashOutput, "\n"), "\n")
			fmt.Fprintln(w, "crash output:")
			for i, l := range lines {
				if i == crashOutputLines {
					fmt.Fprintf(w, "  (%d more lines; --json has them)\n", len(lines)-i)
					break
				}
				fmt.Fprintf(w, "  %s\n", printable(l))
			}
		}
	}
	printSpans(w, "open at the end of the window", r.OpenSpans)
}
