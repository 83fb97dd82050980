package main

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The supervisor keeps systemd informed while the router serves. With
// WatchdogSec= in the unit it sends WATCHDOG=1 only while every liveness
// check passes: the event loops run tasks (loop.LivenessProbe), the
// engine's ticker ticks, the router's timer goroutine iterates
// (route.TimerProbe). A wedged loop therefore stops the keep-alives and
// systemd restarts the router (Restart=on-failure; the watchdog kills with
// SIGABRT, whose goroutine dump lands in the journal). It also refreshes
// STATUS= (sessions, mesh state), and logs when a check fails or recovers
// even without a service manager.
//
// Timing, for a watchdog timeout W: checks every W/4, a loop is stalled
// once a probe waited W/2. A wedge is thus noticed within W/2 + W/4, and
// systemd acts at most W after the last keep-alive.
//
// The supervisor publishes each check's verdict (health), which GET
// /readyz answers with: 503 naming what is stuck while a check fails, so
// that a load balancer stops sending clients to a router whose loops
// cannot serve them, and ready again once the checks pass.

// liveness is one named check; it returns nil while its component makes
// progress.
type liveness struct {
	name  string
	check func() error
}

// statusLine composes STATUS=: one part per component, in order. Parts
// are functions, called from the supervisor goroutine, so a component
// (the mesh, the gateway) adds its state with add and the line stays
// current. Safe for concurrent use.
type statusLine struct {
	mu    sync.Mutex
	parts []func() string // guarded by mu
	note  string          // guarded by mu: a transient remark (last reload refused)
}

// add appends a part; f must be safe to call from another goroutine and
// must not block.
func (s *statusLine) add(f func() string) {
	s.mu.Lock()
	s.parts = append(s.parts, f)
	s.mu.Unlock()
}

// setNote sets (or, with "", clears) the transient remark.
func (s *statusLine) setNote(note string) {
	s.mu.Lock()
	s.note = note
	s.mu.Unlock()
}

// remark returns the transient remark ("" when none).
func (s *statusLine) remark() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.note
}

// String renders the line.
func (s *statusLine) String() string {
	s.mu.Lock()
	parts, note := s.parts, s.note
	s.mu.Unlock()
	out := make([]string, 0, len(parts)+1)
	for _, f := range parts {
		if p := f(); p != "" {
			out = append(out, p)
		}
	}
	if note != "" {
		out = append(out, note)
	}
	return strings.Join(out, "; ")
}

// health is the supervisor's last verdict, for GET /readyz: the error of
// the last liveness check, nil while the checks pass. Before the first
// check (the first interval after the start) it is nil: a fresh start has
// had no time to stall, and a probe is only found stalled after the stall
// time anyway. Safe for concurrent use.
type health struct {
	last atomic.Pointer[error]
}

func (h *health) set(err error) {
	if err == nil {
		h.last.Store(nil)
		return
	}
	h.last.Store(&err)
}

// err returns the last check's error, on one line; nil while it passed.
func (h *health) err() error {
	if h == nil {
		return nil
	}
	if p := h.last.Load(); p != nil {
		return errors.New(strings.ReplaceAll((*p).Error(), "\n", "; "))
	}
	return nil
}

// supervisor is the goroutine described above. start it once; stop it
// once, before STOPPING=1.
type supervisor struct {
	n        *notifier
	log      *slog.Logger
	status   *statusLine
	checks   []liveness
	watchdog time.Duration // systemd's watchdog timeout; 0 = none
	interval time.Duration // between checks
	stall    time.Duration // a probe waiting this long is a stalled component
	health   *health       // where each check's verdict is published; may be nil

	stopCh chan struct{}
	done   chan struct{}
}

// Intervals without a systemd watchdog: checks only log.
const (
	noWatchdogInterval = 5 * time.Second
	noWatchdogStall    = 15 * time.Second
)

// newSupervisor returns a supervisor for the watchdog timeout wd (0 for
// none). Give the probes its stall time, and add their checks to checks
// before start.
func newSupervisor(n *notifier, log *slog.Logger, status *statusLine, wd time.Duration) *supervisor {
	s := &supervisor{n: n, log: log, status: status, watchdog: wd,
		interval: noWatchdogInterval, stall: noWatchdogStall,
		stopCh: make(chan struct{}), done: make(chan struct{})}
	if wd > 0 {
		s.interval, s.stall = max(wd/4, 10*time.Millisecond), wd/2
	}
	return s
}

// start sends the first keep-alive (with READY=1 sent by the caller just
// before, systemd starts the watchdog clock) and runs the checks.
func (s *supervisor) start() {
	if s.watchdog > 0 {
		s.n.notify("WATCHDOG=1")
	}
	go s.run()
}

func (s *supervisor) run() {
	defer close(s.done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	var failing error
	lastStatus := ""
	for {
		select {
		case <-s.stopCh:
			return
		case <-t.C:
		}
		var errs []error
		for _, c := range s.checks {
			if err := c.check(); err != nil {
				errs = append(errs, err)
			}
		}
		err := errors.Join(errs...)
		switch {
		case err != nil && failing == nil:
			s.log.Error("liveness check failed: the router is not making progress"+s.consequence(), "err", err)
		case err == nil && failing != nil:
			s.log.Warn("liveness check passes again", "was", failing.Error())
		}
		failing = err
		if s.health != nil {
			s.health.set(err)
		}
		status := s.status.String()
		if err != nil {
			status = "NOT RESPONDING: " + strings.ReplaceAll(err.Error(), "\n", "; ") + "; " + status
		}
		lines := make([]string, 0, 2)
		if err == nil && s.watchdog > 0 {
			lines = append(lines, "WATCHDOG=1")
		}
		if status != lastStatus {
			lines = append(lines, "STATUS="+status)
			lastStatus = status
		}
		if len(lines) > 0 || s.n.owesReady() {
			s.n.notify(lines...)
		}
	}
}

func (s *supervisor) consequence() string {
	if s.watchdog > 0 {
		return "; withholding systemd's watchdog keep-alive, so that systemd restarts it"
	}
	return ""
}

// stop ends the goroutine and waits for it.
func (s *supervisor) stop() {
	close(s.stopCh)
	<-s.done
}
