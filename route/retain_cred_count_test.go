package route

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// TestRetainedCredentialBytesSteady: the bytes a message's own
// credential counts in the realm's retained bytes (retainedCredOverhead)
// come and go with the retained events keeping it, whatever the order:
// 10,000 replacements of one topic by two credentials taking turns (each
// turn a new retainer, also kept by a topic of its own), then the turns'
// topics replaced by the other credential and revoked, leave the realm's
// and the publisher's counts where one event of each kind puts them, and
// nothing once every event has gone. Before, a retainer was counted with
// the first event keeping it only: replacing that one left it kept by
// the turn's own topic and counted nowhere.
func TestRetainedCredentialBytesSteady(t *testing.T) {
	e := newEnv(t, 1, func(c *Config) { c.MaxRetainedPerPublisher, c.MaxRetainedBytesPerPublisher = -1, -1 })
	c := e.join(proto.JSON)
	rm := e.r.Realm("realm1")
	creds := []*Credential{{IDs: []string{"tok-a"}}, {IDs: []string{"tok-b"}}}
	eligible := false
	pub := func(topic string, cred *Credential) {
		m := &proto.Message{Type: proto.CodePublish, Request: c.nextReq(), URI: []byte(topic), Args: raw(t, proto.JSON, []any{1})}
		m.Opt.SetBool(proto.KeyRetain, true)
		if eligible {
			m.Opt.SetRaw(proto.KeyEligible, raw(t, proto.JSON, []any{c.id}))
		}
		c.exec.do(func() { c.sh.ReceiveMessageWith(c.sess, m, "192.0.2.1", cred) })
	}
	counts := func() (realm, shares int64, topics int) {
		rm.mu.RLock()
		defer rm.mu.RUnlock()
		for _, sh := range rm.retainedBy {
			shares += sh.bytes
		}
		return rm.retainedBytes, shares, len(rm.retained)
	}
	// One credential's event on a topic, and the same on another: what
	// a kept credential adds is counted once.
	pub("com.swap", creds[0])
	one, oneShares, _ := counts()
	if one != oneShares {
		t.Fatalf("one event: realm %d bytes, publishers' shares %d", one, oneShares)
	}
	const n = 10000
	for i := range n {
		cred := creds[i%2]
		pub("com.swap", cred)
		pub(fmt.Sprintf("com.t.%d", i%100), cred)
	}
	realm, shares, topics := counts()
	if topics != 101 || realm != shares {
		t.Fatalf("after %d turns: %d topics, realm %d bytes, shares %d", n, topics, realm, shares)
	}
	// 101 events, and the credentials of the last 100 turns (the swap
	// topic's is its turn's): each counted once.
	want := func() (int64, int) {
		rm.mu.RLock()
		defer rm.mu.RUnlock()
		want := int64(0)
		seen := map[*retainer]bool{}
		for _, re := range rm.retained {
			for ; re != nil; re = re.older {
				want += re.size
				if !seen[re.by] {
					seen[re.by] = true
					want += retainedCredOverhead + int64(len(re.by.cred.IDs[0])) + 16
				}
			}
		}
		return want, len(seen)
	}
	if w, k := want(); realm != w {
		t.Errorf("after %d turns: the realm counts %d bytes, its events and the %d credentials they keep %d", n, realm, k, w)
	}
	// A topic's chain of events with lists, of one credential, then
	// replaced by another's event without: its credential counted once,
	// and given back once.
	eligible = true
	for range 3 {
		pub("com.f", creds[0])
	}
	eligible = false
	pub("com.g", creds[0])
	if w, k := want(); counts0(counts) != w {
		t.Errorf("a chain of 3 events with lists: the realm counts %d bytes, its events and the %d credentials they keep %d", counts0(counts), k, w)
	}
	pub("com.f", creds[1])
	pub("com.g", creds[1])
	if w, k := want(); counts0(counts) != w {
		t.Errorf("the chain replaced: the realm counts %d bytes, its events and the %d credentials they keep %d", counts0(counts), k, w)
	}
	e.r.RevokeCredentials([]string{"tok-a"}, "")
	e.r.RevokeCredentials([]string{"tok-b"}, "")
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		e.sync()
		if realm, shares, topics = counts(); topics == 0 {
			break
		}
	}
	if realm != 0 || shares != 0 || topics != 0 {
		t.Fatalf("every credential revoked: %d topics left, realm %d bytes, shares %d, want 0", topics, realm, shares)
	}
}

func counts0(f func() (int64, int64, int)) int64 {
	n, _, _ := f()
	return n
}

// TestRetainedCredentialShareKeptOnOwnReplace: a credential's event
// replacing an earlier one of the same credential (a token re-publishing
// its topic) keeps the credential counted in its publisher's share, as
// in the realm's bytes. Before, the replaced event gave the credential
// back to the share as if it were its last, and the new one did not
// count it again: each token's credential left its user's share after
// one replacement, so the share's bound let a user's tokens hold more
// than it.
func TestRetainedCredentialShareKeptOnOwnReplace(t *testing.T) {
	e := newEnv(t, 1, func(c *Config) { c.MaxRetainedPerPublisher, c.MaxRetainedBytesPerPublisher = -1, -1 })
	c := e.join(proto.JSON)
	rm := e.r.Realm("realm1")
	pub := func(topic string, cred *Credential) {
		m := &proto.Message{Type: proto.CodePublish, Request: c.nextReq(), URI: []byte(topic), Args: raw(t, proto.JSON, []any{1})}
		m.Opt.SetBool(proto.KeyRetain, true)
		c.exec.do(func() { c.sh.ReceiveMessageWith(c.sess, m, "192.0.2.1", cred) })
	}
	counts := func() (realm, shares int64) {
		rm.mu.RLock()
		defer rm.mu.RUnlock()
		for _, sh := range rm.retainedBy {
			shares += sh.bytes
		}
		return rm.retainedBytes, shares
	}
	for i := range 50 {
		cred := &Credential{IDs: []string{fmt.Sprintf("tok-%d", i)}}
		pub(fmt.Sprintf("com.own.%d", i), cred)
		pub(fmt.Sprintf("com.own.%d", i), cred)
	}
	if realm, shares := counts(); realm != shares {
		t.Fatalf("50 tokens each replacing its own event: the realm counts %d bytes, the publisher's share %d (%d fewer)", realm, shares, realm-shares)
	}
	for i := range 50 {
		e.r.RevokeCredentials([]string{fmt.Sprintf("tok-%d", i)}, "")
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		e.sync()
		if realm, _ := counts(); realm == 0 {
			break
		}
	}
	if realm, shares := counts(); realm != 0 || shares != 0 {
		t.Fatalf("every token revoked: realm %d bytes, shares %d, want 0", realm, shares)
	}
}
