package daemon

import (
	"context"
	"time"

	"github.com/redisha/redisha/components/proxy/core"
	"github.com/redisha/redisha/components/proxy/driver"
	"github.com/redisha/redisha/components/resp"
)

// The hello path (routing.hello_views, docs/proxy.md): one subscriber per
// configured backend on its __sentinel__:hello channel, with the backends'
// credentials (auth). It only reads and posts what it reads to the loop with
// the read time; the driver parses, the core decides what a hello counts
// for. Subscribers live with their backend's probe worker: they start when
// the core first probes the backend (and hello_views is on) and stop with
// the worker (reload, credential change, stop).

// helloIdle: sentinels publish a hello every 2 s on every node they
// monitor. A subscription silent this long is redialled, because a
// connection to a node that vanished behind a partition may never report
// an error by itself.
const helloIdle = 5 * time.Second

// syncHello starts or stops the hello subscriber of backend's worker to
// follow routing.hello_views. It runs on the loop goroutine (from Probe).
func (p *Proxy) syncHello(w *worker, backend string) {
	cfg := p.cfg.Load()
	want := cfg.Routing.HelloViews
	switch {
	case want && w.hello == nil:
		ctx, cancel := context.WithCancel(w.ctx)
		w.hello = cancel
		go subscribeHello(ctx, backend, p.probeAuth, cfg.Check.Timeout, func(v resp.Value) {
			now := time.Now()
			p.post(func(d *driver.Driver) { d.HandleHello(now, backend, v) })
		})
	case !want && w.hello != nil:
		w.hello()
		w.hello = nil
	}
}

// subscribeHello follows one backend's __sentinel__:hello channel until ctx
// ends, reconnecting with a short backoff (subscription.run) and redialling
// a subscription silent for helloIdle.
func subscribeHello(ctx context.Context, addr string, auth Auth, timeout time.Duration, onMessage func(resp.Value)) {
	subscription{
		addr: addr, auth: auth, timeout: timeout, clientName: "redisha-proxy-hello",
		join: func(ctx context.Context, c *resp.Conn) error {
			return c.Subscribe(ctx, core.HelloChannel)
		},
		idle:      helloIdle,
		onMessage: onMessage,
	}.run(ctx)
}
