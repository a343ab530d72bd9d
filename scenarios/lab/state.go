package lab

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// StateDir holds one JSON file per lab so another process (`redisha lab
// down`, `lab status`) can find what a lab made. /run: gone after a reboot,
// like the lab itself.
var StateDir = "/run/redisha/labs"

// State is what a lab persists about itself.
type State struct {
	Name      string       `json:"name"`
	Stack     string       `json:"stack"`
	Network   string       `json:"network"`
	NetworkID string       `json:"networkId"`
	Bridge    string       `json:"bridge"`
	Subnet    netip.Prefix `json:"subnet"`
	Gateway   netip.Addr   `json:"gateway"`
	VIP       netip.Addr   `json:"vip,omitzero"`
	Client    StateNode    `json:"client"`
	Nodes     []StateNode  `json:"nodes"`
	LogDir    string       `json:"logDir"`
	Created   time.Time    `json:"created"`
	OwnerPID  int          `json:"ownerPid"`
	Detached  bool         `json:"detached"`
	Params    Params       `json:"params"`
}

// StateNode is one node in a State.
type StateNode struct {
	Name        string     `json:"name"`
	Role        string     `json:"role"`
	IP          netip.Addr `json:"ip"`
	ContainerID string     `json:"containerId,omitempty"`
	Netns       string     `json:"netns,omitempty"`
}

func statePath(name string) string { return filepath.Join(StateDir, name+".json") }

// State returns the lab's current state record.
func (l *Lab) State() State {
	st := State{
		Name: l.Name, Stack: l.Stack.Name, Network: l.Network, NetworkID: l.NetworkID,
		Bridge: l.Bridge, Subnet: l.Subnet, Gateway: l.Gateway, VIP: l.VIP, LogDir: l.LogDir,
		Created: l.created, OwnerPID: os.Getpid(), Detached: l.opts.Detach, Params: l.Params,
	}
	if l.Client != nil {
		st.Client = StateNode{Name: "client", Role: "client", IP: l.Client.ip, Netns: clientNetnsPath(l.Name)}
	}
	for _, n := range l.Nodes {
		st.Nodes = append(st.Nodes, StateNode{Name: n.name, Role: n.role, IP: n.ip, ContainerID: n.ContainerID()})
	}
	return st
}

func (l *Lab) writeState() error {
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return fmt.Errorf("lab: state dir: %w", err)
	}
	b, err := json.MarshalIndent(l.State(), "", "  ")
	if err != nil {
		return err
	}
	tmp := statePath(l.Name) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("lab: state: %w", err)
	}
	return os.Rename(tmp, statePath(l.Name))
}

func readState(name string) (*State, error) {
	b, err := os.ReadFile(statePath(name))
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("lab: state %s: %w", statePath(name), err)
	}
	return &st, nil
}

// ListStates returns the state of every lab recorded on this machine.
func ListStates() ([]State, error) {
	ents, err := os.ReadDir(StateDir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []State
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		st, err := readState(name)
		if err != nil {
			continue
		}
		out = append(out, *st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ownerAlive reports whether the process that made a non-detached lab still
// runs (then the lab is in use, not a leftover).
func (st *State) ownerAlive() bool {
	if st.Detached || st.OwnerPID <= 0 {
		return false
	}
	return syscall.Kill(st.OwnerPID, 0) == nil
}
