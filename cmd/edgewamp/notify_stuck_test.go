package main

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStopWhileServiceManagerDoesNotRead: the notifications to systemd
// were written without a deadline. When the service manager stopped
// reading its socket (PID 1 busy or wedged, a container runtime's
// notify proxy gone; its queue holds net.unix.max_dgram_qlen datagrams,
// 10 by the kernel's default), the next write blocked for ever, holding
// the notifier: the supervisor's keep-alive first, then the stop's
// STOPPING=1, so that a SIGTERM never reached the drain and the router
// ran on until a SIGKILL. A notification that cannot be sent within a
// second is now dropped (systemd is not reading it anyway), and the
// router stops.
func TestStopWhileServiceManagerDoesNotRead(t *testing.T) {
	dir, err := os.MkdirTemp("", "ewsd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	mgr, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	cfgPath := writeFile(t, "sd.yaml", "listeners: [{address: \"127.0.0.1:0\"}]\nrealms: [{name: realm1}]\n")
	cmd := exec.Command(binPath, "run", "-config", cfgPath)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+path, "WATCHDOG_USEC="+strconv.Itoa(400_000))
	r := launch(t, cmd)
	// The manager reads READY=1, then no more.
	buf := make([]byte, 4096)
	mgr.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		n, err := mgr.Read(buf)
		if err != nil {
			t.Fatalf("no READY=1: %v", err)
		}
		if strings.Contains(string(buf[:n]), "READY=1") {
			break
		}
	}
	// Fill its queue from another socket, as other services' messages
	// would.
	other, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for i := 0; ; i++ {
		other.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := other.Write([]byte("STATUS=other")); err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatal(err)
			}
			break
		}
		if i > 100000 {
			t.Fatal("the manager's queue does not fill")
		}
	}
	// Keep-alives every 100 ms meet the full queue.
	time.Sleep(300 * time.Millisecond)
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, r.logs())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("SIGTERM with a service manager that does not read: the router still runs 20 s later (shutting down logged: %v)\n%s",
			strings.Contains(r.logs(), "shutting down"), r.logs())
	}
	if !strings.Contains(r.logs(), "edgewamp stopped") {
		t.Fatalf("no stop line in logs:\n%s", r.logs())
	}
}

// TestReadyReachesBusyServiceManager: since a notification that cannot
// be written within notifyTimeout is dropped (0e293b9), a READY=1 that
// met the service manager's full queue (PID 1 busy for more than a
// second at boot, its queue filled by other services) was lost for
// good: systemd waits for READY=1 until TimeoutStartSec, then kills the
// router and starts it again, which before waited and got through. Now
// a READY=1 not sent goes out with the next notification (a keep-alive,
// a status; without a watchdog, at the supervisor's next tick).
func TestReadyReachesBusyServiceManager(t *testing.T) {
	// Without a watchdog the supervisor's tick is 5 s (noWatchdogInterval):
	// too slow for a test; it sends what is owed the same way.
	for _, wd := range []string{"400000"} {
		t.Run("WATCHDOG_USEC="+wd, func(t *testing.T) { readyReachesBusyServiceManager(t, wd) })
	}
}

func readyReachesBusyServiceManager(t *testing.T, watchdogUsec string) {
	dir, err := os.MkdirTemp("", "ewsd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	mgr, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	// The manager is busy: its queue is full of other services' messages.
	other, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for i := 0; ; i++ {
		other.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := other.Write([]byte("STATUS=other")); err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatal(err)
			}
			break
		}
		if i > 100000 {
			t.Fatal("the manager's queue does not fill")
		}
	}
	cfgPath := writeFile(t, "sd.yaml", "listeners: [{address: \"127.0.0.1:0\"}]\nrealms: [{name: realm1}]\n")
	cmd := exec.Command(binPath, "run", "-config", cfgPath)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+path)
	if watchdogUsec != "" {
		cmd.Env = append(cmd.Env, "WATCHDOG_USEC="+watchdogUsec)
	}
	r := launch(t, cmd)
	r.waitLog("edgewamp started", 1)
	// Busy for longer than a notification's write waits.
	time.Sleep(notifyTimeout + time.Second)
	buf := make([]byte, 4096)
	mgr.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, err := mgr.Read(buf)
		if err != nil {
			t.Fatalf("no READY=1 once the manager reads again: %v\n%s", err, r.logs())
		}
		if strings.Contains(string(buf[:n]), "READY=1") {
			break
		}
	}
}
