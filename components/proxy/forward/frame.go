package forward

import "github.com/redisha/redisha/components/resp"

// Framing is an Inspector that frames client requests with resp.Framer as
// they pass, without keeping them: the durable mode's hook into the data
// path. OnRequest runs, on the event loop, for each complete request (the
// *resp.Request is valid only during the call) and may end the pair with an
// error. The payload of a large argument is spliced past it (Skippable,
// Skip), so framing keeps the zero-copy path for large values.
type Framing struct {
	F         *resp.Framer
	OnRequest func(r *resp.Request) error
	Requests  int64 // complete requests seen
}

// NewFraming frames with redis-server's limits.
func NewFraming(on func(r *resp.Request) error) *Framing {
	return &Framing{F: resp.NewFramer(resp.RequestLimits), OnRequest: on}
}

// Inspect frames p.
func (x *Framing) Inspect(p []byte) error {
	for len(p) > 0 {
		n, req, err := x.F.Next(p)
		if err != nil {
			return err
		}
		p = p[n:]
		if req != nil {
			x.Requests++
			if x.OnRequest != nil {
				if err := x.OnRequest(req); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Spliceable is the Framer's Skippable.
func (x *Framing) Spliceable() int64 { return x.F.Skippable() }

// Skipped is the Framer's Skip; a request that ends with the skipped bytes
// is reported at the next Inspect (its CRLF is still to come).
func (x *Framing) Skipped(n int64) { x.F.Skip(n) }
