package reports

import (
	"html/template"
	"os"

	"github.com/redisha/redisha/scenarios/compare"
	"github.com/redisha/redisha/scenarios/result"
)

// WriteIndex writes an HTML page with one table row per run, linking each run's own report.
func WriteIndex(path string, results []*result.Result, links []string) error {
	type row struct {
		Row
		Link  string
		Class compare.Class
		Seed  uint64
	}
	var rows []row
	for i, r := range results {
		rows = append(rows, row{Row: RowOf(r), Link: links[i], Class: compare.ClassOf(r), Seed: r.Seed})
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := indexTmpl.Execute(f, struct {
		Headers Row
		Rows    []row
	}{Headers, rows}); err != nil {
		return err
	}
	return f.Close()
}

var indexTmpl = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>redisha runs</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:24px}table{border-collapse:collapse}
td,th{border:1px solid #e2e8f0;padding:4px 8px;text-align:left}th{background:#f7fafc}
.pass{color:#2e9d57}.finding{color:#c05621;font-weight:600}.fail{color:#d64545;font-weight:600}.error{color:#6b46c1;font-weight:600}</style></head><body>
<h1>redisha runs</h1>
<table><tr><th>{{.Headers.Scenario}}</th><th>{{.Headers.Verdict}}</th><th>{{.Headers.Failovers}}</th><th>{{.Headers.Unavail}}</th><th>{{.Headers.Lost}}</th><th>{{.Headers.SplitBrain}}</th><th>{{.Headers.TwoMaster}}</th><th>{{.Headers.Notes}}</th><th>seed</th></tr>
{{range .Rows}}<tr><td><a href="{{.Link}}">{{.Scenario}}</a></td><td class="{{.Class}}">{{.Verdict}}</td><td>{{.Failovers}}</td><td>{{.Unavail}}</td><td>{{.Lost}}</td><td>{{.SplitBrain}}</td><td>{{.TwoMaster}}</td><td>{{.Notes}}</td><td>{{.Seed}}</td></tr>
{{end}}</table></body></html>
`))
