package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// callBytes is what one call in flight holds, caller and callee together
// (README, limits.calls_in_flight_total: about 240 bytes, measured).
const callBytes = 240

// deploy/small-board.yaml says it sizes "every router-wide budget" to its
// 160 MiB memory limit, for a 512 MiB board. The budgets added after it
// was written kept their defaults there: subscription_bytes 1 GiB (a
// quarter, 256 MiB, per client address), testament_bytes 64 MiB and
// calls_in_flight_total 1,048,576 (about 250 MB). One anonymous client
// address on the network, 64 connections subscribing to 4 KB prefixes,
// took the release binary with the file from 20 MB to 316 MB of RSS in
// 12 s before it was refused; two addresses would take the board's
// memory. The budgets a client can fill router-wide now add up to less
// than the memory limit, and one address's subscriptions are refused
// within its quarter of the file's subscription_bytes. Registrations were
// bounded by their count only (limits.registrations, 1,024 per session
// here): one address's 64 connections registering 4 KB procedures took
// the router to 340 MB of RSS, nothing refused; the file's
// registration_bytes now counts in the sum and refuses them within a
// quarter of it.
func TestSmallBoardBudgetsFitItsMemoryLimit(t *testing.T) {
	const file = "../../deploy/small-board.yaml"
	c, err := loadConfig(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Runtime.MemoryLimit.set || c.Runtime.MemoryLimit.bytes <= 0 {
		t.Fatalf("%s sets no memory limit", file)
	}
	limit := c.Runtime.MemoryLimit.bytes
	orDefault := func(v, def int64) int64 {
		if v == 0 {
			return def
		}
		return v
	}
	l := c.Limits
	calls := int64(l.CallsInFlightTotal)
	if calls == 0 {
		calls = route.DefaultCallsTotal
	}
	budgets := []struct {
		name  string
		bytes int64
	}{
		{"max_inbound_total", int64(l.MaxInboundTotal)},
		{"max_outbound_total", int64(l.MaxOutboundTotal)},
		{"subscription_bytes", orDefault(int64(l.SubscriptionBytes), 1<<30)},
		{"subscription_bytes again (authorization caches)", orDefault(int64(l.SubscriptionBytes), 1<<30)},
		{"registration_bytes", orDefault(int64(l.RegistrationBytes), 1<<30)},
		{"testament_bytes", orDefault(int64(l.TestamentBytes), 64<<20)},
		{"calls_in_flight_total × 240 B", calls * callBytes},
		{"retained_bytes × realms", orDefault(int64(l.RetainedBytes), defaultRetainedBytes) * int64(len(c.Realms))},
	}
	var sum int64
	var list []string
	for _, b := range budgets {
		if b.bytes <= 0 {
			t.Errorf("%s: %s is not bounded in the file (a quarter of the RAM by default)", file, b.name)
		}
		sum += b.bytes
		list = append(list, fmt.Sprintf("%s %d MiB", b.name, b.bytes>>20))
	}
	if sum > limit {
		t.Errorf("%s: the router-wide budgets add up to %d MiB, past its memory limit of %d MiB: %s",
			file, sum>>20, limit>>20, strings.Join(list, ", "))
	}

	// The file's subscription_bytes and registration_bytes reach the
	// router: one address's subscriptions of the longest prefixes, and
	// its registrations of the longest procedures, are refused within a
	// quarter of each (stopping at twice that, for a file that does not
	// bound them).
	r := startRouter(t, "-config", file)
	topic := "com.example." + strings.Repeat("x", proto.MaxURILen-len("com.example.")-16)
	takeUntilRefused(t, r, "subscription", "subscription_bytes", orDefault(int64(l.SubscriptionBytes), 1<<30), limit, int64(len(topic)+16+384),
		func(ctx context.Context, s *client.Session, i, n int) error {
			_, err := s.Subscribe(ctx, fmt.Sprintf("%s.%07d.%07d", topic, i, n), func(*client.Event) {}, &client.SubscribeOptions{Match: "prefix"})
			return err
		})
	takeUntilRefused(t, r, "registration", "registration_bytes", orDefault(int64(l.RegistrationBytes), 1<<30), limit, int64(len(topic)+16+512),
		func(ctx context.Context, s *client.Session, i, n int) error {
			_, err := s.Register(ctx, fmt.Sprintf("%s.%07d.%07d", topic, i, n), func(context.Context, *client.Invocation) (*client.Result, error) {
				return &client.Result{}, nil
			}, nil)
			return err
		})
}

// takeUntilRefused has one address's connections (1,024 each, the
// file's per-session bound) take what take takes, each counted each
// bytes, until the router refuses one naming key, and fails when it did
// not within twice a quarter of budget (or of limit/16 if smaller).
func takeUntilRefused(t *testing.T, r *router, what, key string, budget, limit, each int64, take func(ctx context.Context, s *client.Session, i, n int) error) {
	t.Helper()
	quarter := budget / 4
	if quarter > limit/16 {
		quarter = limit / 16
	}
	most := int(2*quarter/each) + 1
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conns := (most + 1023) / 1024
	var (
		mu       sync.Mutex
		held     int
		refusals int
		refusal  error
		firstErr error
		wg       sync.WaitGroup
	)
	for i := range conns {
		s := r.dial("rs://"+r.addr, proto.MsgPack)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				mu.Lock()
				stop := refusals > 0 || held >= most || firstErr != nil
				mu.Unlock()
				if stop {
					return
				}
				err := take(ctx, s, i, n)
				mu.Lock()
				switch {
				case err == nil:
					held++
				case wampURI(err) == proto.URIUnavailable && strings.Contains(err.Error(), key):
					refusals++
					refusal = err
				case wampURI(err) == proto.URIUnavailable:
					// This connection's per-session count.
					mu.Unlock()
					return
				default:
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	if refusals == 0 {
		t.Fatalf("one address held %d %ss of about %d bytes (%d MiB counted) and none was refused; the memory limit is %d MiB",
			held, what, each, int64(held)*each>>20, limit>>20)
	}
	t.Logf("one address: %d %ss of about %d bytes held (%d KiB counted), then refused: %v", held, what, each, int64(held)*each>>10, refusal)
}
