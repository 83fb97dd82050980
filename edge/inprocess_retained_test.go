package edge

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// inProc is a minimal in-process session (route.InProcessPeer and
// route.RetainedPeer), as the HTTP gateway's pooled sessions are: it
// counts the EVENTs it gets and reports where each get_retained
// SUBSCRIBE's retained events end. Its methods run on its shard.
type inProc struct {
	dec      proto.Decoder
	m        proto.Message
	events   atomic.Int64
	welcomed chan struct{}
	ended    chan uint64 // RetainedSent
	errs     chan string
}

func (p *inProc) Serializer() proto.Serializer { return proto.JSON }
func (p *inProc) Close()                       {}
func (p *inProc) InProcess()                   {}
func (p *inProc) Transport() route.TransportInfo {
	return route.TransportInfo{Type: "http", Protocol: "http.json", RemoteAddr: "gateway"}
}
func (p *inProc) RetainedSent(subID uint64) { p.ended <- subID }
func (p *inProc) Send(b []byte, _ route.Class) error {
	if err := p.dec.Decode(proto.JSON, b, &p.m); err != nil {
		return nil
	}
	switch p.m.Type {
	case proto.CodeWelcome:
		close(p.welcomed)
	case proto.CodeEvent:
		p.events.Add(1)
	case proto.CodeError, proto.CodeAbort, proto.CodeGoodbye:
		select {
		case p.errs <- p.m.Type.String() + " " + string(p.m.URI):
		default:
		}
	}
	p.m.Reset()
	return nil
}

// The HTTP gateway's pooled sessions are not charged the walk budget for
// the retained events a get_retained SUBSCRIBE delivers (README, the
// walk-budget row: "not the HTTP gateway's pooled sessions, which its own
// limits bound"): every event stream of a principal shares one, and the
// gateway bounds the streams. This node's retained events were not
// charged to them (chargeLocalRetained, chargeMergedRetained), but the
// other nodes' answers were, by their bytes (chargeRemoteRetained): on a
// mesh, a pooled session whose streams asked for a 64 KiB event retained
// on another node went into debt after 16 of them, and the next streams'
// retained events waited for the debt to be paid (for good here, with
// the router's clock stopped: 16 of 48 delivered). The nodes asked
// are still charged (128 entries each): 48 gathers stay within the burst.
func TestMeshInProcessGetRetainedNotChargedForBytes(t *testing.T) {
	t.Parallel()
	base := time.Now()
	clock := func(c *route.Config) { c.Now = func() time.Time { return base } }
	pa, pb := edgetest.FreeAddr(t), edgetest.FreeAddr(t)
	a := startNodeConf(t, "a", clock, func(o *Options) { o.Cluster.Listen = pa; o.Cluster.Routes = []string{"nats://" + pb} })
	b := startNode(t, "b", func(o *Options) { o.Cluster.Listen = pb; o.Cluster.Routes = []string{"nats://" + pa} })
	waitMesh(t, a, b)
	ctx := ctxT(t, 30*time.Second)

	// A 64 KiB event retained on b: 4,096 entries of the budget's 65,536
	// burst each time it is sent.
	pub := b.dial(b.ws(), proto.MsgPack)
	const topic = "com.big.state"
	if err := pub.Publish(ctx, topic, []any{strings.Repeat("x", 64<<10)}, nil, &client.PublishOptions{Retain: true, Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	// Past a's first two heartbeats (Gather's settle).
	time.Sleep(2*a.n.opts.Heartbeat + 100*time.Millisecond - a.n.since(a.n.startedAt.Load()))

	sh := a.r.Shard(0)
	p := &inProc{welcomed: make(chan struct{}), ended: make(chan uint64, 1), errs: make(chan string, 1)}
	var ss *route.Session
	if err := sh.Do(func() {
		ss = sh.Open(p)
		if err := sh.JoinInternal(ss, route.JoinOptions{Realm: "realm1", AuthMethod: "anonymous", SubscriberRevoke: true}); err != nil {
			p.errs <- err.Error()
		}
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.welcomed:
	case e := <-p.errs:
		t.Fatal(e)
	case <-time.After(10 * time.Second):
		t.Fatal("no WELCOME")
	}
	defer sh.Do(func() { sh.Detach(ss) })

	// The streams of a principal asking for the topic's retained event,
	// one after the other: each gets it, from b's answer, at once.
	const streams = 48
	var req uint64
	incBefore := a.n.Stats().GathersIncomplete.Load()
	for i := range streams {
		if err := sh.Do(func() {
			req++
			m := &proto.Message{Type: proto.CodeSubscribe, Request: req, URI: []byte(topic)}
			m.Opt.SetBool(proto.KeyGetRetained, true)
			sh.ReceiveMessage(ss, m)
		}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.ended:
		case e := <-p.errs:
			t.Fatalf("stream %d: %s", i, e)
		case <-time.After(3 * time.Second):
			t.Fatalf("stream %d of the pooled session got no retained event in 3 s (%d delivered before it, the router's clock stopped): it waits for walk debt", i, p.events.Load())
		}
	}
	// A gather b did not answer within gather_timeout (a loaded host)
	// ends without the event, counted: not what this test is about.
	inc := a.n.Stats().GathersIncomplete.Load() - incBefore
	if n := p.events.Load(); n+int64(inc) < streams {
		t.Fatalf("%d retained events delivered to %d get_retained SUBSCRIBEs, %d gathers counted incomplete", n, streams, inc)
	} else if n < streams {
		t.Logf("%d retained events delivered to %d get_retained SUBSCRIBEs, %d gathers counted incomplete (gather_timeout passed)", n, streams, inc)
	}
}
