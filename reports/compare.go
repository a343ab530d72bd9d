package reports

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/redisha/redisha/scenarios/compare"
)

// Comparison renderers: compare.md, compare.json, compare.html and the terminal's tables, all
// from one compare.Document. One table per scenario, a row per metric, a column per stack.

// VerdictCounts renders a stack's verdict counts, e.g. "2 pass, 1 known finding (12 acked writes
// lost)": a finding never reads as a pass, and always with what it lost.
func VerdictCounts(c compare.Counts) string {
	var parts []string
	if c.Pass > 0 {
		parts = append(parts, fmt.Sprintf("%d pass", c.Pass))
	}
	if c.Finding > 0 {
		parts = append(parts, fmt.Sprintf("%d known finding (%d acked writes lost)", c.Finding, c.FindingLost))
	}
	if c.Fail > 0 {
		parts = append(parts, fmt.Sprintf("%d FAIL", c.Fail))
	}
	if c.Error > 0 {
		parts = append(parts, fmt.Sprintf("%d ERROR", c.Error))
	}
	if len(parts) == 0 {
		return "no runs"
	}
	return strings.Join(parts, ", ")
}

// num prints a figure without trailing zeros: counts as integers, seconds to 0.1 s.
func num(v float64, unit string) string {
	if unit == "s" {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// StatsCell renders one metric of one stack: every value when there are few runs, else the
// median, 90th percentile and maximum; "not measured" when no run measured it (never 0).
func StatsCell(m compare.Metric, st compare.Stats) string {
	if st.Runs == 0 {
		return "-"
	}
	if st.Measured == 0 {
		return "not measured"
	}
	u := ""
	if m.Unit != "" {
		u = " " + m.Unit
	}
	var s string
	switch {
	case st.Measured == 1:
		s = num(st.Values[0], m.Unit) + u
	case m.Unit != "" && st.Values[0] == st.Max:
		s = fmt.Sprintf("%s%s in all %d", num(st.Max, m.Unit), u, st.Measured)
	case m.Unit == "" && st.Measured <= 5:
		var vs []string
		for _, v := range st.Values {
			vs = append(vs, num(v, m.Unit))
		}
		s = strings.Join(vs, ", ")
	default:
		s = fmt.Sprintf("median %s, p90 %s, max %s%s", num(st.Median, m.Unit), num(st.P90, m.Unit), num(st.Max, m.Unit), u)
	}
	if st.Measured < st.Runs {
		s += fmt.Sprintf(" (measured in %d of %d runs)", st.Measured, st.Runs)
	}
	return s
}

// tableRows is a scenario's side-by-side table: the header, then verdicts and every metric.
func tableRows(d *compare.Document, sc compare.Scenario) [][]string {
	rows := [][]string{append([]string{"metric"}, d.Stacks...)}
	v := []string{"verdicts"}
	for _, sr := range sc.Stacks {
		v = append(v, VerdictCounts(sr.Verdicts))
	}
	rows = append(rows, v)
	for _, mr := range sc.Rows {
		row := []string{mr.Metric.Title}
		if mr.Metric.Unit == "s" {
			row[0] += " (s)"
		}
		for i, st := range mr.Stats {
			c := StatsCell(mr.Metric, st)
			if mr.Metric == compare.Failovers {
				if ff := sc.Stacks[i].Stats[compare.FalseFailovers.Key]; ff.Sum > 0 {
					c += fmt.Sprintf(" (%s FALSE)", num(ff.Sum, ""))
				}
			}
			row = append(row, c)
		}
		rows = append(rows, row)
	}
	return rows
}

func scenarioTitle(sc compare.Scenario) string {
	var seeds []string
	for _, s := range sc.Seeds {
		seeds = append(seeds, strconv.FormatUint(s, 10))
	}
	var runs []string
	for _, sr := range sc.Stacks {
		runs = append(runs, fmt.Sprintf("%s %d", sr.Stack, len(sr.Runs)))
	}
	return fmt.Sprintf("%s (seeds %s; runs: %s)", sc.Name, strings.Join(seeds, ", "), strings.Join(runs, ", "))
}

// WriteCompareTable prints one aligned table per scenario.
func WriteCompareTable(w io.Writer, d *compare.Document) error {
	for i, sc := range d.Scenarios {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "== %s\n", scenarioTitle(sc))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, r := range tableRows(d, sc) {
			fmt.Fprintln(tw, strings.Join(r, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(d.Missing) > 0 {
		fmt.Fprintf(w, "\nMISSING %d planned run(s) without a result:\n", len(d.Missing))
		for _, p := range d.Missing {
			fmt.Fprintf(w, "  %s run %d\n", p.Cell, p.Run)
		}
	}
	return nil
}

// compareIntro says when, where and how the comparison was made, and how to read it.
func compareIntro(d *compare.Document) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Generated %s", d.Generated.Format("2006-01-02 15:04 MST"))
	if len(d.Machines) > 0 {
		fmt.Fprintf(&b, " from runs on %s", strings.Join(d.Machines, "; "))
	}
	if len(d.Shards) > 0 && !(len(d.Shards) == 1 && d.Shards[0] == compare.All.String()) {
		fmt.Fprintf(&b, " (shards %s)", strings.Join(d.Shards, ", "))
	}
	if len(d.Versions) > 0 {
		fmt.Fprintf(&b, ", redisha %s", strings.Join(d.Versions, "; "))
	}
	if l := d.HostLoad; l != nil {
		fmt.Fprintf(&b, "; host load average (1 min) at the runs' starts and ends: median %.1f, range %.1f-%.1f", l.Median, l.Min, l.Max)
	}
	b.WriteString(". Every stack ran every scenario with the same seeds (the same fault timelines). " +
		"A known finding is a verdict the stack is known to fail: not a regression, and not a pass. " +
		"\"not measured\": no run could observe that figure. Each run's own report is linked from compare.html.")
	return b.String()
}

// WriteCompareMarkdown writes compare.md: when and where, then one table per scenario.
func WriteCompareMarkdown(w io.Writer, d *compare.Document) error {
	fmt.Fprintf(w, "# redisha compare: %s\n\n", strings.Join(d.Stacks, " vs "))
	fmt.Fprintln(w, compareIntro(d))
	for _, sc := range d.Scenarios {
		fmt.Fprintf(w, "\n## %s\n\n", scenarioTitle(sc))
		for i, r := range tableRows(d, sc) {
			fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
			if i == 0 {
				fmt.Fprintf(w, "|%s\n", strings.Repeat(" --- |", len(r)))
			}
		}
	}
	if len(d.Missing) > 0 {
		fmt.Fprintf(w, "\n**Incomplete:** %d planned run(s) have no result:\n\n", len(d.Missing))
		for _, p := range d.Missing {
			fmt.Fprintf(w, "- %s run %d\n", p.Cell, p.Run)
		}
	}
	return nil
}

// WriteCompareJSON writes compare.json.
func WriteCompareJSON(path string, d *compare.Document) error {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadCompareJSON reads a compare.json back.
func ReadCompareJSON(path string) (*compare.Document, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d compare.Document
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &d, nil
}

// Plot geometry of compare.html: one strip per metric, a lane per stack.
const (
	plotLabel = 110.0
	plotW     = 380.0
	plotLane  = 30.0
	plotTop   = 22.0
	plotRight = 24.0
)

var classColor = map[compare.Class]string{compare.Pass: "#2e9d57", compare.Finding: "#c05621", compare.Fail: "#d64545", compare.Error: "#6b46c1"}

type plotDot struct {
	X, Y        float64
	Fill, Title string
	Link        string
	Ring        bool // a false failover
}

type plot struct {
	Title         string
	Width, Height float64
	Lanes         []svgText
	Ticks         []svgText
	Grid          []svgLine
	Medians       []svgLine
	Dots          []plotDot
	Notes         []svgText
}

type cmpSection struct {
	Title string
	Head  []string
	Rows  [][]string
	Plots []plot
}

// niceMax rounds up to 1, 2 or 5 times a power of ten, so the axis reads in round numbers.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// buildPlot draws one metric of one scenario: every run a dot (its colour its verdict class,
// linking to its report), the median a vertical bar, "not measured" where no run measured it.
func buildPlot(d *compare.Document, sc compare.Scenario, m compare.Metric) plot {
	p := plot{Title: m.Title, Width: plotLabel + plotW + plotRight, Height: plotTop + plotLane*float64(len(sc.Stacks)) + 6}
	if m.Unit != "" {
		p.Title += " (" + m.Unit + ")"
	}
	hi := 0.0
	for _, sr := range sc.Stacks {
		hi = math.Max(hi, sr.Stats[m.Key].Max)
	}
	// Four round steps (1, 2 or 5 times a power of ten): counts get whole-number ticks.
	hi = niceMax(hi/4) * 4
	if m.Unit == "" {
		hi = math.Max(4, hi)
	}
	x := func(v float64) float64 { return plotLabel + v/hi*plotW }
	for k := 0; k <= 4; k++ {
		v := hi * float64(k) / 4
		p.Ticks = append(p.Ticks, svgText{X: x(v), Y: plotTop - 8, Text: strconv.FormatFloat(v, 'f', -1, 64), Anchor: "middle", Size: 10, Fill: "#718096"})
		p.Grid = append(p.Grid, svgLine{X1: x(v), Y1: plotTop - 4, X2: x(v), Y2: p.Height - 4, Stroke: "#e2e8f0", Width: 1})
	}
	for i, sr := range sc.Stacks {
		y0 := plotTop + plotLane*float64(i)
		mid := y0 + plotLane/2
		p.Lanes = append(p.Lanes, svgText{X: plotLabel - 8, Y: mid + 4, Text: sr.Stack, Anchor: "end", Size: 12, Fill: "#1a202c", Weight: "600"})
		st := sr.Stats[m.Key]
		if st.Runs == 0 || st.Measured == 0 {
			msg := "not measured"
			if st.Runs == 0 {
				msg = "no runs"
			}
			p.Notes = append(p.Notes, svgText{X: plotLabel + 6, Y: mid + 4, Text: msg, Size: 11, Fill: "#718096"})
			continue
		}
		p.Medians = append(p.Medians, svgLine{X1: x(st.Median), Y1: y0 + 3, X2: x(st.Median), Y2: y0 + plotLane - 3, Stroke: "#1a202c", Width: 3,
			Title: fmt.Sprintf("%s: median %s%s over %d run(s)", sr.Stack, num(st.Median, m.Unit), m.Unit, st.Measured)})
		k := 0
		for _, r := range sr.Runs {
			v := r.Values[m.Key]
			if v == nil {
				continue
			}
			// Runs with equal values spread vertically so each dot stays visible and clickable.
			jitter := []float64{0, 6, -6, 12, -12}[k%5]
			k++
			ff := r.Values[compare.FalseFailovers.Key]
			dot := plotDot{X: x(*v), Y: mid + jitter, Fill: classColor[r.Class], Link: r.Link,
				Title: fmt.Sprintf("%s, seed %d (run %d): %s%s; %s", sr.Stack, r.Seed, r.Run, num(*v, m.Unit), m.Unit, r.Class),
				Ring:  m == compare.Failovers && ff != nil && *ff > 0}
			if dot.Ring {
				dot.Title += fmt.Sprintf("; %s false failover(s)", num(*ff, ""))
			}
			p.Dots = append(p.Dots, dot)
		}
	}
	return p
}

// WriteCompareHTML writes compare.html: self-contained (inline CSS and SVG, no script, no
// external asset), a table per scenario and a strip plot per metric in which every run is a dot
// linking to that run's own report.
func WriteCompareHTML(path string, d *compare.Document) error {
	colors := map[string]string{}
	for c, v := range classColor {
		colors[string(c)] = v
	}
	var secs []cmpSection
	for _, sc := range d.Scenarios {
		rows := tableRows(d, sc)
		sec := cmpSection{Title: scenarioTitle(sc), Head: rows[0], Rows: rows[1:]}
		for _, m := range compare.Metrics {
			if m == compare.FalseFailovers {
				continue // drawn as rings on the failovers' dots
			}
			sec.Plots = append(sec.Plots, buildPlot(d, sc, m))
		}
		secs = append(secs, sec)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := compareTmpl.Execute(f, struct {
		D        *compare.Document
		Intro    string
		Sections []cmpSection
		Colors   map[string]string
	}{d, compareIntro(d), secs, colors}); err != nil {
		return err
	}
	return f.Close()
}

var compareTmpl = template.Must(template.New("compare").Funcs(template.FuncMap{
	"join": strings.Join,
	"f1":   func(v float64) string { return fmt.Sprintf("%.1f", v) },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>redisha compare: {{join .D.Stacks " vs "}}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1a202c;max-width:1400px}
h1{font-size:22px;margin:0 0 6px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e2e8f0;padding-bottom:4px}
.sub{color:#4a5568;max-width:1000px}
table{border-collapse:collapse;margin:6px 0 10px}td,th{border:1px solid #e2e8f0;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f7fafc}td:first-child{color:#4a5568}
.plots{display:flex;flex-wrap:wrap;gap:8px 18px}.plot{border:1px solid #edf2f7;border-radius:6px;padding:4px 6px}
.plot h3{font-size:13px;margin:2px 0 0;font-weight:600}
.legend span{margin-right:14px;white-space:nowrap}.legend i{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:4px;vertical-align:middle}
.missing{color:#d64545;font-weight:600}
svg a circle:hover{stroke:#1a202c;stroke-width:2}
</style></head><body>
<h1>redisha compare: {{join .D.Stacks " vs "}}</h1>
<p class="sub">{{.Intro}}</p>
<p class="legend">Each dot is one run (click it for that run's report); the black bar is the median.
<span><i style="background:{{index .Colors "pass"}}"></i>pass</span><span><i style="background:{{index .Colors "finding"}}"></i>known finding (not a pass)</span><span><i style="background:{{index .Colors "fail"}}"></i>FAIL</span><span><i style="background:{{index .Colors "error"}}"></i>ERROR</span><span><i style="background:#fff;border:2px solid #d64545;width:7px;height:7px"></i>false failover</span></p>
{{if .D.Missing}}<p class="missing">Incomplete: {{len .D.Missing}} planned run(s) have no result: {{range .D.Missing}}{{.Cell}} run {{.Run}}; {{end}}</p>{{end}}
{{range .Sections}}<h2>{{.Title}}</h2>
<table><tr>{{range .Head}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
<div class="plots">{{range .Plots}}<div class="plot"><h3>{{.Title}}</h3>
<svg xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img">
{{range .Grid}}<line x1="{{f1 .X1}}" y1="{{f1 .Y1}}" x2="{{f1 .X2}}" y2="{{f1 .Y2}}" stroke="{{.Stroke}}" stroke-width="{{.Width}}"/>{{end}}
{{range .Ticks}}<text x="{{f1 .X}}" y="{{f1 .Y}}" text-anchor="{{.Anchor}}" font-size="{{.Size}}" fill="{{.Fill}}">{{.Text}}</text>{{end}}
{{range .Lanes}}<text x="{{f1 .X}}" y="{{f1 .Y}}" text-anchor="{{.Anchor}}" font-size="{{.Size}}" fill="{{.Fill}}" font-weight="{{.Weight}}">{{.Text}}</text>{{end}}
{{range .Notes}}<text x="{{f1 .X}}" y="{{f1 .Y}}" font-size="{{.Size}}" fill="{{.Fill}}" font-style="italic">{{.Text}}</text>{{end}}
{{range .Medians}}<line x1="{{f1 .X1}}" y1="{{f1 .Y1}}" x2="{{f1 .X2}}" y2="{{f1 .Y2}}" stroke="{{.Stroke}}" stroke-width="{{.Width}}"><title>{{.Title}}</title></line>{{end}}
{{range .Dots}}<a href="{{.Link}}"><circle class="run" cx="{{f1 .X}}" cy="{{f1 .Y}}" r="6" fill="{{.Fill}}" fill-opacity="0.85"{{if .Ring}} stroke="#d64545" stroke-width="3"{{end}}><title>{{.Title}}</title></circle></a>{{end}}
</svg></div>{{end}}</div>
{{end}}
<p class="sub">Figures: compare.json (every value per stack, scenario and run; null where not measured). Tables: compare.md.</p>
</body></html>
`))
