package reports

import (
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/redisha/redisha/scenarios/compare"
	"github.com/redisha/redisha/scenarios/history"
	"github.com/redisha/redisha/scenarios/result"
)

// Run is a run directory loaded back: the result and the raw records.
type Run struct {
	Dir    string
	Result *result.Result
	Ops    []history.Op
	Events []history.Event
}

// LoadRun reads a run directory.
func LoadRun(dir string) (*Run, error) {
	r, err := result.Read(dir)
	if err != nil {
		return nil, err
	}
	return WithRecords(dir, r)
}

// WithRecords pairs a result with the records in its run directory (absent files: none).
func WithRecords(dir string, r *result.Result) (*Run, error) {
	run := &Run{Dir: dir, Result: r}
	var err error
	if run.Ops, err = history.ReadFile[history.Op](filepath.Join(dir, result.HistoryFile)); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	if run.Events, err = history.ReadFile[history.Event](filepath.Join(dir, result.EventsFile)); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	history.SortEvents(run.Events)
	return run, nil
}

// Chart geometry.
const (
	chartLeft  = 120.0
	chartWidth = 1000.0
	laneH      = 16.0
	laneGap    = 4.0
	barH       = 90.0
	latH       = 130.0
	maxDots    = 8000
)

type svgRect struct {
	X, Y, W, H  float64
	Fill, Title string
	Opacity     float64
}

type svgLine struct {
	X1, Y1, X2, Y2 float64
	Stroke, Dash   string
	Width          float64
	Title          string
}

type svgText struct {
	X, Y         float64
	Text, Anchor string
	Size         float64
	Fill, Weight string
}

type svgDot struct {
	X, Y  float64
	Fill  string
	Title string
}

type chart struct {
	Width, Height float64
	Rects         []svgRect
	Lines         []svgLine
	Texts         []svgText
	Dots          []svgDot
}

type page struct {
	Class    compare.Class // pass, finding, fail, error: the badge's colour
	R        *result.Result
	Verdict  string
	Chart    chart
	Events   []evRow
	Dials    []history.Op
	Legend   []svgRect
	Workload string
	Params   string
	// OpsAbsent: the run recorded client operations but this directory does not hold them (an
	// evidence copy keeps result.json and events.jsonl only), so the operation charts are left
	// out rather than drawn empty.
	OpsAbsent bool
	Files     []string // the run's files present beside index.html
}

type evRow struct {
	T, Source, Kind, Node, Detail string
}

var statusColor = map[history.Status]string{history.OK: "#2e9d57", history.Fail: "#d64545", history.Indeterminate: "#f0a020"}

// RenderHTML writes dir/index.html for a loaded run.
func RenderHTML(run *Run) error {
	p := buildPage(run)
	f, err := os.Create(filepath.Join(run.Dir, result.HTMLFile))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pageTmpl.Execute(f, p); err != nil {
		return err
	}
	return f.Close()
}

// builder lays out the timeline chart of one run: lanes from the top, one section at a time.
type builder struct {
	run        *Run
	r          *result.Result
	c          *chart
	start, end time.Time
	span       float64 // seconds from start to end
	y          float64 // the next lane's top
	step       int     // draw every step-th ordinary op, so huge runs stay light
}

func buildPage(run *Run) page {
	r := run.Result
	p := page{R: r, Class: compare.ClassOf(r), Verdict: Verdict(r), Workload: kvString(r.Workload), Params: kvString(r.StackParams)}
	b := newBuilder(run, &p.Chart)
	vip := vipEvents(run.Events)
	b.roleLanes()
	b.vipLane(vip)
	b.routeLanes()
	p.OpsAbsent = len(run.Ops) == 0 && r.Summary.Ops > 0
	if !p.OpsAbsent {
		b.writeLanes()
		b.opBars()
		b.latencyDots()
	}
	top, bottom := 26.0, b.y
	b.timeAxis(bottom)
	b.faultShades(top, bottom)
	b.failoverMarks(top, bottom)
	b.vipMarks(vip, top, bottom)
	b.c.Height = b.y
	p.Legend = legend
	p.Events = eventRows(run.Events, r.WorkStart)
	for _, o := range run.Ops {
		if o.Kind == "dial" {
			p.Dials = append(p.Dials, o)
		}
	}
	for _, f := range []string{result.ResultFile, result.HistoryFile, result.EventsFile, "junit.xml", "logs"} {
		if _, err := os.Stat(filepath.Join(run.Dir, f)); err == nil {
			if f == "logs" {
				f = "logs/"
			}
			p.Files = append(p.Files, f)
		}
	}
	return p
}

// newBuilder spans the chart over the workload and every recorded operation.
func newBuilder(run *Run, c *chart) *builder {
	r := run.Result
	start, end := r.WorkStart, r.WorkEnd
	for _, o := range run.Ops {
		if start.IsZero() || o.Invoke.Before(start) {
			start = o.Invoke
		}
		if o.Complete.After(end) {
			end = o.Complete
		}
	}
	if start.IsZero() || !end.After(start) {
		end = start.Add(time.Second)
	}
	step := 1
	if n := len(run.Ops); n > maxDots {
		step = n/maxDots + 1
	}
	c.Width = chartLeft + chartWidth + 20
	return &builder{run: run, r: r, c: c, start: start, end: end, span: end.Sub(start).Seconds(), y: 30, step: step}
}

func (b *builder) x(t time.Time) float64 {
	v := t.Sub(b.start).Seconds() / b.span * chartWidth
	return chartLeft + math.Max(0, math.Min(chartWidth, v))
}

func (b *builder) label(s string) {
	b.c.Texts = append(b.c.Texts, svgText{X: chartLeft - 8, Y: b.y + laneH - 4, Text: s, Anchor: "end", Size: 12, Fill: "#222"})
}

func (b *builder) sectionTitle(s string) {
	b.c.Texts = append(b.c.Texts, svgText{X: 4, Y: b.y + 12, Text: s, Size: 12, Fill: "#555", Weight: "bold"})
	b.y += 18
}

func (b *builder) nextLane() { b.y += laneH + laneGap }

// state is one span of a lane: a state that holds from its time until the next one's.
type state struct {
	from        time.Time
	fill, title string  // title: a format whose one %s is the span's start time
	text        string  // drawn inside the span when it is wider than minText
	minText     float64 // 0: never
}

// lane draws consecutive states on the current lane; the last lasts until the chart's end.
func (b *builder) lane(states []state) {
	for i, s := range states {
		to := b.end
		if i+1 < len(states) {
			to = states[i+1].from
		}
		if to.Before(b.start) {
			continue
		}
		from := s.from
		if from.Before(b.start) {
			from = b.start
		}
		b.c.Rects = append(b.c.Rects, svgRect{X: b.x(from), Y: b.y, W: math.Max(1, b.x(to)-b.x(from)), H: laneH, Fill: s.fill, Opacity: 1,
			Title: fmt.Sprintf(s.title, from.Format("15:04:05.000"))})
		if s.minText > 0 && b.x(to)-b.x(from) > s.minText {
			b.c.Texts = append(b.c.Texts, svgText{X: b.x(from) + 4, Y: b.y + laneH - 4, Text: s.text, Size: 11, Fill: "#fff"})
		}
	}
}

// lit quotes recorded text for use in a state's title format.
func lit(s string) string { return strings.ReplaceAll(s, "%", "%%") }

var roleColor = map[string]string{"master": "#2b6cb0", "slave": "#a0aec0", "unreachable": "#1a202c"}

// roleLanes draws each redis node's replication role as the host-side observer saw it.
func (b *builder) roleLanes() {
	roles := map[string][]state{}
	var nodes []string
	for _, e := range b.run.Events {
		if e.Source != history.SourceRole || e.Kind != history.KindRole {
			continue
		}
		if _, ok := roles[e.Node]; !ok {
			nodes = append(nodes, e.Node)
		}
		role := e.Attrs["role"]
		col := roleColor[role]
		if col == "" {
			col = "#e2e8f0"
		}
		roles[e.Node] = append(roles[e.Node], state{from: e.Time, fill: col, title: lit(e.Node+" "+role) + " from %s"})
	}
	sort.Strings(nodes)
	if len(nodes) > 0 {
		b.sectionTitle("replication role, VIP and proxy routing (host-side observer)")
	}
	for _, n := range nodes {
		b.label(n)
		b.lane(roles[n])
		b.nextLane()
	}
}

func vipEvents(events []history.Event) []history.Event {
	var vip []history.Event
	for _, e := range events {
		if e.Source == history.SourceVIP && e.Kind == history.KindVIPHolder {
			vip = append(vip, e)
		}
	}
	return vip
}

// vipLane draws who held the VIP: one holder purple, none black, two or more red.
func (b *builder) vipLane(vip []history.Event) {
	if len(vip) == 0 {
		return
	}
	b.label("VIP holder")
	states := make([]state, 0, len(vip))
	for _, e := range vip {
		col := "#805ad5"
		switch e.Attrs["count"] {
		case "0":
			col = "#1a202c"
		case "1":
		default:
			col = "#e53e3e"
		}
		states = append(states, state{from: e.Time, fill: col, title: "VIP held by [" + lit(e.Attrs["holders"]) + "] from %s",
			text: e.Attrs["holders"], minText: 50})
	}
	b.lane(states)
	b.nextLane()
}

// routeLanes draws each proxy's view of its backends, from the judge's analysis.
func (b *builder) routeLanes() {
	if b.r.Analysis == nil {
		return
	}
	routes := map[string][]state{}
	var proxies []string
	for _, rt := range b.r.Analysis.Routes {
		if _, ok := routes[rt.Proxy]; !ok {
			proxies = append(proxies, rt.Proxy)
		}
		col, text := "#38a169", strings.Join(rt.Up, "+")
		switch {
		case rt.Unreachable:
			col, text = "#cbd5e0", "proxy down"
		case len(rt.Up) == 0:
			col, text = "#1a202c", "no backend"
		case len(rt.Up) > 1:
			col = "#e53e3e"
		}
		routes[rt.Proxy] = append(routes[rt.Proxy], state{from: rt.Time, fill: col, text: text, minText: 60,
			title: lit(rt.Proxy) + " from %s: " + lit(rt.Detail)})
	}
	sort.Strings(proxies)
	for _, n := range proxies {
		b.label(n + " routes to")
		b.lane(routes[n])
		b.nextLane()
	}
}

// writeLanes draws every write on the lane of the node that served it, marking the split-brain
// and lost ones.
func (b *builder) writeLanes() {
	split := map[int64]bool{}
	if b.r.Analysis != nil {
		for _, id := range b.r.Analysis.SplitBrainOpIDs {
			split[id] = true
		}
	}
	lost := map[int64]bool{}
	for _, id := range b.r.LostOpIDs {
		lost[id] = true
	}
	servers := map[string]bool{}
	for _, o := range b.run.Ops {
		if o.IsWrite() {
			servers[serverName(o)] = true
		}
	}
	serverList := make([]string, 0, len(servers))
	for s := range servers {
		serverList = append(serverList, s)
	}
	sort.Strings(serverList)
	b.sectionTitle("writes by serving node (green ok, orange indeterminate, red failed; red ring split-brain, black x lost)")
	lane := map[string]float64{}
	for _, s := range serverList {
		lane[s] = b.y
		b.label(s)
		b.c.Rects = append(b.c.Rects, svgRect{X: chartLeft, Y: b.y, W: chartWidth, H: laneH, Fill: "#f7fafc", Opacity: 1})
		b.nextLane()
	}
	for i, o := range b.run.Ops {
		if !o.IsWrite() {
			continue
		}
		if i%b.step != 0 && !split[o.ID] && !lost[o.ID] {
			continue
		}
		b.writeDot(o, b.x(o.Invoke), lane[serverName(o)]+laneH/2, split[o.ID], lost[o.ID])
	}
}

func (b *builder) writeDot(o history.Op, xx, ly float64, split, lost bool) {
	title := fmt.Sprintf("op %d w%d %s %s=%s %s %s (%s)", o.ID, o.Worker, o.Kind, o.Key, o.Value, o.Status, o.Latency().Round(time.Microsecond), o.Err)
	b.c.Dots = append(b.c.Dots, svgDot{X: xx, Y: ly, Fill: statusColor[o.Status], Title: title})
	if split {
		b.c.Rects = append(b.c.Rects, svgRect{X: xx - 3, Y: ly - 6, W: 6, H: 12, Fill: "none", Title: "split-brain write: " + title})
		b.c.Lines = append(b.c.Lines, svgLine{X1: xx, Y1: ly - 7, X2: xx, Y2: ly + 7, Stroke: "#e53e3e", Width: 2, Title: "split-brain write: " + title})
	}
	if lost {
		b.c.Lines = append(b.c.Lines, svgLine{X1: xx - 4, Y1: ly - 4, X2: xx + 4, Y2: ly + 4, Stroke: "#000", Width: 1.5, Title: "lost: " + title},
			svgLine{X1: xx - 4, Y1: ly + 4, X2: xx + 4, Y2: ly - 4, Stroke: "#000", Width: 1.5, Title: "lost: " + title})
	}
}

// opBars draws the outcomes of every operation per 250 ms bucket, stacked.
func (b *builder) opBars() {
	b.y += 6
	b.sectionTitle("operations per 250 ms (all kinds)")
	const bucket = 250 * time.Millisecond
	nb := int(b.end.Sub(b.start)/bucket) + 1
	counts := make([]map[history.Status]int, nb)
	maxCount := 1
	for _, o := range b.run.Ops {
		if o.Kind == "dial" {
			continue
		}
		i := int(o.Invoke.Sub(b.start) / bucket)
		if i < 0 || i >= nb {
			continue
		}
		if counts[i] == nil {
			counts[i] = map[history.Status]int{}
		}
		counts[i][o.Status]++
		if t := counts[i][history.OK] + counts[i][history.Fail] + counts[i][history.Indeterminate]; t > maxCount {
			maxCount = t
		}
	}
	bw := chartWidth / float64(nb)
	for i, m := range counts {
		base := b.y + barH
		for _, st := range []history.Status{history.OK, history.Indeterminate, history.Fail} {
			n := m[st]
			if n == 0 {
				continue
			}
			h := float64(n) / float64(maxCount) * barH
			base -= h
			b.c.Rects = append(b.c.Rects, svgRect{X: chartLeft + float64(i)*bw, Y: base, W: math.Max(bw-0.5, 0.5), H: h, Fill: statusColor[st], Opacity: 1,
				Title: fmt.Sprintf("+%.2fs: %d %s", float64(i)*bucket.Seconds(), n, st)})
		}
	}
	b.c.Texts = append(b.c.Texts, svgText{X: chartLeft - 8, Y: b.y + 10, Text: fmt.Sprint(maxCount), Anchor: "end", Size: 11, Fill: "#555"},
		svgText{X: chartLeft - 8, Y: b.y + barH, Text: "0", Anchor: "end", Size: 11, Fill: "#555"})
	b.c.Lines = append(b.c.Lines, svgLine{X1: chartLeft, Y1: b.y + barH, X2: chartLeft + chartWidth, Y2: b.y + barH, Stroke: "#999", Width: 1})
	b.y += barH + 10
}

// latencyDots draws each operation's latency on a log scale from 100 µs to 10 s.
func (b *builder) latencyDots() {
	b.sectionTitle("latency per operation (log scale)")
	lo, hi := math.Log10(1e-4), math.Log10(10)
	top := b.y
	ly := func(d time.Duration) float64 {
		s := math.Max(d.Seconds(), 1e-4)
		return top + latH - (math.Log10(s)-lo)/(hi-lo)*latH
	}
	for _, tick := range []time.Duration{time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond, time.Second, 10 * time.Second} {
		yy := ly(tick)
		b.c.Lines = append(b.c.Lines, svgLine{X1: chartLeft, Y1: yy, X2: chartLeft + chartWidth, Y2: yy, Stroke: "#e2e8f0", Width: 1})
		b.c.Texts = append(b.c.Texts, svgText{X: chartLeft - 8, Y: yy + 4, Text: tick.String(), Anchor: "end", Size: 11, Fill: "#555"})
	}
	for i, o := range b.run.Ops {
		if o.Kind == "dial" || (i%b.step != 0 && o.Status == history.OK) {
			continue
		}
		b.c.Dots = append(b.c.Dots, svgDot{X: b.x(o.Invoke), Y: ly(o.Latency()), Fill: statusColor[o.Status],
			Title: fmt.Sprintf("op %d %s %s %s %s", o.ID, o.Kind, o.Status, o.Latency().Round(time.Microsecond), o.Err)})
	}
	b.y += latH + 8
}

// timeAxis draws seconds from the start under the chart.
func (b *builder) timeAxis(bottom float64) {
	tickEvery := 5.0
	if b.span > 120 {
		tickEvery = 20
	} else if b.span < 20 {
		tickEvery = 1
	}
	for s := 0.0; s <= b.span; s += tickEvery {
		xx := chartLeft + s/b.span*chartWidth
		b.c.Lines = append(b.c.Lines, svgLine{X1: xx, Y1: bottom, X2: xx, Y2: bottom + 5, Stroke: "#555", Width: 1})
		b.c.Texts = append(b.c.Texts, svgText{X: xx, Y: bottom + 18, Text: fmt.Sprintf("%gs", s), Anchor: "middle", Size: 11, Fill: "#555"})
	}
	b.y = bottom + 26
}

// faultShades shades every fault window behind everything else, with its label above the chart.
func (b *builder) faultShades(top, bottom float64) {
	var shades []svgRect
	labelEnd := [2]float64{}
	for i, f := range b.r.Faults {
		fe := f.End
		if fe.IsZero() {
			fe = b.end
		}
		shades = append(shades, svgRect{X: b.x(f.Start), Y: top, W: math.Max(2, b.x(fe)-b.x(f.Start)), H: bottom - top, Fill: "#f6ad55", Opacity: 0.18,
			Title: fmt.Sprintf("fault %s from %s to %s", f.Spec, f.Start.Format("15:04:05.000"), fe.Format("15:04:05.000"))})
		// Labels go on two rows above the chart; a label that would collide is left to the tooltip.
		label := f.Spec
		if len(label) > 40 {
			label = label[:39] + "…"
		}
		w := float64(len([]rune(label))) * 6
		row := i % 2
		if b.x(f.Start) >= labelEnd[row] {
			b.c.Texts = append(b.c.Texts, svgText{X: b.x(f.Start) + 2, Y: 10 + float64(row)*11, Text: label, Size: 10, Fill: "#c05621"})
			labelEnd[row] = b.x(f.Start) + w + 8
		}
	}
	b.c.Rects = append(shades, b.c.Rects...)
}

// failoverMarks draws a line at every change of the quorum's master, from the judge's analysis.
func (b *builder) failoverMarks(top, bottom float64) {
	if b.r.Analysis == nil || len(b.r.Analysis.Masters) == 0 {
		return
	}
	for _, ep := range b.r.Analysis.Masters[1:] {
		b.c.Lines = append(b.c.Lines, svgLine{X1: b.x(ep.From), Y1: top, X2: b.x(ep.From), Y2: bottom, Stroke: "#e53e3e", Width: 2,
			Title: "+switch-master to " + ep.Master + " at " + ep.From.Format("15:04:05.000")})
		b.c.Texts = append(b.c.Texts, svgText{X: b.x(ep.From) + 3, Y: top + 10, Text: "failover → " + nodeOf(b.r, ep.Master), Size: 11, Fill: "#e53e3e", Weight: "bold"})
	}
}

// vipMarks draws a dashed line at every move of the VIP.
func (b *builder) vipMarks(vip []history.Event, top, bottom float64) {
	for i := 1; i < len(vip); i++ {
		xx := b.x(vip[i].Time)
		b.c.Lines = append(b.c.Lines, svgLine{X1: xx, Y1: top, X2: xx, Y2: bottom, Stroke: "#805ad5", Width: 1.5, Dash: "4 3",
			Title: "VIP now held by [" + vip[i].Attrs["holders"] + "] at " + vip[i].Time.Format("15:04:05.000")})
	}
}

var legend = []svgRect{{Fill: "#2b6cb0", Title: "master"}, {Fill: "#a0aec0", Title: "replica"}, {Fill: "#1a202c", Title: "unreachable / no VIP"},
	{Fill: "#805ad5", Title: "VIP on one node"}, {Fill: "#38a169", Title: "proxy routes to one backend"}, {Fill: "#e53e3e", Title: "two VIP holders / two backends UP / failover"}, {Fill: "#f6ad55", Title: "fault window", Opacity: 0.4}}

// eventRows lists the recorded events, times relative to the workload start.
func eventRows(events []history.Event, workStart time.Time) []evRow {
	var rows []evRow
	for _, e := range events {
		if e.Source == history.SourceSentinel && e.Kind == "+sentinel" {
			continue
		}
		d := e.Detail
		if e.Source != history.SourceSentinel && len(e.Attrs) > 0 {
			kv := make([]string, 0, len(e.Attrs))
			for k, v := range e.Attrs {
				kv = append(kv, k+"="+v)
			}
			sort.Strings(kv)
			d = strings.TrimSpace(strings.Join(kv, " ") + " " + d)
		}
		rows = append(rows, evRow{T: fmt.Sprintf("%+.3fs", e.Time.Sub(workStart).Seconds()), Source: e.Source, Kind: e.Kind, Node: e.Node, Detail: d})
	}
	return rows
}

// kvString renders a record as its result.json fields, "k=v, k=v" in key order.
func kvString(v any) string {
	var m map[string]any
	if b, err := json.Marshal(v); err == nil {
		_ = json.Unmarshal(b, &m) // a record without fields (nil) renders empty
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func serverName(o history.Op) string {
	switch {
	case o.Node != "":
		return o.Node
	case o.Server != "":
		return o.Server
	}
	return "(no server)"
}

func nodeOf(r *result.Result, addr string) string {
	host := addr
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		host = addr[:i]
	}
	for n, ip := range r.Nodes {
		if ip == host {
			return n
		}
	}
	return addr
}

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"f1": func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"ts": func(t time.Time) string { return t.Format("2006-01-02 15:04:05.000 MST") },
	"deref": func(p *int) string {
		if p == nil {
			return "not-converged"
		}
		return fmt.Sprint(*p)
	},
	// measured renders a compare metric of the run in seconds, or "not measured" (never a 0
	// nobody observed: a stack without a VIP, proxies the observer could not read).
	"measured": func(r *result.Result, key string) string {
		if v := compare.Values(r)[key]; v != nil {
			return fmt.Sprintf("%.1f s", *v)
		}
		return "not measured"
	},
	"lower":  strings.ToLower,
	"hasPfx": strings.HasPrefix,
}).Parse(pageHTML))

const pageHTML = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>redisha: {{.R.Scenario}} on {{.R.Stack}}: {{.Verdict}}</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1a202c;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.sub{color:#4a5568;margin-bottom:12px}
.note{background:#fff8e1;border-left:4px solid #f0a020;padding:6px 10px;max-width:1100px}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;color:#fff}
.pass{background:#2e9d57}.finding{background:#c05621}.fail{background:#d64545}.error{background:#6b46c1}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #e2e8f0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f7fafc}.num{text-align:right;font-variant-numeric:tabular-nums}
tr.mismatch td{background:#fff5f5} tr.known td{background:#fffbeb}
.st-pass{color:#2e9d57;font-weight:600}.st-fail{color:#d64545;font-weight:600}.st-unknown,.st-not-converged{color:#6b46c1;font-weight:600}
.kv td:first-child{color:#4a5568}
details{margin:8px 0} summary{cursor:pointer;color:#2b6cb0}
.ev{font:12px ui-monospace,monospace} .legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-2px}
svg{background:#fff;border:1px solid #e2e8f0}
ul.ev{margin:4px 0;padding-left:18px}
</style></head><body>
<h1>{{.R.Scenario}} <span class="badge {{.Class}}">{{.Verdict}}</span></h1>
<div class="sub">{{.R.Description}}</div>
<table class="kv">
<tr><td>stack</td><td>{{.R.Stack}} {{.Params}}</td><td>seed</td><td>{{.R.Seed}} (run {{.R.Run}})</td></tr>
<tr><td>workload</td><td>{{.Workload}}</td><td>started</td><td>{{ts .R.Started}}</td></tr>
<tr><td>operations</td><td>{{.R.Summary.Ops}}: {{.R.Summary.OK}} ok, {{.R.Summary.Failed}} failed, {{.R.Summary.Indeterminate}} indeterminate</td><td>machine</td><td>{{.R.Machine}}{{with .R.HostLoad}}; load average {{printf "%.1f" .Start}} at start, {{printf "%.1f" .End}} at end{{end}}{{with .R.Version}}; redisha {{.}}{{end}}</td></tr>
</table>
{{if .R.Error}}<p><b>Harness error:</b> <code>{{.R.Error}}</code></p>{{end}}
{{range .R.Reasons}}<p class="st-fail">{{.}}</p>{{end}}

<h2>Verdicts</h2>
<table><tr><th>check</th><th>status</th><th>expected</th><th>observed</th><th>evidence</th></tr>
{{range .R.Verdicts}}<tr class="{{if not .Match}}mismatch{{else if .Known}}known{{end}}">
<td>{{.Check}}</td><td class="st-{{.Status}}">{{.Status}}{{if .Known}}<br><small>known finding (want {{.Want}})</small>{{end}}{{if and (not .Match) (eq .Status "pass")}}<br><small>unexpected pass</small>{{end}}</td>
<td>{{.Expected}}</td><td>{{.Observed}}{{if .Known}}<br><small>{{.Known}}</small>{{end}}</td>
<td>{{if .Evidence}}<details><summary>{{len .Evidence}} line(s)</summary><ul class="ev">{{range .Evidence}}<li>{{.}}</li>{{end}}</ul></details>{{end}}</td></tr>
{{end}}</table>

<h2>Summary</h2>
<table><tr><th>failovers</th><th>worst write unavailability</th><th>acked writes lost</th><th>split-brain writes</th><th>two-master window</th><th>VIP changes</th><th>two VIP holders</th><th>proxy routing to two masters</th><th>linearizable</th></tr>
<tr><td class="num">{{.R.Summary.Failovers}}</td><td class="num">{{f1 .R.Summary.WorstUnavailabilityS}} s</td><td class="num">{{deref .R.Summary.LostWrites}} / {{.R.Summary.AckedWrites}}</td><td class="num">{{.R.Summary.SplitBrainWrites}}</td><td class="num">{{f1 .R.Summary.TwoMasterS}} s</td><td class="num">{{.R.Summary.VIPChanges}}</td><td class="num">{{measured .R "dual_vip_s"}}</td><td class="num">{{measured .R "dual_route_s"}}</td><td>{{.R.Summary.Linearizable}}</td></tr></table>

<h2>Timeline</h2>
<div class="legend">{{range .Legend}}<span><i style="background:{{.Fill}}"></i>{{.Title}}</span>{{end}}<span><i style="background:#2e9d57"></i>ok</span><span><i style="background:#f0a020"></i>indeterminate</span><span><i style="background:#d64545"></i>failed</span></div>
<svg xmlns="http://www.w3.org/2000/svg" width="{{.Chart.Width}}" height="{{.Chart.Height}}" viewBox="0 0 {{.Chart.Width}} {{.Chart.Height}}" font-family="system-ui,sans-serif">
{{range .Chart.Rects}}<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="{{.Fill}}"{{if .Opacity}} fill-opacity="{{.Opacity}}"{{end}}>{{if .Title}}<title>{{.Title}}</title>{{end}}</rect>
{{end}}{{range .Chart.Dots}}<circle cx="{{.X}}" cy="{{.Y}}" r="2" fill="{{.Fill}}"><title>{{.Title}}</title></circle>
{{end}}{{range .Chart.Lines}}<line x1="{{.X1}}" y1="{{.Y1}}" x2="{{.X2}}" y2="{{.Y2}}" stroke="{{.Stroke}}" stroke-width="{{.Width}}"{{if .Dash}} stroke-dasharray="{{.Dash}}"{{end}}>{{if .Title}}<title>{{.Title}}</title>{{end}}</line>
{{end}}{{range .Chart.Texts}}<text x="{{.X}}" y="{{.Y}}" font-size="{{.Size}}" fill="{{.Fill}}"{{if .Anchor}} text-anchor="{{.Anchor}}"{{end}}{{if .Weight}} font-weight="{{.Weight}}"{{end}}>{{.Text}}</text>
{{end}}</svg>
<p class="sub">Time in seconds from the start of the workload. Hover any mark for details.</p>
{{if .OpsAbsent}}<p class="note">This copy of the run keeps its result and events only: the {{.R.Summary.Ops}} client operations behind the figures above (history.jsonl) are in the full report the run wrote, so the write lanes, the operation rate and the latencies are not drawn here.</p>{{end}}

<h2>Faults</h2>
<table><tr><th>#</th><th>fault</th><th>start</th><th>end</th><th>error</th></tr>
{{range .R.Faults}}<tr><td>{{.ID}}</td><td>{{.Spec}}</td><td>{{ts .Start}}</td><td>{{if .End.IsZero}}-{{else}}{{ts .End}}{{end}}</td><td>{{.Err}}</td></tr>{{end}}</table>

<h2>Events</h2>
<details><summary>{{len .Events}} events (sentinel pub/sub, roles, VIP, faults, runner)</summary>
<table class="ev"><tr><th>t</th><th>source</th><th>kind</th><th>node</th><th>detail</th></tr>
{{range .Events}}<tr><td class="num">{{.T}}</td><td>{{.Source}}</td><td>{{.Kind}}</td><td>{{.Node}}</td><td>{{.Detail}}</td></tr>{{end}}</table></details>
<details><summary>{{len .Dials}} client connections (which node served each worker)</summary>
<table class="ev"><tr><th>worker</th><th>dial</th><th>time</th><th>status</th><th>node</th><th>server</th><th>run_id</th></tr>
{{range .Dials}}<tr><td>{{.Worker}}</td><td>{{.Dial}}</td><td>{{ts .Invoke}}</td><td>{{.Status}} {{.Err}}</td><td>{{.Node}}</td><td>{{.Server}}</td><td>{{.RunID}}</td></tr>{{end}}</table></details>
<p class="sub">Files: {{range $i, $f := .Files}}{{if $i}}, {{end}}{{$f}}{{end}}. Re-render with <code>redisha report {{.R.Scenario}}-dir</code>.</p>
</body></html>
`
