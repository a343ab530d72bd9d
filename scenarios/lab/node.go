package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"

	"github.com/redisha/redisha/components/netns"
)

var randRead = rand.Read

// Node is one container of a lab, or the lab's client namespace (Role
// "client", no container). It satisfies the fault package's Target,
// Pauser, Killer and DaemonFinder interfaces.
type Node struct {
	lab  *Lab
	name string
	role string
	ip   netip.Addr
	spec *NodeSpec

	mu          sync.Mutex
	containerID string
	pid         int
	daemons     []DaemonSpec
}

// Name is the node's name in the stack ("client" for the client namespace).
func (n *Node) Name() string { return n.name }

// Role is the node's role in the stack (redis, sentinel, proxy, client, ...).
func (n *Node) Role() string { return n.role }

// IP is the node's fixed address on the lab network.
func (n *Node) IP() netip.Addr { return n.ip }

// Addr is IP, under the name the fault package's Target uses.
func (n *Node) Addr() netip.Addr { return n.ip }

// ContainerID is the node's container id ("" for the client).
func (n *Node) ContainerID() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.containerID
}

// Pid is the host pid of the container's init (0 when it is not running).
// It changes when the container is started again.
func (n *Node) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pid
}

// NetnsPath is a path to the node's network namespace, usable with setns.
// For a container it is /proc/<pid>/ns/net and changes after Start.
func (n *Node) NetnsPath() string {
	if n.role == "client" {
		return clientNetnsPath(n.lab.Name)
	}
	return netns.PidPath(n.Pid())
}

func (n *Node) String() string { return n.name + "(" + n.ip.String() + ")" }

func (n *Node) needContainer() error {
	if n.role == "client" {
		return fmt.Errorf("lab: %s is a plain network namespace, not a container", n.name)
	}
	return nil
}

// refresh reads the container's current init pid.
func (n *Node) refresh(ctx context.Context) error {
	res, err := n.lab.docker.ContainerInspect(ctx, n.ContainerID(), client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("lab: inspect %s: %v", n.name, oneLine(err))
	}
	pid := 0
	if res.Container.State != nil && res.Container.State.Running {
		pid = res.Container.State.Pid
	}
	n.mu.Lock()
	n.pid = pid
	n.mu.Unlock()
	if pid != 0 {
		return dropDefaultRoute(n.NetnsPath())
	}
	return nil
}

// dropDefaultRoute removes the default route Docker gives containers even on
// an internal network: a node can reach the lab subnet and nothing else, so
// no daemon can ever send a packet towards the VM's gateway.
func dropDefaultRoute(nsPath string) error {
	if err := netns.DropDefaultRoutes(nsPath); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

// Pause freezes every process of the node (cgroup freezer: docker pause).
// Sockets stay open; peers see silence.
func (n *Node) Pause(ctx context.Context) error {
	if err := n.needContainer(); err != nil {
		return err
	}
	_, err := n.lab.docker.ContainerPause(ctx, n.ContainerID(), client.ContainerPauseOptions{})
	return wrap(err, "pause", n.name)
}

// Unpause thaws a paused node.
func (n *Node) Unpause(ctx context.Context) error {
	if err := n.needContainer(); err != nil {
		return err
	}
	_, err := n.lab.docker.ContainerUnpause(ctx, n.ContainerID(), client.ContainerUnpauseOptions{})
	return wrap(err, "unpause", n.name)
}

// Kill sends SIGKILL to the whole container (a crash of the machine).
func (n *Node) Kill(ctx context.Context) error {
	if err := n.needContainer(); err != nil {
		return err
	}
	_, err := n.lab.docker.ContainerKill(ctx, n.ContainerID(), client.ContainerKillOptions{Signal: "KILL"})
	if err != nil {
		return wrap(err, "kill", n.name)
	}
	// Kill returns before the container is gone; wait so a following Start
	// or NetnsPath sees the stopped state.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		res, err := n.lab.docker.ContainerInspect(ctx, n.ContainerID(), client.ContainerInspectOptions{})
		if err != nil {
			return wrap(err, "kill", n.name)
		}
		if res.Container.State == nil || !res.Container.State.Running {
			n.mu.Lock()
			n.pid = 0
			n.mu.Unlock()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("lab: kill %s: container still running after 20 s", n.name)
}

// Start starts a stopped node again; its init starts all of its daemons.
// Pid and NetnsPath change.
func (n *Node) Start(ctx context.Context) error {
	if err := n.needContainer(); err != nil {
		return err
	}
	if _, err := n.lab.docker.ContainerStart(ctx, n.ContainerID(), client.ContainerStartOptions{}); err != nil {
		return wrap(err, "start", n.name)
	}
	return n.refresh(ctx)
}

// Restart stops the node (SIGTERM, then SIGKILL after 2 s) and starts it.
func (n *Node) Restart(ctx context.Context) error {
	if err := n.needContainer(); err != nil {
		return err
	}
	// The node's init stops its daemons within 8 s (redis saves its
	// snapshot); past 10 s Docker kills what is left.
	timeout := 10
	if _, err := n.lab.docker.ContainerRestart(ctx, n.ContainerID(), client.ContainerRestartOptions{Timeout: &timeout}); err != nil {
		return wrap(err, "restart", n.name)
	}
	return n.refresh(ctx)
}

// StartDaemon starts one of the node's daemons again (e.g. after a
// crash fault killed it by pid), detached like the init does.
func (n *Node) StartDaemon(ctx context.Context, daemon string) error {
	_, err := n.Exec(ctx, "/bin/sh", initPath, "start", daemon)
	return err
}

// ExecError is returned by Exec when the command ran but failed.
type ExecError struct {
	Node     string
	Cmd      []string
	ExitCode int
	Stderr   string
}

func (e *ExecError) Error() string {
	return fmt.Sprintf("lab: %s: %s: exit %d: %s", e.Node, strings.Join(e.Cmd, " "), e.ExitCode, strings.TrimSpace(e.Stderr))
}

// Exec runs cmd inside the node and returns its stdout; a non-zero exit is
// an *ExecError carrying stderr. For the client namespace it runs a host
// binary inside the namespace (netns.Run).
func (n *Node) Exec(ctx context.Context, cmd ...string) (string, error) {
	if len(cmd) == 0 {
		return "", errors.New("lab: exec: empty command")
	}
	if n.role == "client" {
		c := exec.CommandContext(ctx, cmd[0], cmd[1:]...)
		var out, errb bytes.Buffer
		c.Stdout, c.Stderr = &out, &errb
		if err := netns.Run(n.NetnsPath(), c); err != nil {
			code := -1
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			}
			return out.String(), &ExecError{Node: n.name, Cmd: cmd, ExitCode: code, Stderr: errb.String() + err.Error()}
		}
		return out.String(), nil
	}
	d := n.lab.docker
	cr, err := d.ExecCreate(ctx, n.ContainerID(), client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return "", wrap(err, "exec", n.name)
	}
	att, err := d.ExecAttach(ctx, cr.ID, client.ExecAttachOptions{})
	if err != nil {
		return "", wrap(err, "exec", n.name)
	}
	defer att.Close()
	var out, errb bytes.Buffer
	copyDone := make(chan error, 1)
	go func() { _, err := stdcopy.StdCopy(&out, &errb, att.Reader); copyDone <- err }()
	select {
	case <-ctx.Done():
		att.Close()
		return "", ctx.Err()
	case <-copyDone:
	}
	ins, err := d.ExecInspect(ctx, cr.ID, client.ExecInspectOptions{})
	if err != nil {
		return out.String(), wrap(err, "exec", n.name)
	}
	if ins.ExitCode != 0 {
		return out.String(), &ExecError{Node: n.name, Cmd: cmd, ExitCode: ins.ExitCode, Stderr: errb.String()}
	}
	return out.String(), nil
}

// DaemonPID returns the host pid of the named daemon (its process name, as
// in the stack's daemons: "redis-server", "redis-sentinel", "haproxy",
// "keepalived") inside this node; the oldest one when there are several
// (keepalived's parent, not its VRRP child: see DaemonPIDs).
func (n *Node) DaemonPID(ctx context.Context, daemon string) (int, error) {
	pids, err := n.DaemonPIDs(ctx, daemon)
	if err != nil {
		return 0, err
	}
	return pids[0], nil
}

// DaemonPIDs returns the host pids of every live process of the named
// daemon inside this node, oldest first. Freezing a daemon means stopping
// all of them: keepalived sends VRRP adverts from a child process.
func (n *Node) DaemonPIDs(ctx context.Context, daemon string) ([]int, error) {
	if err := n.needContainer(); err != nil {
		return nil, err
	}
	initPid := n.Pid()
	if initPid == 0 {
		return nil, fmt.Errorf("lab: %s is not running", n.name)
	}
	pidns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", initPid))
	if err != nil {
		return nil, fmt.Errorf("lab: %s: %w", n.name, err)
	}
	comm := daemon
	if len(comm) > 15 { // the kernel keeps 15 bytes of comm
		comm = comm[:15]
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	type proc struct {
		pid   int
		start uint64
	}
	var found []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == initPid {
			continue
		}
		c, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(c)) != comm {
			continue
		}
		if ns, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns/pid")); err != nil || ns != pidns {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Skip zombies: a dead daemon must not be reported as running.
		fields := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
		if len(fields) < 20 || fields[0] == "Z" || fields[0] == "X" {
			continue
		}
		start, _ := strconv.ParseUint(fields[19], 10, 64)
		found = append(found, proc{pid, start})
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("lab: %s: no %s process running", n.name, daemon)
	}
	sort.Slice(found, func(i, j int) bool {
		if found[i].start != found[j].start {
			return found[i].start < found[j].start
		}
		return found[i].pid < found[j].pid
	})
	pids := make([]int, len(found))
	for i, p := range found {
		pids[i] = p.pid
	}
	return pids, nil
}

func wrap(err error, op, node string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("lab: %s %s: %v", op, node, oneLine(err))
}

// startNodes creates and starts every container in parallel.
func (l *Lab) startNodes(ctx context.Context, logCtx context.Context) error {
	data := &renderData{
		Lab:    l.Name,
		Params: l.Params,
		Nodes:  map[string]NodeInfo{},
		VIP:    l.VIP,
		Subnet: l.Subnet,
		Client: l.Client.ip,
	}
	for _, n := range l.Nodes {
		data.Nodes[n.name] = NodeInfo{Name: n.name, Role: n.role, IP: n.ip, Vars: n.spec.Vars}
	}
	bins := binDir(l.opts.BinDir)
	// Never let testcontainers pull: there is no registry here, and an
	// offline user wants "run make images", not a pull error.
	checked := map[string]bool{}
	for _, n := range l.Nodes {
		image := ImageFor(n.spec.Image, l.opts.Images)
		if checked[image] {
			continue
		}
		checked[image] = true
		if _, err := l.docker.ImageInspect(ctx, image); err != nil {
			if isNotFound(err) {
				return fmt.Errorf("lab: image %s is missing; run 'make images' (or set REDISHA_NODE_IMAGE to an image you have)", image)
			}
			return fmt.Errorf("lab: image %s: %v", image, oneLine(err))
		}
	}
	errs := make(chan error, len(l.Nodes))
	for _, n := range l.Nodes {
		d := *data
		d.Self = data.Nodes[n.name]
		files, daemons, err := l.Stack.render(n.spec, &d)
		if err != nil {
			return err
		}
		n.daemons = daemons
		go func() { errs <- l.startNode(ctx, logCtx, n, files, bins) }()
	}
	var all []error
	for range l.Nodes {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

func (l *Lab) startNode(ctx, logCtx context.Context, n *Node, files map[string][]byte, bins string) error {
	var cfiles []testcontainers.ContainerFile
	for _, path := range sortedKeys(files) {
		mode := int64(0o644)
		if strings.HasSuffix(path, ".sh") {
			mode = 0o755
		}
		cfiles = append(cfiles, testcontainers.ContainerFile{Reader: bytes.NewReader(files[path]), ContainerFilePath: path, FileMode: mode})
	}
	image := ImageFor(n.spec.Image, l.opts.Images)
	req := testcontainers.ContainerRequest{
		Image:      image,
		Name:       l.Name + "-" + n.name,
		Entrypoint: []string{"/bin/sh", initPath},
		Cmd:        []string{},
		Labels:     map[string]string{LabelLab: l.Name, LabelNode: n.name, LabelStack: l.Stack.Name},
		Networks:   []string{l.Network},
		Tmpfs:      map[string]string{"/run": "rw,nosuid,nodev,mode=755"},
		Files:      cfiles,
		ConfigModifier: func(c *container.Config) {
			c.Hostname = n.name
		},
		HostConfigModifier: func(h *container.HostConfig) {
			yes := true
			h.Init = &yes // Docker's tini as PID 1 reaps every dead daemon
			h.CapAdd = append(h.CapAdd, "NET_ADMIN", "NET_RAW", "NET_BROADCAST", "SYS_NICE")
			h.Sysctls = n.spec.Sysctls
			h.RestartPolicy = container.RestartPolicy{Name: "no"}
			if bins != "" {
				h.Binds = append(h.Binds, bins+":/opt/redisha/bin:ro")
			}
		},
		EndpointSettingsModifier: func(m map[string]*network.EndpointSettings) {
			es := m[l.Network]
			if es == nil {
				es = &network.EndpointSettings{}
				m[l.Network] = es
			}
			es.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: n.ip}
		},
	}
	ctr, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{ContainerRequest: req, Started: true})
	if ctr != nil {
		n.mu.Lock()
		n.containerID = ctr.GetContainerID()
		n.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("lab: node %s: %v", n.name, oneLine(err))
	}
	if err := n.refresh(ctx); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(l.LogDir, n.name+".log"))
	if err != nil {
		return fmt.Errorf("lab: node %s log: %w", n.name, err)
	}
	l.logsDone.Add(1)
	go l.streamLogs(logCtx, n.ContainerID(), f)
	return nil
}
