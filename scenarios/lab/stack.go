package lab

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"

	"github.com/redisha/redisha/scenarios/result"
	"github.com/redisha/redisha/scenarios/spec"
	"github.com/redisha/redisha/scenarios/stacks"
)

// Stack is a topology as data: the nodes, their daemons, the config templates
// rendered for each node, and how to tell that it is ready. Built-in stacks
// are embedded from scenarios/stacks/<name>/; LoadStack also reads a directory.
type Stack struct {
	Name        string     `yaml:"name"`
	Description string     `yaml:"description"`
	Defaults    Params     `yaml:"defaults"`
	VIP         *VIPSpec   `yaml:"vip"`
	Nodes       []NodeSpec `yaml:"nodes"`
	files       fs.FS      // where the templates live
	templates   map[string]*template.Template
}

// VIPSpec reserves a virtual IP outside Docker's address range; Holders are
// the nodes expected to hold it (exactly one at a time once the lab is ready).
type VIPSpec struct {
	Host    int      `yaml:"host"` // last octet inside the lab's /24
	Holders []string `yaml:"holders"`
}

// NodeSpec describes one container.
type NodeSpec struct {
	Name    string            `yaml:"name"`
	Role    string            `yaml:"role"`
	Image   string            `yaml:"image"` // logical image name ("node" if empty) or a full reference
	Host    int               `yaml:"host"`  // last octet of the node's IP inside the lab's /24
	Vars    map[string]string `yaml:"vars"`
	Sysctls map[string]string `yaml:"sysctls"`
	// Files maps a path inside the container to a template in the stack directory.
	Files   map[string]string `yaml:"files"`
	Prepare []string          `yaml:"prepare"` // shell lines run by the node's init before the daemons
	Daemons []DaemonSpec      `yaml:"daemons"`
	Ready   []ReadySpec       `yaml:"ready"`
}

// DaemonSpec is one process the node's init starts. Phase 1 daemons start
// only once every node's phase 0 readiness checks pass (on the first boot;
// a restarted node starts all of its daemons at once).
type DaemonSpec struct {
	Name  string `yaml:"name"` // process name (comm), used by DaemonPID
	Run   string `yaml:"run"`  // shell command line, rendered as a template
	Phase int    `yaml:"phase"`
	// Role is what the daemon does (redis, sentinel, proxy, vip: spec.DaemonRoles), for
	// programs the harness does not know by name (spec.KnownDaemons); "" for those it does.
	Role string `yaml:"role"`
}

// DaemonRole returns what the daemon does in the stack: its declared role, else the role of
// the program it names, else "".
func (d DaemonSpec) DaemonRole() string {
	if d.Role != "" {
		return d.Role
	}
	return spec.KnownDaemons[d.Name]
}

// DaemonRoles maps each daemon of the node to its role (daemons without one are left out).
func (n *NodeSpec) DaemonRoles() map[string]string {
	out := map[string]string{}
	for _, d := range n.Daemons {
		if r := d.DaemonRole(); r != "" {
			out[d.Name] = r
		}
	}
	return out
}

// DaemonWithRole returns the name of the node's daemon with that role ("" when none).
func (n *NodeSpec) DaemonWithRole(role string) string {
	for _, d := range n.Daemons {
		if d.DaemonRole() == role {
			return d.Name
		}
	}
	return ""
}

// ReadySpec is a shell check run inside the node until it exits 0.
type ReadySpec struct {
	Sh    string `yaml:"sh"`
	Phase int    `yaml:"phase"`
}

// Params are the stack parameters (spec.StackParams, the one definition): the same fields,
// the same YAML spellings and the same merge, named here for the lab's callers. Convert freely
// between the two.
type Params spec.StackParams

// UnmarshalYAML reads either spelling strictly, as spec.StackParams does.
func (p *Params) UnmarshalYAML(n *yaml.Node) error { return (*spec.StackParams)(p).UnmarshalYAML(n) }

// withDefaults fills zero fields of p from def, then from the recipe's ports and names
// (result.Conventions), so templates and the harness always read the same ones.
func (p Params) withDefaults(def Params) Params {
	return Params(spec.StackParams(p).Merge(spec.StackParams(def)).Merge(result.Conventions))
}

// Duration is the parameters' interval type, rendered in HAProxy's syntax ("1s", "500ms").
type Duration = spec.Interval

var nodeNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,19}$`)

// BuiltinStacks lists the names of the embedded stacks.
func BuiltinStacks() []string {
	ents, _ := fs.ReadDir(stacks.FS, ".")
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

// LoadStack loads a built-in stack by name, or a stack directory when nameOrDir
// contains a path separator or names an existing directory.
func LoadStack(nameOrDir string) (*Stack, error) {
	if st, err := os.Stat(nameOrDir); (err == nil && st.IsDir()) || strings.ContainsRune(nameOrDir, os.PathSeparator) {
		return loadStackFS(os.DirFS(nameOrDir), nameOrDir)
	}
	sub, err := fs.Sub(stacks.FS, nameOrDir)
	if err != nil {
		return nil, err
	}
	if _, err := fs.Stat(sub, "stack.yaml"); err != nil {
		return nil, fmt.Errorf("lab: no stack %q (built-in: %s; or pass a directory holding stack.yaml)", nameOrDir, strings.Join(BuiltinStacks(), ", "))
	}
	return loadStackFS(sub, nameOrDir)
}

func loadStackFS(fsys fs.FS, where string) (*Stack, error) {
	raw, err := fs.ReadFile(fsys, "stack.yaml")
	if err != nil {
		return nil, fmt.Errorf("lab: stack %s: %w", where, err)
	}
	var s Stack
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("lab: stack %s/stack.yaml: %w", where, err)
	}
	s.files = fsys
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("lab: stack %s: %w", where, err)
	}
	return &s, nil
}

func (s *Stack) validate() error {
	if len(s.Nodes) == 0 {
		return errors.New("no nodes")
	}
	seenName := map[string]bool{"client": true}
	seenHost := map[int]string{}
	if s.VIP != nil {
		seenHost[s.VIP.Host] = "vip"
		if s.VIP.Host < dynamicHostsEnd || s.VIP.Host > 254 || s.VIP.Host == clientHost {
			return fmt.Errorf("vip host %d must be in %d..254 (outside Docker's range) and not %d (the client)", s.VIP.Host, dynamicHostsEnd, clientHost)
		}
	}
	s.templates = map[string]*template.Template{}
	for i := range s.Nodes {
		n := &s.Nodes[i]
		if !nodeNameRE.MatchString(n.Name) {
			return fmt.Errorf("node %d: name %q must match %s (and not be \"client\")", i, n.Name, nodeNameRE)
		}
		if seenName[n.Name] {
			return fmt.Errorf("node %q: duplicate or reserved name", n.Name)
		}
		seenName[n.Name] = true
		if n.Host == 0 {
			n.Host = 11 + i
		}
		if n.Host < 2 || n.Host >= dynamicHostsEnd {
			return fmt.Errorf("node %q: host %d must be in 2..%d (Docker's range for fixed IPs)", n.Name, n.Host, dynamicHostsEnd-1)
		}
		if other, ok := seenHost[n.Host]; ok {
			return fmt.Errorf("node %q: host %d already used by %s", n.Name, n.Host, other)
		}
		seenHost[n.Host] = n.Name
		if n.Image == "" {
			n.Image = "node"
		}
		if n.Role == "" {
			return fmt.Errorf("node %q: no role", n.Name)
		}
		for d := range n.Daemons {
			if n.Daemons[d].Name == "" || n.Daemons[d].Run == "" {
				return fmt.Errorf("node %q: daemon %d needs name and run", n.Name, d)
			}
			if r := n.Daemons[d].Role; r != "" && spec.DaemonRoles[r] == "" {
				return fmt.Errorf("node %q: daemon %s: role %q: want redis, sentinel, proxy or vip", n.Name, n.Daemons[d].Name, r)
			}
			if n.Daemons[d].Phase < 0 || n.Daemons[d].Phase > 1 {
				return fmt.Errorf("node %q: daemon %s: phase must be 0 or 1", n.Name, n.Daemons[d].Name)
			}
		}
		for target, tmpl := range n.Files {
			if !path.IsAbs(target) {
				return fmt.Errorf("node %q: file %q: path must be absolute", n.Name, target)
			}
			if _, ok := s.templates[tmpl]; ok {
				continue
			}
			text, err := fs.ReadFile(s.files, tmpl)
			if err != nil {
				return fmt.Errorf("node %q: template %s: %w", n.Name, tmpl, err)
			}
			t, err := template.New(tmpl).Funcs(templateFuncs(nil)).Option("missingkey=error").Parse(string(text))
			if err != nil {
				return fmt.Errorf("template %s: %w", tmpl, err)
			}
			s.templates[tmpl] = t
		}
	}
	if s.VIP != nil {
		for _, h := range s.VIP.Holders {
			if !seenName[h] || h == "client" {
				return fmt.Errorf("vip holder %q is not a node", h)
			}
		}
	}
	return nil
}

// Node returns the spec of the named node, or nil.
func (s *Stack) Node(name string) *NodeSpec {
	for i := range s.Nodes {
		if s.Nodes[i].Name == name {
			return &s.Nodes[i]
		}
	}
	return nil
}

// NodeInfo is what templates know about a node.
type NodeInfo struct {
	Name string
	Role string
	IP   netip.Addr
	Vars map[string]string
}

// renderData is the data every template gets.
type renderData struct {
	Lab    string
	Params Params
	Self   NodeInfo
	Nodes  map[string]NodeInfo
	VIP    netip.Addr
	Subnet netip.Prefix
	Client netip.Addr
}

func templateFuncs(d *renderData) template.FuncMap {
	return template.FuncMap{
		"ip": func(name string) (string, error) {
			if d == nil {
				return "", nil
			}
			n, ok := d.Nodes[name]
			if !ok {
				return "", fmt.Errorf("ip: no node %q", name)
			}
			return n.IP.String(), nil
		},
		"role": func(role string) []NodeInfo {
			if d == nil {
				return nil
			}
			var out []NodeInfo
			for _, n := range d.Nodes {
				if n.Role == role {
					out = append(out, n)
				}
			}
			sort.Slice(out, func(i, j int) bool { return out[i].IP.Less(out[j].IP) })
			return out
		},
		"fail": func(msg string) (string, error) { return "", errors.New(msg) },
	}
}

// render renders one node's files and daemon command lines.
func (s *Stack) render(spec *NodeSpec, d *renderData) (map[string][]byte, []DaemonSpec, error) {
	files := map[string][]byte{}
	for target, tmpl := range spec.Files {
		t, err := s.templates[tmpl].Clone()
		if err != nil {
			return nil, nil, err
		}
		var buf bytes.Buffer
		if err := t.Funcs(templateFuncs(d)).Execute(&buf, d); err != nil {
			return nil, nil, fmt.Errorf("lab: node %s: %s: %w", spec.Name, tmpl, err)
		}
		files[target] = buf.Bytes()
	}
	daemons := make([]DaemonSpec, len(spec.Daemons))
	for i, dm := range spec.Daemons {
		t, err := template.New(dm.Name).Funcs(templateFuncs(d)).Option("missingkey=error").Parse(dm.Run)
		if err != nil {
			return nil, nil, fmt.Errorf("lab: node %s: daemon %s: %w", spec.Name, dm.Name, err)
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, d); err != nil {
			return nil, nil, fmt.Errorf("lab: node %s: daemon %s: %w", spec.Name, dm.Name, err)
		}
		daemons[i] = DaemonSpec{Name: dm.Name, Run: buf.String(), Phase: dm.Phase, Role: dm.Role}
	}
	files[initPath] = initScript(spec, daemons)
	return files, daemons, nil
}

// initPath is the node's init script; Docker's own init (tini) runs it as its
// child, so every daemon that dies is reaped at once.
const initPath = "/opt/redisha/init.sh"

// startedMarker tells a restarted node's init to start every phase at once.
const startedMarker = "/var/lib/redisha-lab/started"

// initScript generates the node's init. Daemons are started detached
// (double fork) so they are reparented to PID 1, which reaps them: a killed
// daemon never lingers as a zombie that `killall -0` would still find.
func initScript(spec *NodeSpec, daemons []DaemonSpec) []byte {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n# Generated by the redisha lab for node " + spec.Name + ".\n")
	b.WriteString("# usage: init.sh            start phase 0 daemons (all daemons when the node ran before), then idle\n")
	b.WriteString("#        init.sh start NAME  start one daemon (detached, logs to the container log)\n")
	b.WriteString("start() {\n\tcase \"$1\" in\n")
	for _, d := range daemons {
		fmt.Fprintf(&b, "\t%s) (setsid sh -c %s </dev/null >>/proc/1/fd/1 2>&1 &) ;;\n", shellQuote(d.Name), shellQuote("exec "+d.Run))
	}
	b.WriteString("\t*) echo \"init.sh: no daemon $1\" >&2; return 1 ;;\n\tesac\n}\n")
	b.WriteString("if [ \"${1:-}\" = start ]; then\n\tshift\n\tfor d in \"$@\"; do start \"$d\" || exit 1; done\n\texit 0\nfi\n")
	for _, line := range spec.Prepare {
		b.WriteString(line + "\n")
	}
	var p0, p1 []string
	for _, d := range daemons {
		if d.Phase == 0 {
			p0 = append(p0, shellQuote(d.Name))
		} else {
			p1 = append(p1, shellQuote(d.Name))
		}
	}
	if len(p0) > 0 {
		fmt.Fprintf(&b, "for d in %s; do start \"$d\"; done\n", strings.Join(p0, " "))
	}
	if len(p1) > 0 {
		fmt.Fprintf(&b, "if [ -e %s ]; then for d in %s; do start \"$d\"; done; fi\n", startedMarker, strings.Join(p1, " "))
	}
	// docker stop and restart signal only PID 1 (Docker's init), which passes
	// the signal to this script alone; the daemons, reparented away, would be
	// SIGKILLed when the timeout ends. So a stop is passed on to every daemon
	// and awaited: redis then saves its snapshot and a lab "restart" is a
	// clean restart, not a crash.
	b.WriteString("stopping=\nstop() {\n\t[ -n \"$stopping\" ] && return\n\tstopping=1\n" +
		"\techo \"init: node " + spec.Name + " stopping daemons\"\n" +
		"\tkill -s TERM -- -1 2>/dev/null\n" +
		"\ti=0\n\twhile kill -s 0 -- -1 2>/dev/null && [ $i -lt 80 ]; do sleep 0.1; i=$((i+1)); done\n" +
		"\texit 0\n}\ntrap stop TERM INT\n")
	b.WriteString("echo \"init: node " + spec.Name + " started\"\n")
	// A waited-for child, unlike exec, leaves the shell able to run its trap.
	b.WriteString("while :; do sleep 3600 & wait $!; done\n")
	return []byte(b.String())
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
