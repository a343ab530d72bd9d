// Package history holds what a scenario run records: client operations (history.jsonl), observed
// events (events.jsonl) and the final state read after convergence. The checkers judge these
// records only, so a run can be re-judged from its report directory.
package history

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// Status is the outcome of one client operation as the client saw it.
type Status string

const (
	// OK means the server acknowledged the operation.
	OK Status = "ok"
	// Fail means the operation definitely did not take effect: it was never sent, or the server
	// answered with an error reply (READONLY, NOREPLICAS, ...).
	Fail Status = "fail"
	// Indeterminate means the request was sent but no reply arrived (timeout, EOF, reset): it may
	// or may not have taken effect.
	Indeterminate Status = "indeterminate"
)

// Operation kinds recorded by the workload.
const (
	KindSet = "set" // SET register value; every value unique
	KindGet = "get" // GET register
	KindAdd = "add" // SADD set element; every element unique
	// The pub/sub workload: Key is the channel, Value the message (unique per publish).
	KindPublish   = "publish"      // PUBLISH; Receivers is the count the server answered
	KindSubscribe = "subscribe"    // a subscriber's subscription confirmed on Server (Complete: from then on)
	KindUnsub     = "unsubscribed" // a subscriber's connection failed (Invoke: no later than then)
	KindReceive   = "receive"      // a message a subscriber received (Invoke = Complete: when)
)

// Op is one client operation.
type Op struct {
	ID       int64     `json:"id"`
	Worker   int       `json:"worker"`
	Kind     string    `json:"kind"`
	Key      string    `json:"key"`
	Value    string    `json:"value,omitempty"` // written value, or the value read
	Nil      bool      `json:"nil,omitempty"`   // a GET that found no value
	Invoke   time.Time `json:"invoke"`
	Complete time.Time `json:"complete"`
	Status   Status    `json:"status"`
	Err      string    `json:"error,omitempty"`
	// Server is the address (ip:port) of the redis-server that served the worker's connection,
	// as that server reported it (CLIENT INFO laddr) when the connection was opened.
	Server string `json:"server,omitempty"`
	Node   string `json:"node,omitempty"`   // node name of Server, when known
	RunID  string `json:"run_id,omitempty"` // INFO server run_id of Server at dial time
	Dial   int    `json:"dial,omitempty"`   // how many connections the worker had opened so far
	// Receivers is a PUBLISH's reply: how many subscribers the server delivered the message to.
	Receivers int `json:"receivers,omitempty"`
}

// IsKV reports whether the operation is one of the key-value workload's (SET, GET, SADD).
func (o Op) IsKV() bool { return o.Kind == KindSet || o.Kind == KindGet || o.Kind == KindAdd }

// IsWrite reports whether the operation writes.
func (o Op) IsWrite() bool { return o.Kind == KindSet || o.Kind == KindAdd }

// Latency is the time from invocation to completion.
func (o Op) Latency() time.Duration { return o.Complete.Sub(o.Invoke) }

// Event sources.
const (
	SourceSentinel = "sentinel" // a sentinel's pub/sub message; Kind is the channel (+switch-master)
	SourceFault    = "fault"    // fault timeline; Kind is FaultStart or FaultEnd
	SourceRole     = "role"     // observed replication role change of a redis node
	SourceVIP      = "vip"      // observed VIP holder change
	SourceProxy    = "proxy"    // observed proxy backend change
	SourceRunner   = "runner"   // phases and facts recorded by the runner
)

// Well-known event kinds.
const (
	KindSwitchMaster     = "+switch-master"
	KindPromoted         = "+promoted-slave"                    // the failover leader's promoted replica reports role:master
	KindSendSlaveofNoOne = "+failover-state-send-slaveof-noone" // the failover leader has chosen the replica it will send SLAVEOF NO ONE
	KindWaitPromotion    = "+failover-state-wait-promotion"     // the failover leader has sent its chosen replica SLAVEOF NO ONE
	KindFaultStart       = "fault-start"
	KindFaultEnd         = "fault-end"
	KindRole             = "role"           // Attrs: role (master|slave), addr
	KindVIPHolder        = "vip-holder"     // Node holds the VIP; empty Node: nobody
	KindInitialMaster    = "initial-master" // Attrs: addr
	KindPhase            = "phase"          // Detail: phase name
)

// Event is one timestamped observation.
type Event struct {
	Time   time.Time         `json:"time"`
	Source string            `json:"source"`
	Kind   string            `json:"kind"`
	Node   string            `json:"node,omitempty"`
	Detail string            `json:"detail,omitempty"`
	Attrs  map[string]string `json:"attrs,omitempty"`
}

// SwitchMasterAddrs parses a +switch-master payload "<name> <oldip> <oldport> <newip> <newport>".
func SwitchMasterAddrs(detail string) (oldAddr, newAddr string, ok bool) {
	f := strings.Fields(detail)
	if len(f) != 5 {
		return "", "", false
	}
	return f[1] + ":" + f[2], f[3] + ":" + f[4], true
}

// PromotedAddrs parses a +promoted-slave payload
// "slave <ip>:<port> <ip> <port> @ <name> <masterip> <masterport>".
func PromotedAddrs(detail string) (oldAddr, newAddr string, ok bool) {
	f := strings.Fields(detail)
	if len(f) != 8 || f[0] != "slave" || f[4] != "@" {
		return "", "", false
	}
	return f[6] + ":" + f[7], f[2] + ":" + f[3], true
}

// Final is the state read from the converged master after the run.
type Final struct {
	// Converged is true when, within the bound, exactly one master remained and every replica's
	// offset equalled the master's. Registers and Sets are meaningful only then.
	Converged bool                `json:"converged"`
	Reason    string              `json:"reason,omitempty"` // why not converged
	Master    string              `json:"master,omitempty"` // addr of the master read
	ReadAt    time.Time           `json:"read_at"`
	Waited    time.Duration       `json:"waited_ns"`
	Registers map[string]string   `json:"registers,omitempty"` // absent key: no value
	Sets      map[string][]string `json:"sets,omitempty"`
}

// Writer appends JSON lines; safe for concurrent use.
type Writer struct {
	mu  sync.Mutex
	w   *bufio.Writer
	c   io.Closer
	err error
}

// NewWriter writes JSON lines to w; Close closes w when it is an io.Closer.
func NewWriter(w io.Writer) *Writer {
	c, _ := w.(io.Closer)
	return &Writer{w: bufio.NewWriter(w), c: c}
}

// Create opens path for writing JSON lines.
func Create(path string) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return NewWriter(f), nil
}

// Write appends v as one line. The first error sticks and is returned by Close.
func (w *Writer) Write(v any) {
	b, err := json.Marshal(v)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return
	}
	if err != nil {
		w.err = err
		return
	}
	b = append(b, '\n')
	_, w.err = w.w.Write(b)
}

// Flush writes buffered lines out.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.w.Flush(); err != nil && w.err == nil {
		w.err = err
	}
	return w.err
}

// Close flushes and closes the underlying writer.
func (w *Writer) Close() error {
	err := w.Flush()
	if w.c != nil {
		if cerr := w.c.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// ReadJSONL decodes every line of r into a T, naming the line of a malformed one.
func ReadJSONL[T any](r io.Reader) ([]T, error) {
	var out []T
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, v)
	}
	return out, sc.Err()
}

// ReadFile reads a JSON-lines file into a slice of T.
func ReadFile[T any](path string) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	v, err := ReadJSONL[T](f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// SortEvents orders events by time, keeping the recorded order of simultaneous ones.
func SortEvents(ev []Event) {
	sort.SliceStable(ev, func(i, j int) bool { return ev[i].Time.Before(ev[j].Time) })
}
