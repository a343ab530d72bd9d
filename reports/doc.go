// Package reports renders scenario runs recorded in the result model (scenarios/result): a run's
// self-contained index.html and junit.xml, and tables and an index page over many runs. It is a
// pure renderer: every figure it shows was computed by the judge and stored in the result.
package reports
