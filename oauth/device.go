package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgewamp/edgewamp/internal/slide"
)

// The device authorization grant (RFC 8628). A device without a browser
// asks for a code (device_authorization endpoint), shows the user code and
// the verification URI (or a QR code of verification_uri_complete) and
// polls the token endpoint; the user opens the page on a phone or laptop,
// signs in and approves; the next poll gets the tokens.
//
// Store records: dc.<SHA-256 of the device code> (deviceRec) and
// uc.<user code> → the device code's hash. Polls, approval and redemption
// update dc. with compare-and-swap, so that a code is redeemed once even
// when polls race on two nodes.

type deviceRec struct {
	Realm    string `json:"realm"`
	Client   string `json:"client"`
	Scope    string `json:"scope,omitempty"`
	UserCode string `json:"user_code"`
	Exp      int64  `json:"exp"`
	Interval int64  `json:"interval"`  // seconds; grows by 5 on each slow_down
	LastPoll int64  `json:"last_poll"` // unix milliseconds
	// Polls: each node's last poll of the code, by its own clock (a mesh's
	// clocks differ); the most recent maxPollNodes nodes. Empty in a
	// record written by an older release: LastPoll is used then.
	Polls  []nodePoll `json:"polls,omitempty"`
	Status string     `json:"status"` // pending, approved, denied
	Sub    string     `json:"sub,omitempty"`
	Roles  []string   `json:"roles,omitempty"`
	// Redeeming: when (unix seconds, by its node's clock) a poll of the
	// approved code claimed it to make its tokens; other polls wait
	// within redeemHold of it (grantDevice). 0: not claimed.
	Redeeming int64 `json:"redeeming,omitempty"`
}

// redeemHold is how long a poll's claim on an approved device code holds
// off the others: longer than making the tokens takes (a few store
// round trips) and than the nodes' clocks differ; a claim its poll left
// (its node stopped) is taken over after it.
const redeemHold = time.Minute

// nodePoll is one node's last poll of a device code.
type nodePoll struct {
	Node string `json:"node"` // Server.node
	At   int64  `json:"at"`   // unix milliseconds, by that node's clock
}

// maxPollNodes bounds deviceRec.Polls.
const maxPollNodes = 16

// lastPoll returns when node last polled the code (0: never, or not that
// this record says).
func (d *deviceRec) lastPoll(node string) int64 {
	if len(d.Polls) == 0 {
		return d.LastPoll // an older release's record, or the first poll
	}
	for _, p := range d.Polls {
		if p.Node == node {
			return p.At
		}
	}
	return 0
}

// polled records a poll of node at ms, most recent last.
func (d *deviceRec) polled(node string, ms int64) {
	d.LastPoll = ms
	d.Polls = slices.DeleteFunc(d.Polls, func(p nodePoll) bool { return p.Node == node })
	if len(d.Polls) >= maxPollNodes {
		d.Polls = d.Polls[len(d.Polls)-maxPollNodes+1:]
	}
	d.Polls = append(d.Polls, nodePoll{Node: node, At: ms})
}

type userCodeRec struct {
	DC  string `json:"dc"`
	Exp int64  `json:"exp"`
}

// userCodeAlphabet: RFC 8628 §6.1's base-20 set without vowels (no words)
// and without look-alikes; 20^8 ≈ 2^34.6 codes, guessed only by signing in
// and within the rate limit of wrong codes.
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

func newUserCode() string {
	b := make([]byte, 8)
	rand.Read(b)
	for i := range b {
		b[i] = userCodeAlphabet[int(b[i])%len(userCodeAlphabet)] // 256 % 20 = 16: a slight bias, harmless at this entropy
	}
	return string(b)
}

// normalizeUserCode upper-cases and drops separators; "" when the result
// is not a code.
func normalizeUserCode(s string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		if r == '-' || r == ' ' {
			continue
		}
		if r > 127 || !strings.ContainsRune(userCodeAlphabet, r) {
			return ""
		}
		b.WriteRune(r)
	}
	if b.Len() != 8 {
		return ""
	}
	return b.String()
}

func displayUserCode(c string) string { return c[:4] + "-" + c[4:] }

// deviceAuthsPerMinute bounds the device authorizations one source
// address (IPv6: one /64) obtains a minute.
const deviceAuthsPerMinute = 30

// deviceAuthsPerNodeMinute bounds the device authorizations one node
// issues a minute from all addresses together: an attacker with many
// addresses (a /48 holds 65,536 /64s) would otherwise fill the store,
// two records a code for its lifetime. 600 a minute keeps at most 6,000
// codes outstanding for the default 10 min lifetime.
const deviceAuthsPerNodeMinute = 600

// minuteBudget counts events over a sliding minute (package slide): the
// events of the current minute, plus those of the minute before weighted
// by the part of it the last minute still covers. Before, the minute was
// fixed, from its first event: the budget at one minute's end and the
// budget again at the next one's start, twice it within two seconds,
// were all taken. Safe for concurrent use.
type minuteBudget struct {
	mu     sync.Mutex
	max    int          // static
	taken  slide.Window // guarded by mu
	warned int64        // the last refusal reported first (Unix ns; 0: none); guarded by mu
}

// take counts one event at now, or reports how long until the count
// over the last minute falls below the budget and whether this refusal
// is the first in a minute (to be logged).
func (b *minuteBudget) take(now time.Time) (ok bool, retry time.Duration, first bool) {
	ns := now.UnixNano()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.taken.Count(ns, time.Minute) >= b.max {
		first = b.warned == 0 || ns-b.warned >= int64(time.Minute) || ns < b.warned
		if first {
			b.warned = ns
		}
		return false, b.taken.Wait(ns, time.Minute, b.max), first
	}
	b.taken.Add(ns, time.Minute)
	return true, 0, false
}

// deviceRoom tells whether a store with a bound in bytes for all its
// records (UsageReporter: a mesh's shared bucket) has room for device
// authorizations: while it is less than half full, leaving the other
// half to the records of signed-in users (logins, refreshes,
// revocations). Each node's budget bounds what it issues, not what a
// mesh's nodes issue together: at 600 a minute a node holds about 3.3 to
// 6.7 MB of codes (555 bytes a code in edge's bucket, kept 10 to 20
// minutes), and ten to twenty nodes filled the 64 MiB bucket the whole
// mesh shares. The store is asked at most once a second, and after every
// deviceRecheck codes this node issued. Safe for concurrent use.
//
// The same check, from three quarters (quarters 3), holds authorization
// codes (codeRoom): one signed-in user's sign-ins, each a code kept 11
// minutes, filled the bucket too. Above the devices' half, so that
// anonymous device authorizations never refuse a signed-in user's code;
// below the whole, so that logins, refreshes and revocations keep a
// quarter.
type deviceRoom struct {
	// quarters is the fill, in quarters of the store's bound, from which
	// it refuses (0: 2, half); what names what it refuses in the log.
	// Static.
	quarters int64
	what     string
	mu       sync.Mutex
	at       time.Time // of the last answer; guarded by mu
	issued   int       // codes allowed since; guarded by mu
	full     bool      // the last answer; guarded by mu
	asking   bool      // a request is asking the store now; guarded by mu
}

// deviceRecheck is how many device authorizations a node allows on one
// answer of the store's fill.
const deviceRecheck = 16

// ok reports whether st has room for one more device authorization
// (always for a store without a bound; when the store does not say, as
// it last said, room if it never did). One request at a time asks the store, without the
// lock: the others go on with the last answer meanwhile (none yet:
// allowed), so that a slow store (a mesh's hub, up to edge.KV's 2 s)
// delays the request that asks, not every device authorization of the
// node queued behind a mutex (which a gone client's request cannot
// leave). While an ask is out, more than deviceRecheck codes may be
// allowed on the last answer: at most what the node's budget allows in
// the ask's time.
func (d *deviceRoom) ok(ctx context.Context, st Store, log *slog.Logger) bool {
	ur, bounded := st.(UsageReporter)
	if !bounded {
		return true
	}
	d.mu.Lock()
	ask := !d.asking && (time.Since(d.at) >= time.Second || d.issued >= deviceRecheck)
	d.asking = d.asking || ask
	d.mu.Unlock()
	if ask {
		// Not the request's context: a client hanging up while its
		// request asked made the answer an error, read as "room" for a
		// second and deviceRecheck codes, and the next asker could do
		// the same (the store, edge.KV, bounds the ask itself). An error
		// (the store not saying) keeps the last answer.
		used, limit, err := ur.Usage(context.WithoutCancel(ctx))
		d.mu.Lock()
		if err == nil {
			q := d.quarters
			if q <= 0 {
				q = 2
			}
			full := limit > 0 && used >= limit/4*q
			if full && !d.full {
				if d.what == "" {
					log.Warn("oauth: refusing device authorizations: the store is half full (the rest is kept for signed-in users)", "bytes", used, "limit", limit)
				} else {
					log.Warn("oauth: refusing "+d.what+": the store is "+strconv.FormatInt(q, 10)+" quarters full (the rest is kept for signed-in users' logins, refreshes and revocations)", "bytes", used, "limit", limit)
				}
			}
			d.full = full
		}
		d.at, d.issued, d.asking = time.Now(), 0, false
		d.mu.Unlock()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.full {
		return false
	}
	d.issued++
	return true
}

// handleDeviceAuthorization is RFC 8628 §3.1/3.2.
func (s *Server) handleDeviceAuthorization(w http.ResponseWriter, r *http.Request) {
	form, oe := readForm(w, r)
	if oe != nil {
		writeError(w, oe)
		return
	}
	c, at, oe := s.authClient(r, form)
	if oe != nil {
		writeError(w, oe)
		return
	}
	s.done(&at) // nothing sent here is a guess (its requests are counted below)
	if !c.can(GrantDeviceCode) {
		writeError(w, &oauthError{status: http.StatusBadRequest, code: "unauthorized_client", desc: "the client may not use the device authorization grant"})
		return
	}
	sc, oe := grantScope(c, form.Get("scope"))
	if oe != nil {
		writeError(w, oe)
		return
	}
	// A public client needs no secret here, and every request stores two
	// records for the code's lifetime: requests are counted per source
	// address, so that one address cannot fill the store.
	now, mono := s.now(), s.clock() // the store's minutes are dates; this node's counts durations
	src := s.issues.source(r)
	if ok, retry := s.issues.begin(src, mono); !ok {
		writeError(w, &oauthError{status: http.StatusTooManyRequests, code: "slow_down", desc: "too many device authorizations from this address; try again later", retry: max(retry, time.Second)})
		return
	}
	if !s.deviceRoom.ok(r.Context(), s.store, s.log) {
		s.issues.cancel(src, mono) // refused for every address: nothing to remember of this one
		writeError(w, &oauthError{status: http.StatusTooManyRequests, code: "slow_down", desc: "the server's store holds too many device authorizations; try again later", retry: time.Minute})
		return
	}
	if ok, retry, first := s.deviceAuths.take(mono); !ok {
		s.issues.cancel(src, mono) // refused for every address: nothing to remember of this one
		if first {
			s.log.Warn("oauth: refusing device authorizations: this node issued its limit within the last minute", "limit", s.deviceAuths.max, "remote", src.remote, "retry_after", retry.Round(time.Second))
		}
		writeError(w, &oauthError{status: http.StatusTooManyRequests, code: "slow_down", desc: "the server has issued its device authorizations for the last minute; try again later", retry: max(retry, time.Second)})
		return
	}
	// Counted on this node first (a cheap gate: at most 30 a minute of an
	// address reach the store from each node), then, on a mesh, in the
	// store every node shares (also when refused there: an address past
	// its count gets no more store reads from this node this minute).
	s.issues.end(src, mono, true)
	if ok, retry, err := s.takeDevicePlace(r.Context(), src, now); err != nil {
		writeError(w, s.storeErr(err))
		return
	} else if !ok {
		writeError(w, &oauthError{status: http.StatusTooManyRequests, code: "slow_down", desc: "too many device authorizations from this address; try again later", retry: max(retry, time.Second)})
		return
	}
	rc := c.realm
	rec := deviceRec{
		Realm: rc.Name, Client: c.ID, Scope: sc, Exp: now.Add(rc.DeviceCodeLifetime).Unix(),
		Interval: int64(rc.DevicePollInterval / time.Second), Status: "pending",
	}
	dc := s.newDeviceCode(c.ID, rec.Exp)
	if rec.Interval < 1 {
		rec.Interval = 1
	}
	ctx := r.Context()
	ttl := rc.DeviceCodeLifetime + gcGrace
	for attempt := 0; ; attempt++ {
		rec.UserCode = newUserCode()
		b, _ := json.Marshal(userCodeRec{DC: hashHex(dc), Exp: rec.Exp})
		_, err := s.store.Create(ctx, "uc."+rec.UserCode, b, ttl)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrExists) || attempt == 4 {
			writeError(w, s.storeErr(err))
			return
		}
	}
	b, _ := json.Marshal(rec)
	if _, err := s.store.Create(ctx, "dc."+hashHex(dc), b, ttl); err != nil {
		writeError(w, s.storeErr(err))
		return
	}
	vu := s.endpoint("/oauth/device")
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code":               dc,
		"user_code":                 displayUserCode(rec.UserCode),
		"verification_uri":          vu,
		"verification_uri_complete": vu + "?user_code=" + url.QueryEscape(displayUserCode(rec.UserCode)),
		"expires_in":                int(rc.DeviceCodeLifetime / time.Second),
		"interval":                  rec.Interval,
	})
}

// deviceAddrRec is the record (da.<SHA-256 of the source's key>) of the
// device authorizations one source address (IPv6: one /64) obtained over
// the last minute from all the nodes sharing the store: their times (Unix
// ms, each by its node's clock).
type deviceAddrRec struct {
	Exp int64   `json:"exp"` // the last one's minute and the clock skew (collect's)
	At  []int64 `json:"at"`
}

// takeDevicePlace counts one device authorization of src in a shared
// store (a mesh's bucket, SinceLister), so that one address gets
// deviceAuthsPerMinute a minute from all the nodes together. Before, each
// node counted its own only (s.issues), and an address whose requests a
// load balancer spread over N nodes got N times as many; one IPv4 address
// took 30 of every node's 600 a minute, 20 addresses all of them. It
// returns false, and how long to wait, when the address has had its
// deviceAuthsPerMinute within the last minute. A store of one node's own
// (memory, disk) is not asked: s.issues counts there exactly, and the
// disk store would sync one more write a code. A node whose clock leads
// makes its entries count longer on the others (up to the skew allowed).
// Blocks on the store; an error is the store's.
func (s *Server) takeDevicePlace(ctx context.Context, src source, now time.Time) (bool, time.Duration, error) {
	if _, shared := s.store.(SinceLister); !shared || src.key == (srcKey{}) {
		return true, 0, nil
	}
	var kb [16]byte
	binary.BigEndian.PutUint64(kb[:8], src.key.hi)
	binary.BigEndian.PutUint64(kb[8:], src.key.lo)
	key := "da." + hashHex(string(kb[:]))
	ms, win := now.UnixMilli(), time.Minute.Milliseconds()
	for range 4 {
		e, err := s.store.Get(ctx, key)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return false, 0, err
		}
		var rec deviceAddrRec
		if err == nil {
			json.Unmarshal(e.Value, &rec) // a damaged record counts as empty
		}
		live := rec.At[:0]
		for _, x := range rec.At {
			if x > ms-win {
				live = append(live, x)
			}
		}
		if len(live) >= deviceAuthsPerMinute {
			// Until the oldest leaves the minute (one from a node ahead: at
			// most the minute and the skew).
			wait := time.Duration(slices.Min(live)+win-ms) * time.Millisecond
			return false, min(wait, time.Minute+s.skew), nil
		}
		ttl := time.Minute + s.skew
		rec = deviceAddrRec{Exp: now.Add(ttl).Unix(), At: append(live, ms)}
		b, _ := json.Marshal(rec)
		if e.Revision == 0 {
			_, err = s.store.Create(ctx, key, b, ttl)
		} else {
			_, err = s.store.Update(ctx, key, b, e.Revision, ttl)
		}
		if errors.Is(err, ErrExists) || errors.Is(err, ErrRevision) || errors.Is(err, ErrNotFound) {
			continue // another node's (or request's) meanwhile: count again
		}
		return err == nil, 0, err
	}
	return false, 0, errStoreConflict
}

// deviceCodeLen is the length of a device code's bytes: 32 random, its
// expiry (8, Unix seconds), its MAC (16).
const deviceCodeLen = 32 + 8 + 16

// newDeviceCode returns a new device code of client, expiring at exp
// (Unix seconds), its bytes in base64url: 32 random ones, exp, and a MAC
// of client and both under the server's key (csrfKey, which the nodes of
// a mesh share), so that a poll of one whose record is gone can be told
// from a guess (deviceCodeExpired).
func (s *Server) newDeviceCode(client string, exp int64) string {
	b := make([]byte, 40, deviceCodeLen)
	rand.Read(b[:32])
	binary.BigEndian.PutUint64(b[32:], uint64(exp))
	return base64.RawURLEncoding.EncodeToString(s.deviceMAC(client, b))
}

// deviceMAC appends to b, a device code's random bytes and expiry, their
// MAC for client.
func (s *Server) deviceMAC(client string, b []byte) []byte {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte("edgewamp device code\x00" + client + "\x00"))
	m.Write(b[:40])
	return m.Sum(b[:40])[:deviceCodeLen]
}

// deviceCodeExpired reports whether dc is a device code of client issued
// by this server (or another node of its mesh) and expired at now (Unix
// seconds). Its record is kept gcGrace past the expiry, so that a late
// poll hears expired_token; past that, a poll of it read as unknown, a
// guess, counted against its address (a device resumed from suspend,
// polling with its old code, locked its NAT out after ten polls). Such a
// code is now answered without a store read, and counts nothing: a guess
// cannot carry the MAC.
func (s *Server) deviceCodeExpired(client, dc string, now int64) bool {
	if len(dc) != base64.RawURLEncoding.EncodedLen(deviceCodeLen) {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(dc)
	if err != nil || len(b) != deviceCodeLen {
		return false
	}
	var mac [deviceCodeLen]byte
	if !hmac.Equal(b[40:], s.deviceMAC(client, append(mac[:0], b[:40]...))[40:]) {
		return false
	}
	return now >= int64(binary.BigEndian.Uint64(b[32:40]))
}

// grantDevice is the device's poll (RFC 8628 §3.4/3.5).
func (s *Server) grantDevice(ctx context.Context, c *clientConf, dc string) (*tokenResponse, *oauthError) {
	if dc == "" {
		return nil, errInvalidRequest("device_code is required")
	}
	if s.deviceCodeExpired(c.ID, dc, s.now().Unix()) {
		return nil, errExpiredDeviceCode()
	}
	key := "dc." + hashHex(dc)
	for attempt := 0; attempt < 4; attempt++ {
		e, err := s.store.Get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			return nil, errUnknownGrant("unknown device code")
		}
		if err != nil {
			return nil, s.storeErr(err)
		}
		var d deviceRec
		if err := json.Unmarshal(e.Value, &d); err != nil {
			return nil, s.malformed(key, err)
		}
		now := s.now()
		switch {
		case d.Client != c.ID:
			return nil, errInvalidGrant("the device code was issued to another client")
		case now.Unix() >= d.Exp:
			return nil, errExpiredDeviceCode()
		case d.Status == "denied":
			s.store.Delete(ctx, key, e.Revision)
			return nil, &oauthError{status: http.StatusBadRequest, code: "access_denied", desc: "the user denied the request"}
		case d.Status == "approved":
			// The tokens are made before the code is redeemed (its record
			// deleted), as an authorization code's are (grantAuthCode):
			// deleted first, a failure to make them (the store not
			// writing the login's family, no signing key active) was
			// answered 503 "try again" with the approval gone, and the
			// retry got invalid_grant "unknown device code" (final for
			// the device), counted as a guess against its address.
			//
			// One poll makes them: it claims the code first (a write
			// from the revision read). Unclaimed, every poll racing it
			// made a login, indexed among the user's, which at
			// max_refresh_tokens ended her oldest other login before the
			// losers deleted theirs: n polls sent at once logged n of
			// her devices out.
			if d.Redeeming != 0 && now.Unix()-d.Redeeming < int64(redeemHold/time.Second) && d.Redeeming-now.Unix() < int64(redeemHold/time.Second) {
				return nil, &oauthError{status: http.StatusBadRequest, code: "authorization_pending", desc: "the approval is being redeemed by another request"}
			}
			l, oe := s.storedLogin(c, d.Realm, d.Sub, d.Roles, false, d.Scope)
			if oe != nil {
				return nil, oe
			}
			ttl := time.Unix(d.Exp, 0).Sub(now) + gcGrace
			d.Redeeming = now.Unix()
			b, _ := json.Marshal(d)
			rev, err := s.store.Update(ctx, key, b, e.Revision, ttl)
			if err != nil {
				if errors.Is(err, ErrRevision) || errors.Is(err, ErrNotFound) {
					continue // a concurrent poll claimed it, or redeemed it: re-read
				}
				return nil, s.storeErr(err)
			}
			// The clean-ups of a poll that cannot complete are made
			// whether or not its device still waits: with the request's
			// context, which ends with the device's connection (its HTTP
			// timeout), a mesh's store refused them, the claim held the
			// device's next polls off for redeemHold and the login made
			// for tokens never sent counted among the user's.
			bg := context.WithoutCancel(ctx)
			release := func() {
				// The code stays approved: the device may poll again, at
				// once (a release the store fails: after redeemHold).
				d.Redeeming = 0
				b, _ := json.Marshal(d)
				s.store.Update(bg, key, b, rev, ttl)
			}
			if c.can(GrantRefreshToken) {
				l.gid, l.fam = randomToken(16), newFamilyID() // respond's, named here
			}
			resp, oe := s.respond(ctx, l, true)
			if oe != nil {
				release()
				if oe.status == http.StatusTooManyRequests && oe.code == "temporarily_unavailable" {
					// The bound on the user's logins ending others
					// (tooManyLogins, respond's only 429) has no room
					// yet: pending, so that the device polls on (RFC
					// 8628 devices take any other error as final and
					// stop, the approval lost to them).
					return nil, &oauthError{status: http.StatusBadRequest, code: "authorization_pending", desc: "approved; the user's logins with this client ended too many others lately: keep polling"}
				}
				return nil, oe
			}
			if err := s.store.Delete(ctx, key, rev); err != nil {
				if l.fam != "" {
					// Its tokens are not sent: the login made for them goes.
					s.store.Delete(bg, "rt."+l.fam, 0)
				}
				if errors.Is(err, ErrRevision) || errors.Is(err, ErrNotFound) {
					continue // its claim was taken over (past redeemHold): re-read
				}
				release()
				return nil, s.storeErr(err)
			}
			s.store.Delete(ctx, "uc."+d.UserCode, 0)
			return resp, nil
		}
		// Pending. RFC 8628 §3.5: polling faster than the interval gets
		// slow_down, and the interval grows by 5 s for this and every later
		// request. The slack absorbs jitter: clients poll on a fixed-rate
		// ticker (golang.org/x/oauth2 does), so a poll held up on its way
		// (a cellular uplink, a busy device) is followed by one that
		// arrives early by as much. A tenth of the interval, at least a
		// second, at most half of it.
		//
		// Each node measures from its own last poll of the code, by its
		// own clock: measured from another node's, by that node's clock,
		// a poll at the interval looked early by as much as the other
		// clock was ahead, got slow_down, and the interval grew until
		// the slack covered the difference. A device that spreads its
		// polls over n nodes may poll each at the interval.
		//
		// The polls are timed by the monotonic clock (s.clock): s.node
		// is this process's, so no other clock reads them, and a step of
		// the system clock back made every poll look early by the step
		// (slow_down, the interval grown by 5 s at each, for the code's
		// life: TestDevicePollIgnoresWallClockSteps). The code's expiry,
		// Exp, is a date: ms.
		ms, pm := now.UnixMilli(), s.clock().UnixMilli()
		last := d.lastPoll(s.node)
		tooFast := last != 0 && pm-last < d.Interval*1000-pollSlack(d.Interval)
		if tooFast && d.Interval*1000 >= d.Exp*1000-ms {
			// The interval already outlasts the code: growing it changes
			// nothing a device can do. Written anyway, every poll of a
			// code's holder (a public client: anyone) was a store write,
			// fsynced or replicated, for as long as the code lived.
			return nil, &oauthError{status: http.StatusBadRequest, code: "slow_down", desc: "polling too fast; the interval is now " + itoa(d.Interval) + " s"}
		}
		d.polled(s.node, pm)
		if tooFast {
			d.Interval += 5
		}
		b, _ := json.Marshal(d)
		if _, err := s.store.Update(ctx, key, b, e.Revision, time.Until(time.Unix(d.Exp, 0))+gcGrace); err != nil {
			if errors.Is(err, ErrRevision) || errors.Is(err, ErrNotFound) {
				if attempt > 0 {
					// Another poll of the same code raced this one: too fast by definition.
					return nil, &oauthError{status: http.StatusBadRequest, code: "slow_down", desc: "polling too fast"}
				}
				continue
			}
			return nil, s.storeErr(err)
		}
		if tooFast {
			s.log.Debug("oauth: device polls too fast: slow_down", "client", c.ID, "interval", d.Interval)
			return nil, &oauthError{status: http.StatusBadRequest, code: "slow_down", desc: "polling too fast; the interval is now " + itoa(d.Interval) + " s"}
		}
		return nil, &oauthError{status: http.StatusBadRequest, code: "authorization_pending", desc: "waiting for the user to approve"}
	}
	return nil, errServer("the device code is being used concurrently; try again")
}

func errExpiredDeviceCode() *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "expired_token", desc: "the device code has expired; start over"}
}

// lookupUserCode finds the pending device request of a user code.
func (s *Server) lookupUserCode(ctx context.Context, code string) (string, *deviceRec, uint64, error) {
	e, err := s.store.Get(ctx, "uc."+code)
	if err != nil {
		return "", nil, 0, err
	}
	var u userCodeRec
	if json.Unmarshal(e.Value, &u) != nil {
		return "", nil, 0, ErrNotFound
	}
	de, err := s.store.Get(ctx, "dc."+u.DC)
	if err != nil {
		return "", nil, 0, err
	}
	var d deviceRec
	if json.Unmarshal(de.Value, &d) != nil {
		return "", nil, 0, ErrNotFound
	}
	if s.now().Unix() >= d.Exp || d.Status != "pending" {
		return "", nil, 0, ErrNotFound
	}
	return "dc." + u.DC, &d, de.Revision, nil
}

// decideDevice records the user's decision on a device request. The
// device keeps polling meanwhile (each poll rewrites last_poll): a record
// changed that way, still pending for the same user code, is decided anew.
func (s *Server) decideDevice(ctx context.Context, key string, d *deviceRec, rev uint64, approve bool, sub string, roles []string) error {
	for attempt := 0; ; attempt++ {
		if approve {
			d.Status, d.Sub, d.Roles = "approved", sub, roles
		} else {
			d.Status = "denied"
		}
		b, _ := json.Marshal(d)
		_, err := s.store.Update(ctx, key, b, rev, time.Until(time.Unix(d.Exp, 0))+gcGrace)
		if !errors.Is(err, ErrRevision) || attempt == 4 {
			return err
		}
		e, gerr := s.store.Get(ctx, key)
		if gerr != nil {
			return err
		}
		var fresh deviceRec
		if json.Unmarshal(e.Value, &fresh) != nil || fresh.Status != "pending" || fresh.UserCode != d.UserCode ||
			fresh.Client != d.Client || fresh.Scope != d.Scope || s.now().Unix() >= fresh.Exp {
			return err
		}
		d, rev = &fresh, e.Revision
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// pollSlack is how much earlier than interval seconds after the last one a
// device may poll without slow_down, in milliseconds.
func pollSlack(interval int64) int64 {
	return min(max(interval*100, 1000), interval*500)
}
