package client

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// lockedBuf is a bytes.Buffer for a logger written from several
// goroutines.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A registration or subscription the next session refuses for good (not
// authorized any more) is gone from the application's point of view: the
// Client says so at WARN, naming it and the router's error, where it
// logged it at INFO, beside "connecting failed", so that an application
// logging warnings and errors never heard that its procedure was no
// longer provided.
func TestRestoreRefusalLoggedAsWarning(t *testing.T) {
	p := newPeer(t)
	var logs lockedBuf
	cfg := clientCfg(p)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cl, c := connectPeer(t, p, cfg, ReconnectConfig{MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	defer func() {
		done := goDo(func() (struct{}, error) { return struct{}{}, cl.Close() })
		for done.pending(10 * time.Millisecond) {
			drain(p)
		}
	}()
	c2, m := restoringRegister(t, p, cl, c, nil)
	c2.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodeRegister, Request: m.Request, URI: []byte(proto.URINotAuthorized)})
	deadline := time.Now().Add(time.Second)
	for !strings.Contains(logs.String(), "com.proc") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "com.proc") || !strings.Contains(out, proto.URINotAuthorized) {
		t.Errorf("no WARN naming com.proc and %s after its restore was refused; the WARN log has: %q", proto.URINotAuthorized, out)
	}
}

// A restored registration refused because other sessions hold the
// procedure with another invocation policy is tried again, as one refused
// procedure_already_exists is: those sessions may be leaving (a rolling
// deploy changing the policy), and before the router had the URI this
// case was procedure_already_exists. 7ab52b6 gave it up for the session,
// leaving the procedure unprovided by this client until it reconnected.
func TestRestoreRetriesPolicyConflict(t *testing.T) {
	p := newPeer(t)
	cl, c := connectPeer(t, p, clientCfg(p), ReconnectConfig{MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	defer func() {
		done := goDo(func() (struct{}, error) { return struct{}{}, cl.Close() })
		for done.pending(10 * time.Millisecond) {
			drain(p)
		}
	}()
	c2, m := restoringRegister(t, p, cl, c, &RegisterOptions{Invoke: "random"})
	c2.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodeRegister, Request: m.Request, URI: []byte(proto.URIProcedureExistsInvocationPolicyConflict)})
	m = c2.expect(proto.CodeRegister) // tried again once the other policy's callees may have gone
	c2.send(&proto.Message{Type: proto.CodeRegistered, Request: m.Request, ID: 101})
}

// restoringRegister registers com.proc through cl (answered by c), loses
// c, and returns the next session's connection with the REGISTER that
// restores it.
func restoringRegister(t *testing.T, p *peer, cl *Client, c *peerConn, opts *RegisterOptions) (*peerConn, *proto.Message) {
	t.Helper()
	a := goDo(func() (struct{}, error) {
		return struct{}{}, cl.Register(context.Background(), "com.proc", func(context.Context, *Invocation) (*Result, error) { return nil, nil }, opts)
	})
	m := c.expect(proto.CodeRegister)
	c.send(&proto.Message{Type: proto.CodeRegistered, Request: m.Request, ID: 100})
	_, err := a.wait(t)
	noErr(t, "Register", err)
	c.conn.Close()
	c2 := p.accept()
	c2.welcome(2)
	return c2, c2.expect(proto.CodeRegister)
}
