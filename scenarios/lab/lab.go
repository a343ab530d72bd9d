// Package lab brings up a topology of real daemons in containers on a fresh
// internal Docker network, plus a client network namespace on the same
// bridge, and tears all of it down again.
//
// Every container gets a fixed IP inside a /24 of 10.77.0.0/16; the VIP and the
// client sit outside Docker's dynamic range (the upper half of the /24), so
// Docker never hands them out. Containers run Docker's init (tini) with the
// stack's generated init script as its child, /run on a tmpfs, and are
// labelled redisha.lab=<name>; `redisha lab gc` removes leftovers by label
// and by the rhl- name prefix.
//
// Traffic rules: workload sockets are opened inside the client namespace
// (ClientDial), so partitions can cut clients off. The harness's own control
// and observer traffic (exec, INFO reads, event subscribers) comes from the
// host side of the bridge and is exempt from partitions.
package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
)

// Label keys put on every container and network of a lab.
const (
	LabelLab   = "redisha.lab"
	LabelNode  = "redisha.node"
	LabelStack = "redisha.stack"
	// NamePrefix starts the name of every lab and of every host-side object
	// (bridge, veth, netns, state file) so gc can find them.
	NamePrefix = "rhl-"
)

// Layout of a lab's /24: Docker assigns from .0/25 (fixed IPs live there),
// the VIP and the client live in the upper half, which Docker never uses.
const (
	dynamicHostsEnd = 128
	clientHost      = 250
	gatewayHost     = 1
)

// LabNet is the address block every lab's /24 comes from.
var LabNet = netip.MustParsePrefix("10.77.0.0/16")

func init() {
	// Ryuk's image cannot be pulled here; the lab cleans up itself (Close, gc).
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	if os.Getenv("REDISHA_LAB_DEBUG") == "" {
		tclog.SetDefault(tclog.NewNoopLogger())
	}
}

// Options tune Up. The zero value is fine.
type Options struct {
	// Name of the lab; "rhl-" is prepended when missing. Default: rhl-<random>.
	// At most 12 characters in all (it names the bridge and the veth).
	Name string
	// LogDir receives one <node>.log per container. Default: a new directory
	// under $TMPDIR/redisha-labs.
	LogDir string
	// Images maps a stack's logical image names to references. Default:
	// "node" -> $REDISHA_NODE_IMAGE or redisha/node:bookworm (built by make
	// images); other names -> $REDISHA_<NAME>_IMAGE.
	Images map[string]string
	// BinDir holds the project's binaries (redisha-*); it is bind-mounted
	// read-only at /opt/redisha/bin in every node. Default: $REDISHA_BIN_DIR,
	// else ./bin or the directory of the running executable when it holds
	// redisha-* files.
	BinDir string
	// Subnet forces the lab's /24 (inside 10.77.0.0/16). Default: a free one.
	Subnet netip.Prefix
	// ReadyTimeout bounds the readiness wait. Default 120 s.
	ReadyTimeout time.Duration
	// Detach leaves the lab running when ctx ends or the process exits (the
	// CLI's `lab up`); tear it down with Remove or `redisha lab down`.
	// Without Detach, Close also runs on ctx cancel and on SIGINT/SIGTERM.
	Detach bool
	// NoSignalHandler leaves SIGINT/SIGTERM to the caller, who then must
	// cancel ctx or call Close itself (e.g. a runner that first writes a
	// partial report). By default the lab tears itself down on those signals
	// and the process then dies of the same signal.
	NoSignalHandler bool
	// Logger receives progress; default slog.Default().
	Logger *slog.Logger
}

// Lab is a running topology.
type Lab struct {
	Name      string
	Stack     *Stack
	Params    Params
	Network   string // Docker network name (= Name)
	NetworkID string
	Bridge    string // the Linux bridge of the network
	Subnet    netip.Prefix
	Gateway   netip.Addr // the bridge's address: where host-side observer traffic comes from
	VIP       netip.Addr // invalid when the stack has no VIP
	Nodes     []*Node
	Client    *Node // the client namespace (Role "client", no container)
	LogDir    string
	// UpTime is how long Up took.
	UpTime time.Duration

	docker    *client.Client
	log       *slog.Logger
	opts      Options
	closeOnce sync.Once
	closeErr  error
	stopLogs  context.CancelFunc
	logsDone  sync.WaitGroup
	stopWatch func() bool
	startedAt time.Time  // when every container (and its phase 0 daemons) had started
	upMu      sync.Mutex // held by Up while it creates things
	cancelUp  context.CancelFunc
	created   time.Time
}

// Node returns the named node (the client namespace is "client"), or nil.
func (l *Lab) Node(name string) *Node {
	if name == "client" {
		return l.Client
	}
	for _, n := range l.Nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// NodesWithRole returns the nodes of one role, in stack order.
func (l *Lab) NodesWithRole(role string) []*Node {
	var out []*Node
	for _, n := range l.Nodes {
		if n.role == role {
			out = append(out, n)
		}
	}
	return out
}

var labNameRE = regexp.MustCompile(`^rhl-[a-z0-9]{1,8}$`)

// normalizeName applies the prefix and checks the length limits.
func normalizeName(name string) (string, error) {
	if name == "" {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		return NamePrefix + hex.EncodeToString(b), nil
	}
	if !strings.HasPrefix(name, NamePrefix) {
		name = NamePrefix + name
	}
	if !labNameRE.MatchString(name) {
		return "", fmt.Errorf("lab: name %q: want 1 to 8 lower-case letters or digits after %q", name, NamePrefix)
	}
	return name, nil
}

// Up brings up stack with params and waits until every readiness check
// passes. On any error it removes what it created.
func Up(ctx context.Context, stack *Stack, params Params, opts Options) (l *Lab, err error) {
	start := time.Now()
	if stack == nil {
		return nil, errors.New("lab: no stack")
	}
	if err := Preflight(ctx); err != nil {
		return nil, err
	}
	name, err := normalizeName(opts.Name)
	if err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 120 * time.Second
	}
	docker, err := dockerClient()
	if err != nil {
		return nil, err
	}
	l = &Lab{
		Name:    name,
		Network: name,
		Bridge:  name,
		Stack:   stack,
		Params:  params.withDefaults(stack.Defaults),
		docker:  docker,
		log:     logger.With("lab", name),
		opts:    opts,
		created: time.Now().UTC(),
	}
	if exists, err := labExists(ctx, docker, name); err != nil {
		return nil, err
	} else if exists {
		return nil, fmt.Errorf("lab: a lab named %s already exists (redisha lab down %s)", name, name)
	}
	l.LogDir = opts.LogDir
	if l.LogDir == "" {
		base := filepath.Join(os.TempDir(), "redisha-labs")
		if err := os.MkdirAll(base, 0o755); err != nil {
			return nil, fmt.Errorf("lab: log dir: %w", err)
		}
		l.LogDir = filepath.Join(base, name)
	}
	if err := os.MkdirAll(l.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("lab: log dir: %w", err)
	}

	// Close may run while Up is still creating (ctx cancelled, Ctrl-C): it
	// cancels upCtx and waits for upMu, so nothing is created after it
	// looked. Anything created must go again on failure.
	upCtx, cancelUp := context.WithCancel(ctx)
	defer cancelUp()
	l.cancelUp = cancelUp
	var logCtx context.Context
	logCtx, l.stopLogs = context.WithCancel(context.Background())
	l.upMu.Lock()
	if !opts.Detach {
		if !opts.NoSignalHandler {
			registerLab(l)
		}
		l.stopWatch = context.AfterFunc(ctx, func() {
			cctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			_ = l.Close(cctx)
		})
	}
	err = l.create(upCtx, logCtx, start)
	l.upMu.Unlock()
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
		defer cancel()
		if cerr := l.Close(cctx); cerr != nil {
			l.log.Warn("cleanup after failed up", "err", cerr)
		}
		return nil, err
	}
	l.UpTime = time.Since(start)
	l.log.Info("lab up", "stack", stack.Name, "subnet", l.Subnet, "vip", l.VIP, "took", l.UpTime.Round(time.Millisecond))
	return l, nil
}

// create makes the network, the client, the containers and waits for
// readiness; Up holds upMu around it.
func (l *Lab) create(ctx, logCtx context.Context, start time.Time) error {
	if err := l.createNetwork(ctx, l.opts.Subnet); err != nil {
		return err
	}
	if err := l.writeState(); err != nil {
		return err
	}
	if err := addBridgeAccept(l.Bridge, l.Name); err != nil {
		return err
	}
	if err := l.createClient(); err != nil {
		return err
	}
	if err := l.startNodes(ctx, logCtx); err != nil {
		return err
	}
	l.startedAt = time.Now()
	l.log.Debug("containers started", "took", time.Since(start).Round(time.Millisecond))
	if err := l.writeState(); err != nil {
		return err
	}
	return l.waitReady(ctx)
}

// Close removes everything of the lab: containers, network, client
// namespace, veth, firewall accept rules, state file. It is idempotent.
func (l *Lab) Close(ctx context.Context) error {
	l.closeOnce.Do(func() {
		if l.cancelUp != nil {
			l.cancelUp()
		}
		l.upMu.Lock()
		defer l.upMu.Unlock()
		if l.stopWatch != nil {
			l.stopWatch()
		}
		unregisterLab(l)
		l.closeErr = removeLab(ctx, l.docker, l.Name, l.log)
		if l.stopLogs != nil {
			l.stopLogs()
		}
		l.logsDone.Wait()
	})
	return l.closeErr
}

// Addrs lists name and address of every node, the client and the VIP, for
// tables.
func (l *Lab) Addrs() [][2]string {
	var rows [][2]string
	for _, n := range l.Nodes {
		rows = append(rows, [2]string{n.name, n.ip.String()})
	}
	if l.Client != nil {
		rows = append(rows, [2]string{"client", l.Client.ip.String()})
	}
	if l.VIP.IsValid() {
		rows = append(rows, [2]string{"vip", l.VIP.String()})
	}
	return rows
}

// binDir finds the directory of the project's binaries to mount, or "".
// Auto-detection only accepts a directory named bin holding redisha-* files
// (the module's bin/, or the one the running executable lives in), so a
// stray redisha binary in /tmp never gets /tmp mounted.
func binDir(opt string) string {
	if opt != "" {
		return opt
	}
	if env := os.Getenv("REDISHA_BIN_DIR"); env != "" {
		return env
	}
	var cands []string
	if wd, err := os.Getwd(); err == nil {
		// Tests run in the package directory; walk up to the module root.
		for d := wd; d != "/" && d != "."; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				cands = append(cands, filepath.Join(d, "bin"))
				break
			}
		}
	}
	if exe, err := os.Executable(); err == nil {
		cands = append(cands, filepath.Dir(exe))
	}
	for _, c := range cands {
		if filepath.Base(c) != "bin" {
			continue
		}
		if m, _ := filepath.Glob(filepath.Join(c, "redisha-*")); len(m) > 0 {
			if abs, err := filepath.Abs(c); err == nil {
				return abs
			}
		}
	}
	return ""
}

// ImageFor resolves a stack's logical image name.
func ImageFor(logical string, override map[string]string) string {
	if v := override[logical]; v != "" {
		return v
	}
	if strings.ContainsAny(logical, ":/") {
		return logical
	}
	env := "REDISHA_" + strings.ToUpper(strings.ReplaceAll(logical, "-", "_")) + "_IMAGE"
	if v := os.Getenv(env); v != "" {
		return v
	}
	if logical == "node" {
		return DefaultNodeImage
	}
	return "redisha/" + logical + ":latest"
}

// DefaultNodeImage is what `make images` builds.
const DefaultNodeImage = "redisha/node:bookworm"

// streamLogs copies a container's output to w until ctx ends, following it
// across stops and restarts of the container.
func (l *Lab) streamLogs(ctx context.Context, id string, w io.WriteCloser) {
	defer l.logsDone.Done()
	defer w.Close()
	since := ""
	for ctx.Err() == nil {
		rc, err := l.docker.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true, Since: since})
		if err != nil {
			if ctx.Err() != nil || isNotFound(err) {
				return
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		_, _ = stdcopyStream(w, rc)
		rc.Close()
		// The stream ends when the container stops; pick up after a restart
		// from this moment on.
		since = fmt.Sprintf("%d.%09d", time.Now().Unix(), time.Now().Nanosecond())
		select {
		case <-ctx.Done():
			return
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var _ = testcontainers.GenericContainer
