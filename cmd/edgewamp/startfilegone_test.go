package main

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/nats-io/nkeys"
)

// TestReloadWarnsOfRemovedStartFiles: a mesh node's nkey seed file (read
// at start only; mesh: needs a restart, so a reload does not check it)
// removed while the node runs is named at the next reload: the node keeps
// the seed it read, but a restart will fail until the file is back.
// Before, only a file rewritten was named; a removed one drew nothing,
// and "configuration reloaded" was all an operator saw. (A removed OAuth2
// key file or TLS key is refused by the reload itself, naming it.)
func TestReloadWarnsOfRemovedStartFiles(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()

	seedFile := writeFile(t, "node.nk", string(seed))
	path := writeFile(t, "c.yaml", "mesh: {node: a, cluster: {listen: \"127.0.0.1:0\"}, credentials: {nkey_seed_file: "+seedFile+"}}\n")
	r := launch(t, exec.Command(binPath, "run", "-config", path, "-listen", "127.0.0.1:0"))
	r.waitLog("edgewamp started", 1)
	if err := os.Remove(seedFile); err != nil {
		t.Fatal(err)
	}
	r.cmd.Process.Signal(syscall.SIGHUP)
	r.waitLog("SIGHUP: configuration reloaded", 1)
	if l := grepLines(r.logs(), "SIGHUP: files read at start only"); !strings.Contains(l, "cannot be read") || !strings.Contains(l, "mesh.credentials.nkey_seed_file "+seedFile) {
		t.Fatalf("a reload after the nkey seed file was removed: no warning naming it:\n%s", grepLines(r.logs(), "SIGHUP"))
	}
}
