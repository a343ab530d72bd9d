package netns

import (
	"errors"
	"fmt"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// dockerUser is the chain dockerd leaves to its users, evaluated before its
// own FORWARD rules.
const dockerUser = "DOCKER-USER"

// ErrNoDockerUser is returned by AllowBridgeForward when there is no
// DOCKER-USER chain, i.e. no dockerd manages this machine's firewall.
var ErrNoDockerUser = errors.New("netns: iptables chain DOCKER-USER is missing: is dockerd managing iptables?")

// forwardRule accepts every packet bridged between two ports of bridge.
func forwardRule(bridge, comment string) []string {
	r := []string{"-i", bridge, "-o", bridge}
	if comment != "" {
		r = append(r, "-m", "comment", "--comment", comment)
	}
	return append(r, "-j", "ACCEPT")
}

// AllowBridgeForward lets all traffic between ports of bridge through
// dockerd's FORWARD policy (DROP, once dockerd runs), with an optional
// comment that ForwardRules can find later. Without it bridged packets
// between namespaces, VRRP multicast included, die in the host's firewall.
// It is idempotent. The rule goes through iptables, not nftables, because
// dockerd's chains live there.
func AllowBridgeForward(bridge, comment string) error {
	ipt, err := iptables.New()
	if err != nil {
		return fmt.Errorf("netns: iptables: %w", err)
	}
	if ok, _ := ipt.ChainExists("filter", dockerUser); !ok {
		return ErrNoDockerUser
	}
	rule := forwardRule(bridge, comment)
	if ok, _ := ipt.Exists("filter", dockerUser, rule...); ok {
		return nil
	}
	if err := ipt.Insert("filter", dockerUser, 1, rule...); err != nil {
		return fmt.Errorf("netns: DOCKER-USER rule for %s: %w", bridge, err)
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
	if ok, _ := ipt.ChainExists("filter", dockerUser); !ok {
		return nil
	}
	rule := forwardRule(bridge, comment)
	for {
		ok, err := ipt.Exists("filter", dockerUser, rule...)
		if err != nil {
			return fmt.Errorf("netns: DOCKER-USER rule for %s: %w", bridge, err)
		}
		if !ok {
			return nil
		}
		if err := ipt.Delete("filter", dockerUser, rule...); err != nil {
			return fmt.Errorf("netns: delete DOCKER-USER rule for %s: %w", bridge, err)
		}
	}
}

// ForwardRules lists the DOCKER-USER rules whose text contains substr, as
// argument lists ready for DeleteForwardRule.
func ForwardRules(substr string) ([][]string, error) {
	ipt, err := iptables.New()
	if err != nil {
		return nil, err
	}
	if ok, _ := ipt.ChainExists("filter", dockerUser); !ok {
		return nil, nil
	}
	rules, err := ipt.List("filter", dockerUser)
	if err != nil {
		return nil, err
	}
	var out [][]string
	for _, r := range rules {
		if !strings.Contains(r, substr) || !strings.HasPrefix(r, "-A "+dockerUser+" ") {
			continue
		}
		out = append(out, splitRule(strings.TrimPrefix(r, "-A "+dockerUser+" ")))
	}
	return out, nil
}

// DeleteForwardRule deletes one DOCKER-USER rule given as by ForwardRules.
func DeleteForwardRule(rule []string) error {
	ipt, err := iptables.New()
	if err != nil {
		return err
	}
	return ipt.Delete("filter", dockerUser, rule...)
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
