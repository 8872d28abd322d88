package analysis

import (
	"encoding/json"
	"strconv"
	"time"
)

// jsonDuration encodes a duration in Go syntax, rounded to the microsecond:
// "240.118ms" reads better in the CLI's JSON and the viewer than
// nanoseconds.
type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) {
	td := time.Duration(d)
	if td >= time.Microsecond || td <= -time.Microsecond {
		td = td.Round(time.Microsecond)
	}
	return []byte(strconv.Quote(td.String())), nil
}

// The MarshalJSON methods below shadow each time.Duration field with a
// jsonDuration of the same JSON name: encoding/json prefers the shallower
// field, so the embedded struct supplies every other field with its tags.

// MarshalJSON implements [json.Marshaler].
func (d Diagnosis) MarshalJSON() ([]byte, error) {
	type plain Diagnosis
	return json.Marshal(struct {
		plain
		Duration jsonDuration `json:"duration"`
	}{plain(d), jsonDuration(d.Duration)})
}

// MarshalJSON implements [json.Marshaler].
func (g Goroutine) MarshalJSON() ([]byte, error) {
	type plain Goroutine
	return json.Marshal(struct {
		plain
		Time jsonDuration `json:"time"`
	}{plain(g), jsonDuration(g.Time)})
}

// MarshalJSON implements [json.Marshaler].
func (gc GC) MarshalJSON() ([]byte, error) {
	type plain GC
	return json.Marshal(struct {
		plain
		MarkOverlap jsonDuration `json:"mark_overlap"`
		STWOverlap  jsonDuration `json:"stw_overlap"`
		Assist      jsonDuration `json:"assist"`
	}{plain(gc), jsonDuration(gc.MarkOverlap), jsonDuration(gc.STWOverlap), jsonDuration(gc.Assist)})
}

// MarshalJSON implements [json.Marshaler].
func (e Episode) MarshalJSON() ([]byte, error) {
	type plain Episode
	return json.Marshal(struct {
		plain
		Duration jsonDuration `json:"duration"`
	}{plain(e), jsonDuration(e.Duration)})
}
