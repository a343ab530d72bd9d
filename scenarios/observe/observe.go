// Package observe watches a running stack from the host side: every sentinel's pub/sub events,
// every redis node's replication role, and which nodes hold the VIP. Its connections leave from
// the host (the lab bridge's own address), never from the client namespace, so partitions between
// nodes and clients do not blind it. It also waits for convergence and reads the final state.
package observe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/redisha/redisha/components/netns"
	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/scenarios/history"
)

// Endpoint is one daemon to watch.
type Endpoint struct {
	Node string // node name
	Addr string // ip:port
}

// Recorder receives events (history.Writer satisfies it).
type Recorder interface{ Write(v any) }

// Config says what to watch.
type Config struct {
	Sentinels []Endpoint
	Redis     []Endpoint
	// VIPHolders lists the nodes holding the VIP right now; nil when the stack has no VIP.
	VIPHolders func(ctx context.Context) ([]string, error)
	Proxies    []Proxy
	Poll       time.Duration // role, VIP and proxy polling period; default 200 ms
	Rec        Recorder
}

// Observer runs until Stop.
type Observer struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start begins watching.
func Start(ctx context.Context, cfg Config) *Observer {
	if cfg.Poll <= 0 {
		cfg.Poll = 200 * time.Millisecond
	}
	quiet.Do(func() { redis.SetLogger(discard{}) })
	ctx, cancel := context.WithCancel(ctx)
	o := &Observer{cancel: cancel}
	for _, s := range cfg.Sentinels {
		o.wg.Add(1)
		go func() { defer o.wg.Done(); watchSentinel(ctx, s, cfg.Rec) }()
	}
	for _, r := range cfg.Redis {
		o.wg.Add(1)
		go func() { defer o.wg.Done(); watchRole(ctx, r, cfg.Poll, cfg.Rec) }()
	}
	for _, p := range cfg.Proxies {
		o.wg.Add(1)
		go func() { defer o.wg.Done(); watchProxy(ctx, p, cfg.Poll, cfg.Rec) }()
	}
	if cfg.VIPHolders != nil {
		o.wg.Add(1)
		go func() { defer o.wg.Done(); watchVIP(ctx, cfg.VIPHolders, cfg.Poll, cfg.Rec) }()
	}
	return o
}

// go-redis logs each failed dial of a watcher; the events record outages already.
var quiet sync.Once

type discard struct{}

func (discard) Printf(context.Context, string, ...interface{}) {}

// Stop ends every watcher and waits for them.
func (o *Observer) Stop() {
	o.cancel()
	o.wg.Wait()
}

// Client returns a host-side go-redis client for control reads with short timeouts.
func Client(addr string, timeout time.Duration) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: addr, Protocol: 2, DisableIdentity: true, PoolSize: 1, MaxRetries: -1, DialerRetries: 1,
		DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// watchSentinel subscribes to every channel of one sentinel, reconnecting after crashes.
func watchSentinel(ctx context.Context, s Endpoint, rec Recorder) {
	connected := true
	for ctx.Err() == nil {
		c := redis.NewClient(&redis.Options{Addr: s.Addr, Protocol: 2, DisableIdentity: true, MaxRetries: -1,
			DialerRetries: 1, DialTimeout: time.Second,
			MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
		ps := c.PSubscribe(ctx, "*")
		// go-redis does not interrupt a blocked read on cancel; closing the connection does.
		stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
		for ctx.Err() == nil {
			msg, err := ps.ReceiveTimeout(ctx, 3*time.Second)
			if ctx.Err() != nil {
				break
			}
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					if perr := ps.Ping(ctx); perr == nil {
						continue
					}
				}
				if connected && ctx.Err() == nil {
					rec.Write(history.Event{Time: time.Now(), Source: history.SourceSentinel, Kind: "observer-lost", Node: s.Node, Detail: err.Error()})
				}
				connected = false
				break
			}
			switch m := msg.(type) {
			case *redis.Subscription:
				if !connected {
					rec.Write(history.Event{Time: time.Now(), Source: history.SourceSentinel, Kind: "observer-back", Node: s.Node})
				}
				connected = true
			case *redis.Message:
				if strings.HasPrefix(m.Channel, "__sentinel__:") {
					continue // hellos every 2 s: noise
				}
				ev := history.Event{Time: time.Now(), Source: history.SourceSentinel, Kind: m.Channel, Node: s.Node, Detail: m.Payload}
				if m.Channel == history.KindSwitchMaster {
					if from, to, ok := history.SwitchMasterAddrs(m.Payload); ok {
						ev.Attrs = map[string]string{"from": from, "to": to}
					}
				}
				rec.Write(ev)
			}
		}
		stop()
		_ = ps.Close()
		_ = c.Close()
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

// Role is what INFO replication says about one node.
type Role struct {
	Role       string // master, slave, or unreachable
	MasterHost string // for replicas: ip:port of their master
	LinkUp     bool   // replica: master_link_status:up
	Offset     int64  // master_repl_offset (master) or slave_repl_offset (replica)
	Err        string
}

// ReadRole asks one node for its replication state.
func ReadRole(ctx context.Context, c *redis.Client) Role {
	s, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return Role{Role: "unreachable", Err: err.Error()}
	}
	info := resp.ParseInfo(s)
	r := Role{Role: info.Get("role")}
	if r.Role == "slave" {
		r.MasterHost = net.JoinHostPort(info.Get("master_host"), info.Get("master_port"))
		r.LinkUp = info.Get("master_link_status") == "up"
		r.Offset, _ = strconv.ParseInt(info.Get("slave_repl_offset"), 10, 64)
	} else {
		r.Offset, _ = strconv.ParseInt(info.Get("master_repl_offset"), 10, 64)
	}
	return r
}

func watchRole(ctx context.Context, r Endpoint, poll time.Duration, rec Recorder) {
	c := Client(r.Addr, poll+100*time.Millisecond)
	defer c.Close()
	last := Role{Role: "?"}
	for {
		cur := ReadRole(ctx, c)
		if ctx.Err() != nil {
			return
		}
		if cur.Role != last.Role || cur.MasterHost != last.MasterHost || cur.LinkUp != last.LinkUp {
			attrs := map[string]string{"role": cur.Role, "addr": r.Addr}
			if cur.Role == "slave" {
				attrs["master"] = cur.MasterHost
				attrs["link"] = map[bool]string{true: "up", false: "down"}[cur.LinkUp]
			}
			rec.Write(history.Event{Time: time.Now(), Source: history.SourceRole, Kind: history.KindRole, Node: r.Node, Attrs: attrs, Detail: cur.Err})
			last = cur
		}
		if !sleepCtx(ctx, poll) {
			return
		}
	}
}

func watchVIP(ctx context.Context, holders func(context.Context) ([]string, error), poll time.Duration, rec Recorder) {
	last := "?"
	for {
		hs, err := holders(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			sort.Strings(hs)
			cur := strings.Join(hs, ",")
			if cur != last {
				rec.Write(history.Event{Time: time.Now(), Source: history.SourceVIP, Kind: history.KindVIPHolder, Node: cur,
					Attrs: map[string]string{"holders": cur, "count": strconv.Itoa(len(hs))}})
				last = cur
			}
		}
		if !sleepCtx(ctx, poll) {
			return
		}
	}
}

// MasterFromSentinels asks the sentinels for the master's address and returns the answer of the
// majority of those that reply.
func MasterFromSentinels(ctx context.Context, sentinels []Endpoint, masterName string) (string, error) {
	votes := map[string]int{}
	var errs []error
	for _, s := range sentinels {
		c := Client(s.Addr, time.Second)
		v, err := c.Do(ctx, "SENTINEL", "get-master-addr-by-name", masterName).StringSlice()
		c.Close()
		if err != nil || len(v) != 2 {
			errs = append(errs, fmt.Errorf("%s: %v", s.Node, err))
			continue
		}
		votes[net.JoinHostPort(v[0], v[1])]++
	}
	best, n := "", 0
	for a, c := range votes {
		if c > n {
			best, n = a, c
		}
	}
	if best == "" {
		return "", fmt.Errorf("no sentinel named the master: %w", errors.Join(errs...))
	}
	return best, nil
}

// Converge waits until exactly one node is master and every other node is its replica with the
// link up and an offset at least the master's. Past timeout it returns the reason it is not.
func Converge(ctx context.Context, nodes []Endpoint, timeout time.Duration) (master Endpoint, waited time.Duration, err error) {
	start := time.Now()
	clients := map[string]*redis.Client{}
	for _, n := range nodes {
		clients[n.Node] = Client(n.Addr, time.Second)
		defer clients[n.Node].Close()
	}
	deadline := start.Add(timeout)
	reason := ""
	for {
		roles := map[string]Role{}
		var masters []Endpoint
		for _, n := range nodes {
			r := ReadRole(ctx, clients[n.Node])
			roles[n.Node] = r
			if r.Role == "master" {
				masters = append(masters, n)
			}
		}
		if len(masters) == 1 {
			m := masters[0]
			// Re-read the master last so replicas are compared with an offset no newer than theirs.
			mr := ReadRole(ctx, clients[m.Node])
			behind := []string{}
			for _, n := range nodes {
				if n == m {
					continue
				}
				r := roles[n.Node]
				if r.Role != "slave" || r.MasterHost != m.Addr || !r.LinkUp {
					behind = append(behind, fmt.Sprintf("%s is %s (master %s, link up %v)", n.Node, r.Role, r.MasterHost, r.LinkUp))
					continue
				}
				if r2 := ReadRole(ctx, clients[n.Node]); r2.Offset < mr.Offset {
					behind = append(behind, fmt.Sprintf("%s at offset %d, master %s at %d", n.Node, r2.Offset, m.Node, mr.Offset))
				}
			}
			if len(behind) == 0 && mr.Role == "master" {
				return m, time.Since(start), nil
			}
			reason = strings.Join(behind, "; ")
		} else {
			names := []string{}
			for _, m := range masters {
				names = append(names, m.Node)
			}
			reason = fmt.Sprintf("%d masters %v", len(masters), names)
		}
		if time.Now().After(deadline) {
			return Endpoint{}, time.Since(start), fmt.Errorf("not converged after %s: %s", timeout, reason)
		}
		if !sleepCtx(ctx, 250*time.Millisecond) {
			return Endpoint{}, time.Since(start), ctx.Err()
		}
	}
}

// ReadFinal reads every workload key from the master.
func ReadFinal(ctx context.Context, master Endpoint, registers, sets []string) (history.Final, error) {
	c := Client(master.Addr, 5*time.Second)
	defer c.Close()
	f := history.Final{Converged: true, Master: master.Addr, Registers: map[string]string{}, Sets: map[string][]string{}}
	for _, k := range registers {
		v, err := c.Get(ctx, k).Result()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return f, fmt.Errorf("final read GET %s on %s: %w", k, master.Node, err)
		default:
			f.Registers[k] = v
		}
	}
	for _, k := range sets {
		v, err := c.SMembers(ctx, k).Result()
		if err != nil {
			return f, fmt.Errorf("final read SMEMBERS %s on %s: %w", k, master.Node, err)
		}
		sort.Strings(v)
		f.Sets[k] = v
	}
	f.ReadAt = time.Now()
	return f, nil
}

// Proxy kinds the observer knows how to read.
const (
	ProxyHAProxy = "haproxy"       // "show stat" on its admin socket
	ProxyRedisha = "redisha-proxy" // its admin HTTP endpoint (/healthz, /metrics)
)

// Proxy is one proxy daemon to watch, read from the host through its node's own root or network
// namespace, so partitions between nodes do not hide it.
type Proxy struct {
	Node string
	Kind string // ProxyHAProxy (the default) or ProxyRedisha
	// Socket returns HAProxy's admin socket path as the host sees it (e.g.
	// /proc/PID/root/run/haproxy/admin.sock; "" while the node is down).
	Socket func() string
	// Netns returns the path of the node's network namespace ("" while the node is down), where
	// redisha-proxy's admin endpoint Admin (host:port, usually on loopback) is dialled.
	Netns func() string
	Admin string
	// NodeOf names the node of a backend address ("" when unknown: the address is shown).
	NodeOf func(addr string) string
}

// BackendStates asks an HAProxy for "show stat" and returns server name -> status (UP, DOWN,
// MAINT, ...) for every backend server, as "backend/server".
func BackendStates(ctx context.Context, socket string, timeout time.Duration) (map[string]string, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("show stat\n")); err != nil {
		return nil, err
	}
	var b strings.Builder
	buf := make([]byte, 8192)
	for {
		n, err := c.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return parseShowStat(b.String())
}

// parseShowStat reads HAProxy's CSV ("# pxname,svname,...,status,...").
func parseShowStat(csv string) (map[string]string, error) {
	lines := strings.Split(strings.TrimSpace(csv), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "# ") {
		return nil, fmt.Errorf("haproxy show stat: unexpected reply %q", firstN(csv, 80))
	}
	cols := strings.Split(strings.TrimPrefix(lines[0], "# "), ",")
	idx := map[string]int{}
	for i, c := range cols {
		idx[c] = i
	}
	px, sv, st := idx["pxname"], idx["svname"], idx["status"]
	out := map[string]string{}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if len(f) <= st || f[sv] == "FRONTEND" || f[sv] == "BACKEND" {
			continue
		}
		out[f[px]+"/"+f[sv]] = f[st]
	}
	return out, nil
}

func firstN(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// observation is one reading of a proxy: Detail as recorded, and the backends it routes
// new connections to (node names where known).
type observation struct {
	detail string
	up     []string
	reason string
}

func readHAProxy(ctx context.Context, p Proxy, timeout time.Duration) (observation, bool) {
	sock := p.Socket()
	if sock == "" {
		return observation{}, false
	}
	st, err := BackendStates(ctx, sock, timeout)
	if err != nil {
		return observation{}, false
	}
	var parts []string
	for k, v := range st {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	o := observation{detail: strings.Join(parts, " ")}
	for _, f := range parts {
		name, v, _ := strings.Cut(f, "=")
		if strings.HasPrefix(v, "UP") {
			_, server, _ := strings.Cut(name, "/")
			o.up = append(o.up, server)
		}
	}
	return o, true
}

func readRedishaProxy(ctx context.Context, p Proxy, timeout time.Duration) (observation, bool) {
	path := ""
	if p.Netns != nil {
		path = p.Netns()
	}
	if path == "" {
		return observation{}, false
	}
	st, err := RedishaProxyStatus(ctx, netns.Dialer(path), p.Admin, timeout)
	if err != nil {
		return observation{}, false
	}
	name := func(a string) string {
		if p.NodeOf != nil {
			if n := p.NodeOf(a); n != "" {
				return n
			}
		}
		return a
	}
	addrs := make([]string, 0, len(st.Backends))
	for a := range st.Backends {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	o := observation{reason: st.Reason}
	route := "none"
	if st.Route != "" {
		route = name(st.Route)
		o.up = []string{route}
	}
	parts := []string{"route=" + route}
	for _, a := range addrs {
		parts = append(parts, name(a)+"="+st.Backends[a])
	}
	o.detail = strings.Join(parts, " ")
	return o, true
}

func watchProxy(ctx context.Context, p Proxy, poll time.Duration, rec Recorder) {
	read, kind := readHAProxy, KindBackends
	if p.Kind == ProxyRedisha {
		read, kind = readRedishaProxy, KindRoute
	}
	last := "?"
	for {
		o, ok := read(ctx, p, poll+300*time.Millisecond)
		if !ok {
			o = observation{detail: "unreachable"}
		}
		if ctx.Err() != nil {
			return
		}
		if cur := o.detail + "\x00" + o.reason; cur != last {
			ev := history.Event{Time: time.Now(), Source: history.SourceProxy, Kind: kind, Node: p.Node, Detail: o.detail}
			if ok {
				ev.Attrs = map[string]string{"up": strings.Join(o.up, ",")}
				if o.reason != "" {
					ev.Attrs["reason"] = o.reason
				}
			}
			rec.Write(ev)
			last = cur
		}
		if !sleepCtx(ctx, poll) {
			return
		}
	}
}

// Event kinds of proxy observations. Attrs["up"] lists the backends the proxy routes new
// connections to, comma-separated (absent when it could not be read: Detail "unreachable").
const (
	// KindBackends is an HAProxy's backend states; Detail lists "backend/server=STATUS" pairs.
	KindBackends = "backends"
	// KindRoute is a redisha-proxy's route; Detail is "route=NODE" (or route=none) followed by
	// "NODE=STATE" per backend (master, replica, down), Attrs["reason"] why it holds or refuses.
	KindRoute = "route"
)

// ProxyStatus is what a redisha-proxy's admin endpoint says.
type ProxyStatus struct {
	Route    string            // backend address new read-write connections go to ("" : none)
	Reason   string            // why there is no route
	Backends map[string]string // address -> master, replica, down (or the role it reports)
}

// RedishaProxyStatus reads a redisha-proxy's route and its backends' states from its admin
// endpoint's /status, dialling admin with dial.
func RedishaProxyStatus(ctx context.Context, dial netns.DialFunc, admin string, timeout time.Duration) (ProxyStatus, error) {
	hc := &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/status", nil)
	if err != nil {
		return ProxyStatus{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return ProxyStatus{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return ProxyStatus{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return ProxyStatus{}, fmt.Errorf("redisha-proxy /status: status %d", resp.StatusCode)
	}
	return parseProxyStatus(b)
}

// parseProxyStatus reads redisha-proxy's /status JSON: the route for new read-write
// connections, and each backend as the role it reports while its last health result is good
// and fresh (the proxy's own rule for a usable backend), "down" otherwise.
func parseProxyStatus(b []byte) (ProxyStatus, error) {
	var js struct {
		Route struct {
			Master string `json:"master"`
			Reason string `json:"reason"`
		} `json:"route"`
		Backends []struct {
			Addr  string `json:"addr"`
			Role  string `json:"role"`
			OK    bool   `json:"ok"`
			Fresh bool   `json:"fresh"`
		} `json:"backends"`
	}
	if err := json.Unmarshal(b, &js); err != nil {
		return ProxyStatus{}, fmt.Errorf("redisha-proxy /status: %w", err)
	}
	st := ProxyStatus{Route: js.Route.Master, Reason: js.Route.Reason, Backends: map[string]string{}}
	for _, be := range js.Backends {
		switch {
		case !be.OK || !be.Fresh:
			st.Backends[be.Addr] = "down"
		case be.Role == "slave":
			st.Backends[be.Addr] = "replica"
		default:
			st.Backends[be.Addr] = be.Role
		}
	}
	return st, nil
}
