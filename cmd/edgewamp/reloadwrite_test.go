package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestReloadWaitsForConfigBeingWritten: a SIGHUP that comes while the
// configuration file is being written in place (cp over it, an editor or
// a tool that truncates and writes, here the same content again in
// chunks) reloads the file once it is written, not the part written so
// far. Before, the reload parsed the prefix it found, which is often valid
// YAML (a cut inside a comment, a value or at a line's end): here the last
// realm was missing from it, so its sessions were ended ("realm realm2
// was removed from the configuration") by a rewrite that changed nothing.
// A prefix can also open the router: one without `realms:` takes the
// embedded default's anonymous realm1, and a realm cut before `security:
// true` and its users is anonymous with every permission.
func TestReloadWaitsForConfigBeingWritten(t *testing.T) {
	var b strings.Builder
	b.WriteString("realms:\n  - name: realm1\n    anonymous: true\n")
	for i := range 3000 {
		fmt.Fprintf(&b, "# padding %04d: a file long enough to be written in several chunks\n", i)
	}
	b.WriteString("  - name: realm2\n    anonymous: true\n")
	content := []byte(b.String())
	path := writeFile(t, "c.yaml", string(content))
	r := launch(t, exec.Command(binPath, "run", "-config", path, "-listen", "127.0.0.1:0"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := client.Dial(ctx, client.Config{URL: "rs://" + r.addr, Realm: "realm2", Serializer: proto.MsgPack})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// The same content again, written in place in 50 chunks 10 ms apart,
	// the SIGHUP after the first.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	const chunks = 50
	step := len(content)/chunks + 1
	for i := 0; i < len(content); i += step {
		if _, err := f.Write(content[i:min(i+step, len(content))]); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(r.logs(), "SIGHUP: configuration") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	logs := r.logs()
	if !strings.Contains(logs, "SIGHUP: configuration reloaded") {
		t.Fatalf("no reload within 15 s:\n%s", lastLines(logs, 10))
	}
	if strings.Contains(logs, "was removed from the configuration") {
		t.Fatalf("a reload while the file was being rewritten with the same content removed realm2:\n%s", grepLines(logs, "removed"))
	}
	if _, err := s.Call(ctx, "wamp.session.count", nil, nil, nil); err != nil {
		t.Fatalf("realm2's session after the reload: %v\n%s", err, lastLines(logs, 10))
	}
}
