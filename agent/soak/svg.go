package soak

import (
	"fmt"
	"html"
	"strings"
	"time"
)

// colors of the fault kinds in the picture.
var colors = map[Kind]string{
	Crash: "#d62728", Kill9: "#ff7f0e", Isolate: "#9467bd", CutPair: "#8c564b",
	CutSite: "#e377c2", RestartAll: "#7f7f7f", Standby: "#17becf",
}

// SVG draws the timeline: a row per PBX node with a bar while it ran
// its group, a row of the faults, and a red line at every breach.
func (t *Timeline) SVG() string {
	runs, _ := t.closed()
	const left, width, rowH = 70, 1100, 22
	total := t.lastAt
	if total <= 0 {
		total = time.Second
	}
	x := func(d time.Duration) float64 { return left + float64(width)*float64(d)/float64(total) }
	rows := len(t.nodes) + 1
	h := (rows+1)*rowH + 30
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", left+width+20, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	for i, n := range t.nodes {
		y := 10 + i*rowH
		fmt.Fprintf(&b, `<text x="4" y="%d">%s</text>`+"\n", y+14, html.EscapeString(n))
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#ddd"/>`+"\n", left, y+rowH/2, left+width, y+rowH/2)
		for _, sp := range runs[n] {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#2ca02c"><title>%s holds %.2fs–%.2fs</title></rect>`+"\n",
				x(sp.from), y+3, max(x(sp.to)-x(sp.from), 0.5), rowH-6, n, sp.from.Seconds(), sp.to.Seconds())
		}
	}
	fy := 10 + len(t.nodes)*rowH
	fmt.Fprintf(&b, `<text x="4" y="%d">faults</text>`+"\n", fy+14)
	for _, f := range t.Faults {
		w := max(x(f.End)-x(f.Start), 2)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" opacity="0.8"><title>%s</title></rect>`+"\n",
			x(f.Start), fy+3, w, rowH-6, colors[f.Kind], html.EscapeString(f.String()))
	}
	for _, br := range t.Breaches {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="5" x2="%.1f" y2="%d" stroke="red" stroke-width="2"><title>%s</title></line>`+"\n",
			x(br.At), x(br.At), fy+rowH, html.EscapeString(br.String()))
	}
	ay := fy + rowH + 14
	for s := time.Duration(0); s <= total; s += tick(total) {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%ds</text>`+"\n", x(s), ay, int(s.Seconds()))
	}
	lx := left
	for _, k := range kinds {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", lx, ay+6, colors[k], lx+13, ay+15, k)
		lx += 90
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// tick is the axis step for a timeline of total.
func tick(total time.Duration) time.Duration {
	for _, s := range []time.Duration{5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute} {
		if total/s <= 20 {
			return s
		}
	}
	return 10 * time.Minute
}
