package pg

import (
	"time"

	"github.com/hatui/hatui/protocol"
)

// CatchUpMeter follows a standby's gap to its master over successive
// readings and estimates how fast it closes, so that a standby replaying
// a day's backlog shows its progress instead of looking broken.
type CatchUpMeter struct {
	// Window is how far back the rate looks; 30 s when zero.
	Window time.Duration

	since   time.Time
	samples []gapSample
}

type gapSample struct {
	at     time.Time
	behind int64
}

// Observe records one reading. catching says whether the standby is
// catching up now; when it is not, the meter starts afresh and Observe
// returns nil.
func (m *CatchUpMeter) Observe(at time.Time, behind int64, catching bool) *protocol.CatchUp {
	if !catching {
		m.samples, m.since = nil, time.Time{}
		return nil
	}
	if m.since.IsZero() {
		m.since = at
	}
	window := m.Window
	if window <= 0 {
		window = 30 * time.Second
	}
	m.samples = append(m.samples, gapSample{at, behind})
	for len(m.samples) > 2 && at.Sub(m.samples[0].at) > window {
		m.samples = m.samples[1:]
	}
	c := &protocol.CatchUp{BytesBehind: behind, Since: m.since}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	if dt := last.at.Sub(first.at).Seconds(); dt > 0 {
		c.RateBytes = float64(first.behind-last.behind) / dt
		if c.RateBytes > 0 {
			eta := float64(behind) / c.RateBytes
			c.ETASeconds = &eta
		}
	}
	return c
}
