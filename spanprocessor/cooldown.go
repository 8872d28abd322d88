package spanprocessor

import (
	"container/list"
	"time"
)

// maxCooldownKeys bounds the trigger keys (reason and span name) whose
// cooldown the worker remembers. Span names can be many (a route with IDs
// in it); past the bound the key that fired longest ago is forgotten, and
// may fire again before its cooldown is over.
const maxCooldownKeys = 1024

// cooldowns remembers when each trigger key last got a snapshot, in the
// order they fired, so that expired keys are forgotten from the front in
// constant time per key instead of by scanning them all.
type cooldowns struct {
	keys  map[string]*list.Element // → a *fired in order
	order list.List                // *fired, the oldest first
}

type fired struct {
	key string
	at  time.Time
}

// cooling reports whether key got a snapshot less than d before now.
func (c *cooldowns) cooling(d time.Duration, key string, now time.Time) bool {
	if d <= 0 {
		return false
	}
	c.forget(d, now)
	_, ok := c.keys[key]
	return ok
}

// fired starts key's cooldown at now.
func (c *cooldowns) fired(d time.Duration, key string, now time.Time) {
	if d <= 0 {
		return
	}
	if c.keys == nil {
		c.keys = make(map[string]*list.Element)
	}
	if e, ok := c.keys[key]; ok {
		e.Value.(*fired).at = now
		c.order.MoveToBack(e)
		return
	}
	c.forget(d, now)
	if len(c.keys) >= maxCooldownKeys {
		c.remove(c.order.Front())
	}
	c.keys[key] = c.order.PushBack(&fired{key: key, at: now})
}

// forget drops the keys whose cooldown is over at now.
func (c *cooldowns) forget(d time.Duration, now time.Time) {
	for e := c.order.Front(); e != nil && now.Sub(e.Value.(*fired).at) >= d; e = c.order.Front() {
		c.remove(e)
	}
}

func (c *cooldowns) remove(e *list.Element) {
	delete(c.keys, e.Value.(*fired).key)
	c.order.Remove(e)
}

// len returns the number of keys remembered.
func (c *cooldowns) len() int { return len(c.keys) }
