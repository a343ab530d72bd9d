package netns

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// dockerUser is the chain dockerd leaves to its users, evaluated before its
// own FORWARD rules.
const dockerUser = "DOCKER-USER"

// AcceptChains are the filter chains a bridge's accept rule goes into, each
// at the top, when the chain exists. One copy in DOCKER-USER is not enough:
// on every network it creates or removes, dockerd (libnetwork's
// EnsureJumpRule) deletes its jump from FORWARD to DOCKER-USER and inserts it
// again, two iptables runs apart, and on a loaded host that window lasts up
// to seconds. Without DOCKER-USER, a packet meets DOCKER-ISOLATION-STAGE-1,
// which drops whatever leaves an --internal network's bridge for an address
// outside its subnet (VRRP's 224.0.0.18 is), and a bridge dockerd does not
// know meets the FORWARD policy (DROP). So the rule is also at the top of
// DOCKER-ISOLATION-STAGE-1 and of FORWARD itself, where dockerd never
// removes rules it did not write. Seen in the lab: another lab's network
// came up and both redisha-vip nodes of this one held the VIP for a second.
var AcceptChains = []string{dockerUser, "DOCKER-ISOLATION-STAGE-1", "FORWARD"}

// ErrNoDockerUser is returned by AllowBridgeForward when there is no
// DOCKER-USER chain, i.e. no dockerd manages this machine's firewall.
var ErrNoDockerUser = errors.New("netns: iptables chain DOCKER-USER is missing: is dockerd managing iptables?")

// ForwardRule is one accept rule: its chain and its iptables arguments.
type ForwardRule struct {
	Chain string
	Args  []string
}

func (r ForwardRule) String() string { return r.Chain + " " + strings.Join(r.Args, " ") }

// forwardRule accepts every packet bridged between two ports of bridge.
func forwardRule(bridge, comment string) []string {
	r := []string{"-i", bridge, "-o", bridge}
	if comment != "" {
		r = append(r, "-m", "comment", "--comment", comment)
	}
	return append(r, "-j", "ACCEPT")
}

// presentChains lists the AcceptChains that exist, or ErrNoDockerUser.
func presentChains(ipt *iptables.IPTables) ([]string, error) {
	if ok, _ := ipt.ChainExists("filter", dockerUser); !ok {
		return nil, ErrNoDockerUser
	}
	var out []string
	for _, c := range AcceptChains {
		if ok, _ := ipt.ChainExists("filter", c); ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// AllowBridgeForward lets all traffic between ports of bridge through
// dockerd's firewall (FORWARD policy DROP once dockerd runs, and the
// isolation rules of its --internal networks), whatever order dockerd's
// jumps are in at the moment (see AcceptChains), with an optional comment
// that ForwardRules can find later. It is idempotent. The rules go through
// iptables, not nftables, because dockerd's chains live there.
func AllowBridgeForward(bridge, comment string) error {
	ipt, err := iptables.New()
	if err != nil {
		return fmt.Errorf("netns: iptables: %w", err)
	}
	chains, err := presentChains(ipt)
	if err != nil {
		return err
	}
	rule := forwardRule(bridge, comment)
	for _, c := range chains {
		if ok, _ := ipt.Exists("filter", c, rule...); ok {
			continue
		}
		if err := ipt.Insert("filter", c, 1, rule...); err != nil {
			return fmt.Errorf("netns: %s rule for %s: %w", c, bridge, err)
		}
	}
	return nil
}

// RemoveBridgeForward deletes every copy of AllowBridgeForward's rule; a
// missing rule or chain is not an error.
func RemoveBridgeForward(bridge, comment string) error {
	ipt, err := iptables.New()
	if err != nil {
		return fmt.Errorf("netns: iptables: %w", err)
	}
	chains, err := presentChains(ipt)
	if errors.Is(err, ErrNoDockerUser) {
		return nil
	}
	rule := forwardRule(bridge, comment)
	for _, c := range chains {
		for {
			ok, err := ipt.Exists("filter", c, rule...)
			if err != nil {
				return fmt.Errorf("netns: %s rule for %s: %w", c, bridge, err)
			}
			if !ok {
				break
			}
			if err := ipt.Delete("filter", c, rule...); err != nil {
				return fmt.Errorf("netns: delete %s rule for %s: %w", c, bridge, err)
			}
		}
	}
	return nil
}

// ForwardRules lists the accept rules (in AcceptChains) whose text contains
// substr, ready for DeleteForwardRule.
func ForwardRules(substr string) ([]ForwardRule, error) {
	ipt, err := iptables.New()
	if err != nil {
		return nil, err
	}
	chains, err := presentChains(ipt)
	if errors.Is(err, ErrNoDockerUser) {
		return nil, nil
	}
	var out []ForwardRule
	for _, c := range chains {
		rules, err := ipt.List("filter", c)
		if err != nil {
			return nil, err
		}
		for _, r := range rules {
			args, ok := strings.CutPrefix(r, "-A "+c+" ")
			if !ok || !strings.Contains(r, substr) {
				continue
			}
			// Only rules of forwardRule's shape: never one of dockerd's.
			if a := splitRule(args); len(a) > 2 && slices.Equal(a[len(a)-2:], []string{"-j", "ACCEPT"}) {
				out = append(out, ForwardRule{Chain: c, Args: a})
			}
		}
	}
	return out, nil
}

// DeleteForwardRule deletes one rule given as by ForwardRules.
func DeleteForwardRule(r ForwardRule) error {
	ipt, err := iptables.New()
	if err != nil {
		return err
	}
	return ipt.Delete("filter", r.Chain, r.Args...)
}

// splitRule splits an iptables -S line, honouring double quotes.
func splitRule(s string) []string {
	var out []string
	var cur strings.Builder
	inq := false
	for _, r := range s {
		switch {
		case r == '"':
			inq = !inq
		case r == ' ' && !inq:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}
