package main

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/route"
)

// A mesh without data_dir: each node makes a WAMP-CRA decoy key of its
// own at every start, so a stranger's WAMP-CRA salt (or shape, or the
// work of its wrong ticket) differs from node to node while a user's does
// not, and two logins reaching two nodes tell the users apart. README
// said to give every node the same data_dir/wampcra-decoy.key; nothing
// said that a node without data_dir cannot. check-config (and run at
// start) now warn, naming the realms where the decoys depend on the key,
// and only those: not with data_dir, not without a mesh, not for a realm
// whose strangers are answered alike whatever the key (anonymous only,
// plain secrets only, tickets with one password shape).
func TestMeshDecoyKeyWithoutDataDirWarned(t *testing.T) {
	hash := func(it int) string {
		p, err := route.HashPassword("pw", it)
		if err != nil {
			t.Fatal(err)
		}
		return p.String()
	}
	h1, h2 := hash(1000), hash(2000)
	const mesh = "mesh: {node: n1, leaf: {listen: \"127.0.0.1:17422\"}, credentials: {token: sample-mesh-token-0123456789abcdef}}\n"
	realm := func(name, methods string, users ...string) string {
		s := "  - name: " + name + "\n"
		if methods != "" {
			s += "    authmethods: [" + methods + "]\n"
		}
		s += "    users:\n"
		for _, u := range users {
			s += "      - " + u + "\n"
		}
		return s
	}
	salted := func(id, h string) string { return fmt.Sprintf("{authid: %s, role: user, password: %q}", id, h) }
	plain := func(id string) string { return fmt.Sprintf("{authid: %s, role: user, secret: s3cret-%s}", id, id) }
	cases := []struct {
		name, body string
		want       string // the realms named, "" for no warning
	}{
		{"cra salted", mesh + "realms:\n" + realm("plant1", "", salted("alice", h1)) + "  - {name: open, anonymous: true}\n", `realm "plant1"`},
		{"ticket two shapes", mesh + "realms:\n" + realm("plant1", "ticket", salted("alice", h1), salted("bob", h2)) + realm("plant2", "wampcra", salted("carol", h1)), `realms "plant1", "plant2"`},
		{"data_dir", mesh + "data_dir: " + t.TempDir() + "/state\nrealms:\n" + realm("plant1", "", salted("alice", h1)), ""},
		{"no mesh", "realms:\n" + realm("plant1", "", salted("alice", h1)), ""},
		{"anonymous", mesh + "realms:\n  - {name: open, anonymous: true}\n", ""},
		{"plain only", mesh + "realms:\n" + realm("plant1", "", plain("dash"), plain("eve")), ""},
		{"ticket one shape", mesh + "realms:\n" + realm("plant1", "ticket", salted("alice", h1), salted("bob", h1)), ""},
	}
	t.Run("run", func(t *testing.T) {
		p := writeFile(t, "c.yaml", "listeners: [{address: \"127.0.0.1:0\"}]\ngateway: {listen: \"off\"}\n"+
			"mesh: {node: n1, leaf: {listen: \"127.0.0.1:0\"}, store_dir: "+t.TempDir()+"/js}\nrealms:\n"+realm("plant1", "", salted("alice", h1)))
		r := launch(t, exec.Command(hookBinary(t), "run", "-config", p))
		r.waitLog("edgewamp started", 1)
		if logs := r.logs(); !strings.Contains(logs, `level=WARN msg="mesh: is on and data_dir is unset`) || !strings.Contains(logs, `tell the users of realm \"plant1\" apart`) {
			t.Errorf("run did not warn of the decoy key at start:\n%s", logs)
		}
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, "c.yaml", "listeners: [{address: \"127.0.0.1:0\"}]\ngateway: {listen: \"off\"}\n"+tc.body)
			_, e, code := runCLI("check-config", p)
			if code != 0 {
				t.Fatalf("check-config: exit %d: %s", code, e)
			}
			var got []string
			for _, l := range strings.Split(e, "\n") {
				if strings.Contains(l, "decoy key") {
					got = append(got, l)
				}
			}
			if tc.want == "" {
				if len(got) > 0 {
					t.Errorf("check-config warned where the decoys do not depend on the key:\n%s", strings.Join(got, "\n"))
				}
				return
			}
			if len(got) != 1 || !strings.Contains(got[0], "tell the users of "+tc.want+" apart") || !strings.Contains(got[0], "set data_dir and give every node the same data_dir/wampcra-decoy.key") {
				t.Errorf("check-config's stderr:\n%s\nwant one warning naming %s", e, tc.want)
			}
		})
	}
}
