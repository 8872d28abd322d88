package viewer

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/otelfr/otel-flightrecorder/analysis"
)

// Timeline geometry, in SVG user units.
const (
	tlWidth  = 1200
	tlLabel  = 230 // the goroutine labels' column
	tlRight  = 12
	tlGCRow  = 16
	tlLane   = 24
	tlBar    = 16
	tlAxis   = 26
	tlTopPad = 6
)

// stateColors match the .s-* classes of style.css.
var stateColors = map[string]string{
	"running": "#22c55e", "runnable": "#a3e635", "syscall": "#f59e0b",
	"chan": "#60a5fa", "select": "#818cf8", "mutex": "#ef4444", "cond": "#f472b6",
	"sleep": "#cbd5e1", "network": "#22d3ee", "gcassist": "#a855f7", "other": "#94a3b8",
}

// renderTimeline draws the diagnosis's interval as SVG: GC phases across
// the top, one lane per goroutine coloured by state, and an arrow from
// each waker's lane to the goroutine it woke. Hovering a stretch shows its
// state, duration and, for the longest waits, the stack.
func renderTimeline(d *analysis.Diagnosis) template.HTML {
	if d.Duration <= 0 || len(d.Goroutines) == 0 {
		return ""
	}
	plot := float64(tlWidth - tlLabel - tlRight)
	x := func(t time.Time) float64 {
		f := float64(t.Sub(d.Start)) / float64(d.Duration)
		return float64(tlLabel) + max(0, min(1, f))*plot
	}
	lanesTop := tlTopPad + tlGCRow + 6
	height := lanesTop + len(d.Goroutines)*tlLane + tlAxis
	laneY := map[int64]int{}
	for i, g := range d.Goroutines {
		laneY[g.ID] = lanesTop + i*tlLane
	}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="timeline" viewBox="0 0 %d %d" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="goroutine timeline">`, tlWidth, height)
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#111827"/></marker></defs>`)

	// GC phases across the top, and faintly through the lanes.
	fmt.Fprintf(&b, `<text x="4" y="%d">GC</text>`, tlTopPad+12)
	for _, p := range d.GC.Phases {
		x0, x1 := x(p.Start), x(p.End)
		fill, label := "#e9d5ff", "GC mark phase"
		if p.Kind == "stw" {
			fill, label = "#7c3aed", "stop the world"
		}
		fmt.Fprintf(&b, `<rect class="gc %s" x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s, %s</title></rect>`,
			esc(p.Kind), x0, tlTopPad, max(x1-x0, 1), tlGCRow, fill, label, fmtDuration(p.End.Sub(p.Start)))
		if p.Kind == "stw" {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#7c3aed" opacity="0.12"/>`,
				x0, lanesTop, max(x1-x0, 1), len(d.Goroutines)*tlLane)
		}
	}

	episodes := map[int64][]analysis.Episode{}
	for _, e := range d.Episodes {
		episodes[e.Goroutine] = append(episodes[e.Goroutine], e)
	}
	for _, g := range d.Goroutines {
		y := laneY[g.ID]
		fmt.Fprintf(&b, `<g class="lane" data-goroutine="%d">`, g.ID)
		entry := g.Entry
		if i := strings.LastIndexByte(entry, '/'); i >= 0 {
			entry = entry[i+1:]
		}
		if len(entry) > 24 {
			entry = entry[:23] + "…"
		}
		fmt.Fprintf(&b, `<text x="4" y="%d"><title>%s</title>g%d %s · %s</text>`, y+tlBar-4, esc(g.Entry), g.ID, esc(string(g.Role)), esc(entry))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%d" fill="#f3f4f6"/>`, tlLabel, y, plot, tlBar)
		for _, s := range g.Segments {
			x0, x1 := x(s.Start), x(s.End)
			title := fmt.Sprintf("goroutine %d: %s for %s", g.ID, s.State, fmtDuration(s.End.Sub(s.Start)))
			for _, e := range episodes[g.ID] {
				if e.State == s.State && !e.Start.Before(s.Start) && e.Start.Before(s.End) {
					title += stackTitle(e)
				}
			}
			fmt.Fprintf(&b, `<rect class="seg s-%s" x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s</title></rect>`,
				stateClass(s.State), x0, y, max(x1-x0, 0.5), tlBar, stateColors[stateClass(s.State)], esc(title))
		}
		b.WriteString(`</g>`)
	}

	// Wake-ups: from the waker's lane to the woken goroutine's, at the end
	// of the wait.
	for _, e := range d.Episodes {
		if e.Waker == nil {
			continue
		}
		from, okFrom := laneY[e.Waker.Goroutine]
		to, okTo := laneY[e.Goroutine]
		if !okFrom || !okTo || from == to {
			continue
		}
		xe := x(e.Start.Add(e.Duration))
		y0, y1 := from+tlBar/2, to+tlBar/2
		if y1 > y0 {
			y1 -= tlBar / 2
		} else {
			y1 += tlBar / 2
		}
		fmt.Fprintf(&b, `<line class="wake" x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#111827" stroke-width="1.5" marker-end="url(#arrow)"><title>goroutine %d woke goroutine %d</title></line>`,
			xe, y0, xe, y1, e.Waker.Goroutine, e.Goroutine)
	}

	// Time axis, relative to the span's start.
	axisY := lanesTop + len(d.Goroutines)*tlLane + 4
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#9ca3af"/>`, tlLabel, axisY, tlWidth-tlRight, axisY)
	for i := 0; i <= 5; i++ {
		t := d.Start.Add(d.Duration * time.Duration(i) / 5)
		xt := x(t)
		anchor := "middle"
		if i == 5 {
			anchor = "end"
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#9ca3af"/><text x="%.1f" y="%d" text-anchor="%s">+%s</text>`,
			xt, axisY, xt, axisY+4, xt, axisY+16, anchor, fmtDuration(t.Sub(d.Start)))
	}
	b.WriteString(`</svg>`)

	// The legend uses the page's classes.
	b.WriteString(`<p class="legend">`)
	for _, s := range []string{"running", "runnable", "syscall", "blocked.chan", "blocked.select", "blocked.mutex", "blocked.cond", "blocked.sleep", "blocked.network", "gc_assist", "blocked.other"} {
		cls := strings.ReplaceAll(strings.TrimPrefix(s, "blocked."), "_", "")
		fmt.Fprintf(&b, `<span class="bucket s-%s">%s</span> `, cls, s)
	}
	b.WriteString(`<span class="muted">· arrows: wake-ups · hover a stretch for details</span></p>`)
	return template.HTML(b.String()) //nolint:gosec // every interpolated string is escaped by esc
}

func stackTitle(e analysis.Episode) string {
	var b strings.Builder
	for i, f := range e.Stack {
		if i == 8 {
			b.WriteString("\n  …")
			break
		}
		b.WriteString("\n  " + f.Func)
	}
	if e.Waker != nil {
		fmt.Fprintf(&b, "\nwoken by goroutine %d", e.Waker.Goroutine)
		if len(e.Waker.Stack) > 0 {
			b.WriteString(" in " + e.Waker.Stack[0].Func)
		}
	}
	return b.String()
}

func esc(s string) string { return template.HTMLEscapeString(s) }
