package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestStartWaitsForConfigBeingWritten (found by the review of the start
// as an operator making mistakes): run read its configuration file as it
// found it, while a reload waits until the file has been left alone
// (TestReloadWaitsForConfigBeingWritten). A router (re)started while its
// file was being written in place (cp over it, a tool that truncates and
// writes; systemd's Restart= after a crash, a second operator's restart)
// ran on the part written so far, which is often valid: here the last
// realm was missing, so its clients were refused (no such realm); a cut
// before realms: runs the embedded default's open realm1, one before a
// realm's security: true an open realm. Now run reads a regular file once
// it has not been modified for 200 ms, as a reload does.
func TestStartWaitsForConfigBeingWritten(t *testing.T) {
	var b strings.Builder
	b.WriteString("listeners: [{address: \"127.0.0.1:0\"}]\nrealms:\n  - name: realm1\n    anonymous: true\n")
	for i := range 3000 {
		fmt.Fprintf(&b, "# padding %04d: a file long enough to be written in several chunks\n", i)
	}
	b.WriteString("  - name: realm2\n    anonymous: true\n")
	content := []byte(b.String())
	path := writeFile(t, "c.yaml", "")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Written in place in 50 chunks 10 ms apart, the router started after
	// the first.
	const chunks = 50
	step := len(content)/chunks + 1
	if _, err := f.Write(content[:step]); err != nil {
		t.Fatal(err)
	}
	written := make(chan error, 1)
	go func() {
		defer f.Close()
		for i := step; i < len(content); i += step {
			time.Sleep(10 * time.Millisecond)
			if _, err := f.Write(content[i:min(i+step, len(content))]); err != nil {
				written <- err
				return
			}
		}
		written <- nil
	}()
	r := launch(t, exec.Command(binPath, "run", "-config", path, "-gateway-listen", "off"))
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := client.Dial(ctx, client.Config{URL: "rs://" + r.addr, Realm: "realm2", Serializer: proto.MsgPack})
	if err != nil {
		t.Fatalf("a router started while its file was written in place: realm2 (the file's last lines): %v\n%s", err, lastLines(r.logs(), 4))
	}
	s.Close()
}
