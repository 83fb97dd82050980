// Command wampstart measures how a router starts: the time from exec to
// READY=1 on a fake systemd notification socket, and its resident memory
// once started (VmRSS after -settle). It starts the router -runs times and
// prints one RESULT line with the median, minimum and maximum of each.
//
//	wampstart -bin bin/edgewamp -runs 10 -- run -listen 127.0.0.1:0 -config deploy/small-board.yaml
//
// Every run ends with SIGTERM and counts as ok when the router exits 0.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("bin", "bin/edgewamp", "router binary")
	runs := flag.Int("runs", 10, "number of starts")
	settle := flag.Duration("settle", time.Second, "wait after READY=1 before reading the RSS")
	label := flag.String("label", "edgewamp", "target name in the RESULT line")
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		args = []string{"run", "-listen", "127.0.0.1:0", "-gateway-listen", "127.0.0.1:0"}
	}
	var ready, rss, anon []float64
	ok := 0
	for i := 0; i < *runs; i++ {
		r, kib, anonKiB, err := once(*bin, args, *settle)
		if err != nil {
			fmt.Fprintf(os.Stderr, "wampstart: run %d: %v\n", i+1, err)
			continue
		}
		ok++
		ready = append(ready, float64(r.Microseconds())/1000)
		rss = append(rss, float64(kib))
		anon = append(anon, float64(anonKiB))
	}
	if ok == 0 {
		fmt.Printf("RESULT scenario=start target=%s error=no_successful_run\n", *label)
		os.Exit(1)
	}
	fmt.Printf("RESULT scenario=start target=%s runs=%d ok=%d ready_ms_p50=%.1f ready_ms_min=%.1f ready_ms_max=%.1f rss_kib_p50=%.0f rss_kib_min=%.0f rss_kib_max=%.0f rss_anon_kib_p50=%.0f\n",
		*label, *runs, ok, median(ready), minOf(ready), maxOf(ready), median(rss), minOf(rss), maxOf(rss), median(anon))
}

// once starts the router, waits for READY=1, reads its RSS (VmRSS and
// RssAnon, the part that is not the binary's file pages) after settle,
// stops it with SIGTERM and checks that it exits 0.
func once(bin string, args []string, settle time.Duration) (time.Duration, int, int, error) {
	dir, err := os.MkdirTemp("", "wampstart")
	if err != nil {
		return 0, 0, 0, err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return 0, 0, 0, err
	}
	defer conn.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	}()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 4096)
	var ready time.Duration
	for ready == 0 {
		n, err := conn.Read(buf)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("no READY=1: %w", err)
		}
		for _, l := range strings.Split(string(buf[:n]), "\n") {
			if l == "READY=1" {
				ready = time.Since(start)
			}
		}
	}
	time.Sleep(settle)
	kib, err := statusKiB(cmd.Process.Pid, "VmRSS:")
	if err != nil {
		return 0, 0, 0, err
	}
	anonKiB, err := statusKiB(cmd.Process.Pid, "RssAnon:")
	if err != nil {
		return 0, 0, 0, err
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			return 0, 0, 0, fmt.Errorf("exit after SIGTERM: %w", err)
		}
	case <-time.After(30 * time.Second):
		return 0, 0, 0, errors.New("no exit within 30 s of SIGTERM")
	}
	return ready, kib, anonKiB, nil
}

// statusKiB reads one kB field of /proc/PID/status.
func statusKiB(pid int, field string) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field {
			return strconv.Atoi(f[1])
		}
	}
	return 0, errors.New("no " + field)
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minOf(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = min(m, x)
	}
	return m
}

func maxOf(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = max(m, x)
	}
	return m
}
