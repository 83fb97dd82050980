package load

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Worker processes: a process here may hold at most 20,000 open files, so
// scenarios that hold many sessions spread them over copies of the tool.
// The parent re-executes its own binary with the worker's Config (JSON) in
// WorkerEnv; the worker reports on stdout with lines "WORKER <WORD>
// k=v ..." and takes commands ("go", "stop") on stdin. It exits when stdin
// closes, so workers never outlive the parent.

// WorkerEnv names the environment variable that makes wampbench a worker.
const WorkerEnv = "WAMPBENCH_WORKER"

// worker is the parent's handle on a worker process.
type worker struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

// With niceness > 0 the worker runs under nice(1), when there is one, so
// that on a shared CPU it yields to the parent's measured sessions.
func spawnWorker(cfg Config, niceness int) (*worker, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cfg.Log = nil
	js, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	if nice, err := exec.LookPath("nice"); err == nil && niceness > 0 {
		cmd = exec.Command(nice, "-n", strconv.Itoa(niceness), exe)
	}
	w := &worker{cmd: cmd, lines: make(chan string, 16)}
	w.cmd.Env = append(os.Environ(), WorkerEnv+"="+string(js))
	w.cmd.Stderr = os.Stderr
	if w.in, err = w.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := w.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		defer close(w.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "WORKER "); ok {
				w.lines <- line
			}
		}
	}()
	return w, nil
}

func (w *worker) send(cmd string) { fmt.Fprintln(w.in, cmd) }

// expect waits for a report line starting with word and returns its
// fields.
func (w *worker) expect(word string, timeout time.Duration) (map[string]string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case line, ok := <-w.lines:
			if !ok {
				return nil, errors.New("worker exited")
			}
			f := strings.Fields(line)
			if len(f) == 0 || f[0] != word {
				continue
			}
			m := map[string]string{}
			for _, kv := range f[1:] {
				k, v, _ := strings.Cut(kv, "=")
				m[k] = v
			}
			return m, nil
		case <-t.C:
			return nil, fmt.Errorf("no %s from worker after %v", word, timeout)
		}
	}
}

// finish closes stdin (the worker exits) and waits, killing it if needed.
func (w *worker) finish() {
	w.in.Close()
	done := make(chan struct{})
	go func() { w.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		w.cmd.Process.Kill()
		<-done
	}
}

// RunWorker runs the worker described by the WorkerEnv value js, reading
// commands from in and reporting to out.
func RunWorker(js string, in io.Reader, out io.Writer) error {
	var cfg Config
	if err := json.Unmarshal([]byte(js), &cfg); err != nil {
		return err
	}
	if err := cfg.defaults(); err != nil {
		return err
	}
	raiseFileLimit()
	cmds := make(chan string)
	go func() {
		defer close(cmds)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			cmds <- strings.TrimSpace(sc.Text())
		}
	}()
	switch cfg.Scenario {
	case "idle-worker":
		return idleWorker(&cfg, cmds, out)
	case "storm-worker":
		return stormWorker(&cfg, cmds, out)
	}
	return fmt.Errorf("unknown worker %q", cfg.Scenario)
}

// waitCmd waits for cmd; it returns false when stdin closed first.
func waitCmd(cmds <-chan string, cmd string) bool {
	for c := range cmds {
		if c == cmd {
			return true
		}
	}
	return false
}
