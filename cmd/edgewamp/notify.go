package main

import (
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// systemd's notification protocol (sd_notify(3)), without libsystemd: a
// datagram of "KEY=value" lines to the unix socket named by NOTIFY_SOCKET.
// The service manager learns from it that the router is ready (READY=1),
// alive (WATCHDOG=1), reloading (RELOADING=1 with MONOTONIC_USEC, which
// Type=notify-reload requires), stopping (STOPPING=1), and what it is
// doing (STATUS=, shown by systemctl status).

// notifier sends state to systemd. A nil *notifier (not run by a service
// manager) does nothing. Safe for concurrent use.
type notifier struct {
	addr *net.UnixAddr

	mu   sync.Mutex
	conn *net.UnixConn // guarded by mu; dialled on first use, redialled after an error
	// readyOwed: a READY=1 was not sent (its write timed out or failed);
	// it goes with the next notification. Guarded by mu.
	readyOwed bool
}

// newNotifier returns a notifier for $NOTIFY_SOCKET, or nil when it is
// unset. It does not dial yet.
func newNotifier() *notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' { // abstract namespace
		path = "\x00" + path[1:]
	}
	return &notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// notify sends the lines as one datagram. Errors are returned for the
// tests and otherwise ignored by callers: a service manager that went
// away is no reason to stop routing.
func (n *notifier) notify(lines ...string) error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	ready, ends := false, false
	for _, l := range lines {
		switch l {
		case "READY=1":
			ready = true
		case "STOPPING=1", "RELOADING=1":
			ends = true // READY=1 is moot, or comes after the reload
		}
	}
	if n.readyOwed && !ready && !ends {
		lines = append([]string{"READY=1"}, lines...)
		ready = true
	}
	if len(lines) == 0 {
		return nil // the READY=1 owed went meanwhile (owesReady)
	}
	if ready {
		// Until it is written: systemd waits for it (TimeoutStartSec,
		// then a kill; after a reload, the reload job) and the
		// messages after it do not stand for it.
		n.readyOwed = true
	}
	msg := []byte(strings.Join(lines, "\n"))
	if n.conn == nil {
		c, err := net.DialUnix("unixgram", nil, n.addr)
		if err != nil {
			return err
		}
		n.conn = c
	}
	// A deadline: a service manager that stops reading (PID 1 wedged or
	// busy, a container runtime's notify proxy gone) fills its socket's
	// queue (net.unix.max_dgram_qlen datagrams), and the next write
	// blocked for ever, holding mu: the supervisor's keep-alive, then
	// the stop's STOPPING=1, so that a SIGTERM never reached the drain.
	// A message that cannot go within notifyTimeout is dropped: the
	// manager is not reading it anyway; but a READY=1 is owed, and goes
	// with the next one (readyOwed).
	n.conn.SetWriteDeadline(time.Now().Add(notifyTimeout))
	if _, err := n.conn.Write(msg); err != nil {
		n.conn.Close()
		n.conn = nil
		return err
	}
	if ready || strings.Contains(string(msg), "STOPPING=1") {
		n.readyOwed = false
	}
	return nil
}

// owesReady reports whether a READY=1 is still to be sent: the
// supervisor then notifies at its next tick, whatever else it has to say.
func (n *notifier) owesReady() bool {
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.readyOwed
}

// notifyTimeout bounds one notification's write.
const notifyTimeout = time.Second

// close releases the socket.
func (n *notifier) close() {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn != nil {
		n.conn.Close()
		n.conn = nil
	}
}

// reloading tells the service manager that a reload began. MONOTONIC_USEC
// (CLOCK_MONOTONIC in µs) lets Type=notify-reload match the message to
// the SIGHUP it sent; older systemd versions ignore it.
func (n *notifier) reloading() error {
	return n.notify("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(monotonicUsec(), 10))
}

func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}

// watchdogPeriod returns the watchdog timeout systemd asked for
// (WatchdogSec= in the unit: $WATCHDOG_USEC, for this process when
// $WATCHDOG_PID is unset or ours), or 0 when there is none.
func watchdogPeriod() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond
}
