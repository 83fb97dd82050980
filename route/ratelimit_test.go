package route

import (
	"strconv"
	"testing"
	"time"
)

func TestAuthLimiterKeys(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"192.0.2.7:5555", "192.0.2.7"},
		{"[2001:db8::1]:443", "2001:db8::/64"},
		{"[2001:db8:0:0:ffff::9]:1", "2001:db8::/64"},
		{"[2001:db8:0:1::1]:1", "2001:db8:0:1::/64"},
		{"[::ffff:192.0.2.7]:80", "192.0.2.7"},
		{"unix-socket", "unix-socket"},
	} {
		if got := host(c.in); got != c.want {
			t.Errorf("host(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// Addresses of one /64 share a record: the tenth failure blocks them all.
	l := newAuthLimiter()
	now := time.Unix(1e9, 0)
	for i := range refuseAfter {
		l.fail("[2001:db8::"+strconv.FormatInt(int64(i+1), 16)+"]:1000", now)
	}
	if !l.blocked("[2001:db8::ffff]:2000", now) {
		t.Error("the /64 is not blocked after 10 failures from its addresses")
	}
	if l.blocked("[2001:db8:0:1::1]:2000", now) {
		t.Error("the next /64 is blocked too")
	}
}

func TestAuthLimiterSweepsExpired(t *testing.T) {
	l := newAuthLimiter()
	start := time.Unix(1e9, 0)
	for i := range limiterMin {
		l.fail("10."+strconv.Itoa(i>>16)+"."+strconv.Itoa(i>>8&255)+"."+strconv.Itoa(i&255)+":1", start)
	}
	later := start.Add(failWindow + time.Second)
	l.fail("192.0.2.1:1", later)
	if n := len(l.m); n != 1 {
		t.Fatalf("%d records after every earlier one expired, want 1", n)
	}
}
