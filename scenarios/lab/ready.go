package lab

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redisha/redisha/components/netns"
)

// pollInterval is how often readiness checks run again.
const pollInterval = 150 * time.Millisecond

// waitReady runs the stack's readiness checks: phase 0 checks, then the
// phase 1 daemons are started and their checks run, together with the VIP
// check (exactly one holder, stable for longer than a VRRP master-down
// interval, so two masters that cannot hear each other would show).
func (l *Lab) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, l.opts.ReadyTimeout)
	defer cancel()
	t0 := time.Now()
	if err := l.runChecks(ctx, 0); err != nil {
		return err
	}
	l.log.Debug("phase 0 ready", "took", time.Since(t0).Round(time.Millisecond))
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range l.Nodes {
		var names []string
		for _, d := range n.daemons {
			if d.Phase == 1 {
				names = append(names, d.Name)
			}
		}
		if len(names) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := n.Exec(ctx, append([]string{"/bin/sh", initPath, "start"}, names...)...); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	vipErr := make(chan error, 1)
	go func() { vipErr <- l.waitVIP(ctx) }()
	t1 := time.Now()
	err := l.runChecks(ctx, 1)
	l.log.Debug("phase 1 ready", "took", time.Since(t1).Round(time.Millisecond))
	if verr := <-vipErr; err == nil {
		err = verr
	}
	l.log.Debug("VIP ready", "took", time.Since(t1).Round(time.Millisecond))
	if err != nil {
		return err
	}
	// Marks the first boot as done: a restarted node starts every daemon.
	for _, n := range l.Nodes {
		if _, err := n.Exec(ctx, "/bin/sh", "-c", "mkdir -p "+startedMarker[:strings.LastIndexByte(startedMarker, '/')]+" && touch "+startedMarker); err != nil {
			return err
		}
	}
	return nil
}

// runChecks polls every node's checks of one phase in parallel until all pass.
func (l *Lab) runChecks(ctx context.Context, phase int) error {
	var wg sync.WaitGroup
	errc := make(chan error, 64)
	for _, n := range l.Nodes {
		for _, r := range n.spec.Ready {
			if r.Phase != phase {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				var last error
				for {
					_, err := n.Exec(ctx, "/bin/sh", "-c", r.Sh)
					if err == nil {
						return
					}
					last = err
					select {
					case <-ctx.Done():
						errc <- fmt.Errorf("lab: %s not ready: check %q still fails (%v); logs in %s", n.name, r.Sh, last, l.LogDir)
						return
					case <-time.After(pollInterval):
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// VIPHolders returns the nodes that have the VIP on an interface right now.
func (l *Lab) VIPHolders(ctx context.Context) ([]*Node, error) {
	if !l.VIP.IsValid() {
		return nil, errors.New("lab: this stack has no VIP")
	}
	var out []*Node
	for _, name := range l.Stack.VIP.Holders {
		n := l.Node(name)
		if n.Pid() == 0 {
			continue
		}
		has, err := netns.HasAddr(n.NetnsPath(), l.VIP)
		if err != nil {
			// A node that died between Pid and the netns open holds nothing.
			if n.refresh(ctx) == nil && n.Pid() == 0 {
				continue
			}
			return nil, err
		}
		if has {
			out = append(out, n)
		}
	}
	return out, nil
}

// WaitVIPHolder waits until exactly one node holds the VIP and returns it.
func (l *Lab) WaitVIPHolder(ctx context.Context) (*Node, error) {
	var last []*Node
	for {
		hs, err := l.VIPHolders(ctx)
		if err != nil {
			return nil, err
		}
		if len(hs) == 1 {
			return hs[0], nil
		}
		last = hs
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lab: VIP %s held by %d nodes %v, want exactly 1: %w", l.VIP, len(last), last, ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

func (l *Lab) waitVIP(ctx context.Context) error {
	if !l.VIP.IsValid() || len(l.Stack.VIP.Holders) == 0 {
		return nil
	}
	// keepalived starts with the containers. A backup that hears no adverts
	// claims the VIP after its master-down interval (3 adverts plus a skew
	// under 1 s), so once that has passed for every node, one holder that
	// stays put for more than an advert interval is the real master, not one
	// of two that cannot hear each other.
	advert := time.Duration(max(l.Params.VRRPAdvertInt, 1)) * time.Second
	settled := l.startedAt.Add(3*advert + 1500*time.Millisecond)
	var holder *Node
	var since time.Time
	var hs []*Node
	for {
		var err error
		hs, err = l.VIPHolders(ctx)
		if err != nil {
			return fmt.Errorf("lab: VIP check: %w", err)
		}
		switch {
		case len(hs) == 1 && hs[0] == holder:
			if time.Now().After(settled) && time.Since(since) > advert+300*time.Millisecond {
				return nil
			}
		case len(hs) == 1:
			holder, since = hs[0], time.Now()
		default:
			holder = nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab: VIP %s: want exactly one stable holder among %v, have %v (is VRRP multicast blocked?); logs in %s", l.VIP, l.Stack.VIP.Holders, hs, l.LogDir)
		case <-time.After(pollInterval):
		}
	}
}
