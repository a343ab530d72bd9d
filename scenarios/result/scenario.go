package result

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The scenario as run: the parts of a scenario file that result.json records (workload,
// expectations, stack parameters). Package spec parses scenario files into these same types,
// with the YAML methods below; they are defined here so the result model stays a leaf.

// Duration is a time.Duration written as "200ms", "5s", "1m30s" in YAML.
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML accepts Go duration strings only, so a bare number is never silently seconds or ns.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration like 500ms or 5s", n.Line)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (write e.g. 500ms or 5s)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// MarshalText makes durations readable in JSON results.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// Workload describes the clients.
type Workload struct {
	Clients  int      `yaml:"clients" json:"clients"`
	Rate     int      `yaml:"rate" json:"rate"` // ops/s over all clients; 0: as fast as replies come
	Duration Duration `yaml:"duration" json:"duration"`
	Mix      Mix      `yaml:"mix" json:"mix"`
	Keys     int      `yaml:"keys" json:"keys"` // registers and sets each
	Path     string   `yaml:"path" json:"path"`
	Node     string   `yaml:"node" json:"node,omitempty"` // for path: direct
	Timeout  Duration `yaml:"timeout" json:"timeout"`
	Retries  int      `yaml:"retries" json:"retries"`
	// Reconnect re-dials each worker's connection once it is this old (0: keep it until an
	// error), like clients that connect per request or recycle pooled connections.
	Reconnect Duration `yaml:"reconnect" json:"reconnect,omitempty"`
	// PubSub adds publishers and subscribers on one channel beside the clients above, on the
	// same path; nil: none.
	PubSub *PubSub `yaml:"pubsub" json:"pubsub,omitempty"`
}

// PubSub is a publish/subscribe workload: publishers PUBLISH unique messages on one channel and
// record the receiver count each got back; subscribers record every message they receive.
type PubSub struct {
	Publishers  int `yaml:"publishers" json:"publishers"`
	Subscribers int `yaml:"subscribers" json:"subscribers"`
	Rate        int `yaml:"rate" json:"rate"` // publishes/s over all publishers
}

// Mix weighs the operation kinds.
type Mix struct {
	Set int `yaml:"set" json:"set"`
	Get int `yaml:"get" json:"get"`
	Add int `yaml:"add" json:"add"`
}

// Failover is an expected failover count; YAML accepts none, one, or a number.
type Failover int

// UnmarshalYAML accepts none, one or an integer.
func (f *Failover) UnmarshalYAML(n *yaml.Node) error {
	v, err := count(n, "failover")
	*f = Failover(v)
	return err
}

// VIPMoves is a number of VIP moves; YAML accepts none, one, or a number.
type VIPMoves int

// UnmarshalYAML accepts none, one or an integer.
func (m *VIPMoves) UnmarshalYAML(n *yaml.Node) error {
	v, err := count(n, "VIP moves")
	*m = VIPMoves(v)
	return err
}

// count reads none, one or a non-negative integer; key names the field in the error.
func count(n *yaml.Node, key string) (int, error) {
	switch strings.ToLower(n.Value) {
	case "none":
		return 0, nil
	case "one":
		return 1, nil
	}
	v, err := strconv.Atoi(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil || v < 0 {
		return 0, fmt.Errorf("line %d: %s must be none, one or a count, not %q", n.Line, key, n.Value)
	}
	return v, nil
}

// Expect holds the expectations. Unset ones are measured and reported, never judged.
type Expect struct {
	Failover       *Failover `yaml:"failover" json:"failover,omitempty"`
	FailoverWithin Duration  `yaml:"failover-within" json:"failover_within,omitempty"`
	// MaxWriteUnavailability bounds the worst per-client window without an acknowledged write.
	MaxWriteUnavailability Duration `yaml:"max-write-unavailability" json:"max_write_unavailability,omitempty"`
	MaxLostWrites          *int     `yaml:"max-lost-writes" json:"max_lost_writes,omitempty"`
	// SplitBrainWrites is forbidden (default) or allowed.
	SplitBrainWrites string `yaml:"split-brain-writes" json:"split_brain_writes"`
	Linearizable     *bool  `yaml:"linearizable" json:"linearizable,omitempty"`
	// MaxLostMessages bounds the pub/sub messages a publisher was told a subscriber received
	// that no subscriber recorded (pub/sub is at most once: unset, it is measured only).
	MaxLostMessages *int `yaml:"max-lost-messages" json:"max_lost_messages,omitempty"`
	// VIPMoves is the exact number of times the VIP moves to a node that did not hold it
	// (a dead active proxy node: one); MaxVIPMoves bounds that number instead (a pause that
	// may move it once but must not ping-pong: 1). At most one of the two is set.
	VIPMoves    *VIPMoves `yaml:"vip-moves" json:"vip_moves,omitempty"`
	MaxVIPMoves *VIPMoves `yaml:"max-vip-moves" json:"max_vip_moves,omitempty"`
	// MaxVIPDualHolders bounds the time two or more nodes held the VIP at once (a VRRP split
	// brain); 0s is a bound too: never seen on two nodes.
	MaxVIPDualHolders *Duration `yaml:"max-vip-dual-holders" json:"max_vip_dual_holders,omitempty"`
}
