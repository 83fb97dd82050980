package client

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// startRouter starts a real edgewamp router (route + loop) on a loopback
// port and returns its WebSocket URL.
func startRouter(t *testing.T) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1", Anonymous: true}}, Shards: 1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := loop.New(r, loop.Options{Listeners: []loop.Listener{{Addr: "127.0.0.1:0"}}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		eng.Shutdown(ctx)
	})
	return "ws://" + eng.Addrs()[0].String() + "/ws"
}

func dialRouter(t *testing.T, url string) *Session {
	t.Helper()
	s, err := Dial(context.Background(), Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack})
	noErr(t, "Dial", err)
	t.Cleanup(func() { s.Close() })
	return s
}

// Unsubscribe of a topic's last subscription while another Subscribe to
// the same topic is in flight: the router answers the SUBSCRIBE with the
// existing subscription id, then removes that subscription on the
// UNSUBSCRIBE. The new Subscription must not claim to be active while it
// gets no events.
func TestUnsubscribeRacesSubscribe(t *testing.T) {
	url := startRouter(t)
	s := dialRouter(t, url)
	pub := dialRouter(t, url)
	ctx := context.Background()
	sub1, err := s.Subscribe(ctx, "com.topic", func(*Event) {}, nil)
	noErr(t, "Subscribe 1", err)

	// Hold the reader on the second SUBSCRIBED until UNSUBSCRIBE is out:
	// the order a busy reader can see them in.
	held, release := make(chan struct{}), make(chan struct{})
	s.OnMessage(func(m *proto.Message) {
		if m.Type == proto.CodeSubscribed && m.ID == sub1.ID() {
			s.OnMessage(nil)
			close(held)
			<-release
		}
	})
	got := make(chan *Event, 4)
	a := goDo(func() (*Subscription, error) {
		return s.Subscribe(ctx, "com.topic", func(e *Event) { got <- e }, nil)
	})
	<-held
	u := goDo(func() (struct{}, error) { return struct{}{}, s.Unsubscribe(ctx, sub1) })
	time.Sleep(100 * time.Millisecond) // UNSUBSCRIBE written
	close(release)
	sub2, err := a.wait(t)
	noErr(t, "Subscribe 2", err)
	_, err = u.wait(t)
	noErr(t, "Unsubscribe", err)

	noErr(t, "Publish", pub.Publish(ctx, "com.topic", []any{1}, nil, &PublishOptions{Acknowledge: true}))
	select {
	case <-got:
	case <-time.After(500 * time.Millisecond):
		if sub2.Active() {
			t.Fatal("the second subscription is Active but receives no events: the router dropped it on the UNSUBSCRIBE")
		}
	}
}
