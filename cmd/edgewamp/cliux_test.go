package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCheckConfigTabNamesItsLine: a tab in a line's indentation is named
// as such, on the line that holds it. yaml's own message named the line
// before it when the tab followed a sibling key or spaces, and said only
// "found character that cannot start any token" for others.
func TestCheckConfigTabNamesItsLine(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, body string
		line       string
	}{
		{"first key", "log:\n\tlevel: info\n", "line 2"},
		{"after a sibling", "log:\n  level: info\n\tformat: json\n", "line 3"},
		{"in a list item", "realms:\n  - name: a\n\t  anonymous: true\n", "line 3"},
		{"after spaces", "log:\n   \tlevel: info\n", "line 2"},
		{"a list", "realms:\n\t- name: a\n", "line 2"},
	}
	for i, c := range cases {
		p := filepath.Join(dir, "c"+string(rune('0'+i))+".yaml")
		if err := os.WriteFile(p, []byte(c.body), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(binPath, "check-config", p).CombinedOutput()
		if code := exitCode(err); code != 1 {
			t.Errorf("%s: exit %d, want 1: %s", c.name, code, out)
		}
		want := p + ": " + c.line + ": a tab in the indentation"
		if !strings.Contains(string(out), want) {
			t.Errorf("%s: got %q, want it to say %q", c.name, out, want)
		}
	}
}

// TestRunMeshFlagErrorsNameTheFlag: a wrong mesh flag is refused before
// the router starts, naming the flag, as a wrong -listen is. Before, the
// router logged its start, then stopped with "edge: cluster.routes: ..."
// (neither the flag nor the file named).
func TestRunMeshFlagErrorsNameTheFlag(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-cluster-routes", "foo"}, "edgewamp: flag -cluster-routes: "},
		{[]string{"-cluster-listen", "127.0.0.1:0", "-cluster-routes", "http://127.0.0.1:1"}, "edgewamp: flag -cluster-routes: "},
		{[]string{"-leaf-remotes", "http://127.0.0.1:1"}, "edgewamp: flag -leaf-remotes: "},
		{[]string{"-node", "a.b", "-leaf-listen", "127.0.0.1:0"}, "edgewamp: flag -node: "},
	}
	for _, c := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		args := append([]string{"run", "-listen", "127.0.0.1:0", "-gateway-listen", "off"}, c.args...)
		out, err := exec.CommandContext(ctx, binPath, args...).CombinedOutput()
		cancel()
		if code := exitCode(err); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", c.args, code, out)
		}
		if !strings.HasPrefix(string(out), c.want) || strings.Contains(string(out), "level=") {
			t.Errorf("%v: got %q, want it to start %q and nothing to have started", c.args, out, c.want)
		}
	}
}

// TestCheckConfigSizeNamesItsKey: a size refused names its key, as a
// duration refused does. Before: `line 3: "10mb" is not a size`.
func TestCheckConfigSizeNamesItsKey(t *testing.T) {
	cases := []struct{ body, want string }{
		{"gateway:\n  limits:\n    max_body: 10 apples\n", `line 3: gateway.limits.max_body: "10 apples" is not a size`},
		{"limits:\n  max_message: 1.5.2MiB\n", `line 2: limits.max_message: "1.5.2MiB" is not a size`},
		{"listeners: [{address: \"127.0.0.1:0\"}]\nlimits: {high_water: 100TiB}\n", `line 2: limits.high_water: "100TiB" is not a size`},
	}
	for _, c := range cases {
		p := writeFile(t, "c.yaml", c.body)
		out, err := exec.Command(binPath, "check-config", p).CombinedOutput()
		if code := exitCode(err); code != 1 || !strings.Contains(string(out), p+": "+c.want) {
			t.Errorf("exit %d: %q, want exit 1 and %q", code, out, c.want)
		}
	}
}

// TestCheckConfigShowsEveryError: check-config shows every problem of
// the file (README), a wrong duration's or size's included. Before, the
// first wrong duration or size ended the decoding: it alone was shown,
// and the unknown keys and wrong values after it only on the next run.
func TestCheckConfigShowsEveryError(t *testing.T) {
	p := writeFile(t, "c.yaml", "gateway:\n  call_timeout: 10\n  max_call_timeout: 20\nloops: two\nfoo: 1\nlimits: {max_message: x}\n")
	out, err := exec.Command(binPath, "check-config", p).CombinedOutput()
	if code := exitCode(err); code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, out)
	}
	for _, want := range []string{
		`line 2: gateway.call_timeout: "10" is not a duration`,
		`line 3: gateway.max_call_timeout: "20" is not a duration`,
		"line 4: loops takes a whole number",
		"line 5: key foo is not a known configuration key",
		`line 6: limits.max_message: "x" is not a size`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("missing %q in %s", want, out)
		}
	}
}

// TestCheckConfigNegativeSize: a negative size is refused as negative
// (README: "a negative number is refused"), not as "not a size".
func TestCheckConfigNegativeSize(t *testing.T) {
	p := writeFile(t, "c.yaml", "gateway:\n  limits:\n    max_body: -1\nlimits:\n  max_message: -8KiB\n")
	out, err := exec.Command(binPath, "check-config", p).CombinedOutput()
	if code := exitCode(err); code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, out)
	}
	for _, want := range []string{
		`line 3: gateway.limits.max_body: "-1" is negative`,
		`line 5: limits.max_message: "-8KiB" is negative`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("missing %q in %s", want, out)
		}
	}
}

// TestCheckConfigMappingNamesItsKey: a mapping where a single value goes,
// as the first key of a block mapping, names its key. The block mapping
// starts on the same line, and the message said "line 2: a value takes a
// single value, not a mapping".
func TestCheckConfigMappingNamesItsKey(t *testing.T) {
	cases := []struct{ body, want string }{
		{"gateway:\n  listen: {host: x}\n", "line 2: gateway.listen takes a single value, not a mapping"},
		{"mesh:\n  credentials:\n    token: {a: 1}\n", "line 3: mesh.credentials.token takes a single value, not a mapping"},
		{"loops:\n  a: {b: 1}\n", "line 2: loops takes a whole number, not a mapping"},
	}
	for _, c := range cases {
		p := writeFile(t, "c.yaml", c.body)
		out, err := exec.Command(binPath, "check-config", p).CombinedOutput()
		if code := exitCode(err); code != 1 || !strings.Contains(string(out), p+": "+c.want) {
			t.Errorf("exit %d: %q, want exit 1 and %q", code, out, c.want)
		}
	}
}

// TestCheckConfigUnknownKeySaysWhere: an unknown key under another says
// where it is, so that a key at the wrong level can be told from a typo.
func TestCheckConfigUnknownKeySaysWhere(t *testing.T) {
	cases := []struct{ body, want string }{
		{"listeners:\n  - address: 127.0.0.1:9000\n    realm: x\n", "line 3: key realm is not a known configuration key (at listeners[0].realm)"},
		{"gateway:\n  limits:\n    max_bdy: 1\n", "line 3: key max_bdy is not a known configuration key (at gateway.limits.max_bdy)"},
		{"foo: 1\n", "line 1: key foo is not a known configuration key\n"},
	}
	for _, c := range cases {
		p := writeFile(t, "c.yaml", c.body)
		out, err := exec.Command(binPath, "check-config", p).CombinedOutput()
		if code := exitCode(err); code != 1 || !strings.Contains(string(out), p+": "+c.want) {
			t.Errorf("exit %d: %q, want exit 1 and %q", code, out, c.want)
		}
	}
}

// TestFlagValueRefusedExitsTwo: a value a flag refuses is a usage error,
// exit status 2 as for an unknown flag (README, "Commands"); an error of
// the file stays 1. Before, `run -listen foo` exited 1 and `run -bogus` 2.
func TestFlagValueRefusedExitsTwo(t *testing.T) {
	bad := writeFile(t, "bad.yaml", "log: {level: loud}\n")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run", "-listen", "foo"}, 2, "flag -listen: "},
		{[]string{"run", "-log-level", "loud"}, 2, "flag -log-level: "},
		{[]string{"run", "-listen", "127.0.0.1:0", "-gateway-listen", "off", "-pprof", "127.0.0.1:99999"}, 2, "flag -pprof: "},
		{[]string{"run", "-listen", "127.0.0.1:0", "-gateway-listen", "off", "-cluster-routes", "foo"}, 2, "flag -cluster-routes: "},
		{[]string{"run", "-bogus"}, 2, "flag provided but not defined"},
		{[]string{"run", "-config", bad, "-listen", "127.0.0.1:0"}, 1, bad + ": line 1: log.level"},
		{[]string{"check-config", bad}, 1, bad + ": line 1: log.level"},
	}
	for _, c := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, binPath, c.args...).CombinedOutput()
		cancel()
		if code := exitCode(err); code != c.code || !strings.Contains(string(out), c.want) {
			t.Errorf("%v: exit %d: %s\nwant exit %d and %q", c.args, code, out, c.code, c.want)
		}
	}
}

// TestHelpCommandPrintsItsUsage: `edgewamp help run` prints run's usage
// and flags, as `edgewamp run -h`; before, it printed the general usage.
func TestHelpCommandPrintsItsUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"help", "run"}, "usage: edgewamp run [flags]\n  -cluster-listen"},
		{[]string{"help", "check-config"}, "usage: edgewamp check-config FILE"},
		{[]string{"help", "oauth", "secret"}, "-iterations"},
		{[]string{"help"}, "Usage:\n  edgewamp run"},
	} {
		o, e, code := runCLI(c.args...)
		if code != 0 || !strings.Contains(o, c.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 0 and %q", c.args, code, o, e, c.want)
		}
	}
	if o, e, code := runCLI("help", "frobnicate"); code != 2 || o != "" || !strings.Contains(e, `unknown command "frobnicate"`) {
		t.Errorf("help frobnicate: exit %d, %q %q", code, o, e)
	}
}

// TestMeshErrorsNameFileKeys: the mesh's errors and warnings name its keys
// as the file does, mesh.cluster.routes, not as package edge does
// (cluster.routes, "edge: node name"); a value that looks like a key is
// shown as it is.
func TestMeshErrorsNameFileKeys(t *testing.T) {
	p := writeFile(t, "c.yaml", "listeners: [{address: \"127.0.0.1:0\"}]\nmesh:\n  node: \"a b\"\n  cluster:\n    listen: \"0.0.0.0:0\"\n    routes: [\"http://max_inbound:1\"]\n  nats_url: \"nats://127.0.0.1:4222\"\n  max_outbound: 1KiB\n")
	_, e, code := runCLI("check-config", p)
	for _, want := range []string{
		`line 3: mesh.node "a b" must be`,
		`line 7: mesh.nats_url joins an existing NATS deployment; it excludes mesh.cluster and mesh.leaf`,
		`line 6: mesh.cluster.routes: "http://max_inbound:1": want nats://host:port`,
		`line 8: mesh.max_outbound 1024 is below the minimum`,
	} {
		if code != 1 || !strings.Contains(e, want) {
			t.Errorf("exit %d: %s\nwant exit 1 and %q", code, e, want)
		}
	}
	if strings.Contains(e, "edge:") {
		t.Errorf("package edge's prefix shown: %s", e)
	}
	p = writeFile(t, "w.yaml", "listeners: [{address: \"127.0.0.1:0\"}]\nmesh:\n  node: a\n  cluster:\n    listen: \"0.0.0.0:0\"\n")
	_, e, code = runCLI("check-config", p)
	if want := "without mesh.credentials or mesh.tls with a ca, mesh.cluster.listen 0.0.0.0:0 admits"; code != 0 || !strings.Contains(e, want) {
		t.Errorf("exit %d: %s\nwant exit 0 and %q", code, e, want)
	}
}

// TestSizeSpellings: sizes take their units in any case, Kubernetes' Ki,
// Mi, Gi and a fraction that makes whole bytes; K, M or G alone is refused
// as ambiguous, naming both readings. Before, 10mb and 1.5MiB were "not a
// size" and the message did not list the units.
func TestSizeSpellings(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{
		{"1024", 1024}, {"8KiB", 8 << 10}, {"16MiB", 16 << 20}, {"4MB", 4e6}, {"10mb", 10e6}, {"10 Mb", 10e6},
		{"16mib", 16 << 20}, {"1.5MiB", 3 << 19}, {"0.5kb", 500}, {"64Ki", 64 << 10}, {"2gi", 2 << 30}, {"7b", 7}, {"1GB", 1e9},
	} {
		if got, err := parseSize(c.in); err != nil || got != c.want {
			t.Errorf("%q: %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"10M", `"10M" is ambiguous: write "10MiB" (1024s) or "10MB" (1000s)`},
		{"1.5g", `write "1.5GiB" (1024s) or "1.5GB" (1000s)`},
		{"1.3B", "is not a whole number of bytes"},
		{"1e6", "units KB, MB, GB (1000s) or KiB, MiB, GiB (1024s)"},
		{"x", "is not a size"},
		{"-1kb", "is negative"},
		{"2048GiB", "is too large"},
	} {
		if _, err := parseSize(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.in, err, c.want)
		}
	}
	p := writeFile(t, "c.yaml", "limits:\n  max_message: 10M\n")
	_, e, code := runCLI("check-config", p)
	if want := `line 2: limits.max_message: "10M" is ambiguous`; code != 1 || !strings.Contains(e, want) {
		t.Errorf("exit %d: %s\nwant exit 1 and %q", code, e, want)
	}
}

// TestCheckConfigUnknownKeySuggests: a key refused as unknown names the
// nearest known key at its place, for a typo; none when nothing is near.
func TestCheckConfigUnknownKeySuggests(t *testing.T) {
	cases := []struct{ body, want string }{
		{"log: {levle: debug}\n", "line 1: key levle is not a known configuration key (at log.levle); did you mean level?\n"},
		{"listners: []\n", "line 1: key listners is not a known configuration key; did you mean listeners?\n"},
		{"gateway:\n  limits:\n    max-body: 1\n", "(at gateway.limits.max-body); did you mean max_body?\n"},
		{"realms:\n  - name: r\n    users:\n      - authid: a\n        pasword: x\n", "(at realms[0].users[0].pasword); did you mean password?\n"},
		{"foo: 1\n", "line 1: key foo is not a known configuration key\n"},
	}
	for _, c := range cases {
		p := writeFile(t, "c.yaml", c.body)
		_, e, code := runCLI("check-config", p)
		if code != 1 || !strings.Contains(e, c.want) {
			t.Errorf("exit %d: %q, want exit 1 and %q", code, e, c.want)
		}
	}
}

// TestCheckConfigSyntaxErrorLine: a YAML syntax error the parser (not the
// scanner) finds names its line counted from 1. yaml numbers those from 0
// and leaves line 0 out: an unquoted ${VAR} on line 1 was refused with no
// line, an unclosed `{` on line 3 was said to be on line 2.
func TestCheckConfigSyntaxErrorLine(t *testing.T) {
	cases := []struct{ body, want string }{
		{"log: {level: ${LEVEL}}\n", "line 1: did not find expected ',' or '}'"},
		{"log:\n  level: info\n  format: {a\n", "line 3: did not find expected ',' or '}'"},
		{"log:\n  level: info\n - x\n", "line 3: did not find expected key"},
		{"%YAML 1.1\n%YAML 1.1\n---\nlog: {}\n", "line 2: found duplicate %YAML directive"},
		{"log: {}\n---\n- ]\n", "line 3: did not find expected node content"},
	}
	for _, c := range cases {
		p := writeFile(t, "c.yaml", c.body)
		_, e, code := runCLI("check-config", p)
		if code != 1 || e != "edgewamp: "+p+": "+c.want+"\n" {
			t.Errorf("%q: exit %d: %q, want exit 1 and %q", c.body, code, e, c.want)
		}
	}
}

// TestConfigEnvReferenceRefused: a secret written as an environment
// variable's reference, ${NAME} or $NAME, is refused naming its _env key;
// the configuration expands no variable, and the reference's text was
// taken as the secret (a mesh token README prints: check-config said ok).
func TestConfigEnvReferenceRefused(t *testing.T) {
	cases := []struct{ body, want string }{
		{"mesh:\n  node: a\n  cluster: {listen: \"127.0.0.1:0\"}\n  credentials: {token: \"${EDGEWAMP_MESH_TOKEN}\"}\n",
			`line 4: mesh.credentials.token: "${EDGEWAMP_MESH_TOKEN}" would be taken as it is (the configuration expands no environment variable): write token_env: EDGEWAMP_MESH_TOKEN`},
		{"gateway:\n  api_keys:\n    - {key: \"$EDGEWAMP_API_KEY\", realm: realm1, role: anonymous}\n",
			`line 3: gateway.api_keys[0].key: "$EDGEWAMP_API_KEY" would be taken as it is`},
		{"realms:\n  - name: r\n    users:\n      - authid: a\n        role: x\n        secret: ${DASH_SECRET}\n",
			`line 6: realms[0].users[0].secret: "${DASH_SECRET}" would be taken as it is (the configuration expands no environment variable): write secret_env: DASH_SECRET`},
	}
	for _, c := range cases {
		p := writeFile(t, "c.yaml", c.body)
		_, e, code := runCLI("check-config", p)
		if code != 1 || !strings.Contains(e, c.want) {
			t.Errorf("exit %d: %q, want exit 1 and %q", code, e, c.want)
		}
	}
	// A secret that merely holds a $ is a secret; so is one that starts
	// with $ and goes on in mixed or lower case, as passwords do
	// ("$ecretPassw0rd"): it was taken before eb4d325, which refused it.
	for _, secret := range []string{"pa$$word-long-enough", "$ecretPassw0rdLong", "$Sup3r_secret_pass"} {
		p := writeFile(t, "ok.yaml", "realms:\n  - name: r\n    users:\n      - {authid: a, role: x, secret: \""+secret+"\"}\n")
		if _, e, code := runCLI("check-config", p); code != 0 {
			t.Errorf("the secret %q: exit %d: %s", secret, code, e)
		}
	}
}

// TestEmptyConfigNameRefused: an empty file name (a script's or a unit's
// unset variable) is refused. Before, `run -config ""` started on the
// embedded development default (RBAC off) and `check-config ""` said
// ": ok" of it.
func TestEmptyConfigNameRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binPath, "run", "-config", "", "-listen", "127.0.0.1:0", "-gateway-listen", "off").CombinedOutput()
	if code := exitCode(err); code != 2 || !strings.Contains(string(out), "flag -config: the value is empty") {
		t.Errorf("run -config \"\": exit %d: %s", code, out)
	}
	if o, e, code := runCLI("check-config", ""); code != 2 || o != "" || !strings.Contains(e, "the file name is empty") {
		t.Errorf("check-config \"\": exit %d: %q %q", code, o, e)
	}
}

// TestEmptyAddressFlagsRefused: the flags that say where the router is
// reached and which mesh it joins are refused empty, as -config is.
// Before, `run -listen ""` served on the configuration's address and
// `-cluster-routes ""` ran the node alone, without a word.
func TestEmptyAddressFlagsRefused(t *testing.T) {
	for _, name := range []string{"listen", "gateway-listen", "node", "cluster-listen", "cluster-routes", "leaf-listen", "leaf-remotes"} {
		args := []string{"run", "-gateway-listen", "off", "-listen", "127.0.0.1:0", "-" + name, ""}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, binPath, args...).CombinedOutput()
		cancel()
		if code := exitCode(err); code != 2 || !strings.Contains(string(out), "flag -"+name+": the value is empty") {
			t.Errorf("run -%s \"\": exit %d: %s", name, code, out)
		}
	}
	// Blank, or a list of nothing but commas (`-cluster-routes
	// ${PEER1},${PEER2}` with both unset): before, "," cleared the file's
	// routes and ran the node alone, " " turned the gateway off, without
	// a word.
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(p, []byte("listeners: [{address: \"127.0.0.1:0\"}]\ngateway: {listen: \"127.0.0.1:0\"}\nmesh:\n  node: n1\n  cluster:\n    listen: 127.0.0.1:0\n    routes: [\"nats://127.0.0.1:1\"]\n  leaf:\n    remotes: [\"nats://127.0.0.1:1\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct{ name, value string }{
		{"cluster-routes", ","}, {"cluster-routes", " , "}, {"leaf-remotes", ","},
		{"gateway-listen", " "},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // without the check: runs until killed
		out, err := exec.CommandContext(ctx, binPath, "run", "-config", p, "-"+k.name, k.value).CombinedOutput()
		cancel()
		if code := exitCode(err); code != 2 || !strings.Contains(string(out), "flag -"+k.name+": the value is empty") {
			t.Errorf("run -%s %q: exit %d: %s", k.name, k.value, code, out)
		}
	}
}

// TestConfigEntryKeysREADMEDefaults: README's configuration table gives
// each key's default, and a list the file gives replaces the default's
// whole. A listener entry without `address`, or a realm without `name`,
// is refused (there is no entry of the default to take them from), so
// the table says so, not "127.0.0.1:8080" and "realm1" (the embedded
// default's); and check-config names the entry's line, as it does every
// key's (before: `t.yaml: listeners[0].address "" is not host:port`, no
// line). A realm with users or an oauth block takes no anonymous session
// unless it says `anonymous: true`: the table said `true`.
func TestConfigEntryKeysREADMEDefaults(t *testing.T) {
	cases := []struct{ body, want string }{
		{"listeners:\n  - address: \"127.0.0.1:0\"\n  - transport: websocket\n", `line 3: listeners[1].address "" is not host:port`},
		{"realms:\n  - name: a\n  -\n    anonymous: true\n", `line 4: realms[1].name "" is not a valid URI`},
		// One of two keys that clash, the other the embedded default's:
		// the file's is named (it said no line).
		{"websocket:\n  health_path: /ws\n", `line 2: websocket.path and websocket.health_path must differ`},
	}
	for _, c := range cases {
		p := writeFile(t, "c.yaml", c.body)
		out, err := exec.Command(binPath, "check-config", p).CombinedOutput()
		if code := exitCode(err); code != 1 || !strings.Contains(string(out), p+": "+c.want) {
			t.Errorf("exit %d: %q, want exit 1 and %q", code, out, c.want)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := func(key string) string {
		for _, l := range strings.Split(string(readme), "\n") {
			if strings.HasPrefix(l, "| `"+key+"`") {
				return strings.Split(l, "|")[2]
			}
		}
		t.Fatalf("README's configuration table has no row for %s", key)
		return ""
	}
	for _, k := range []string{"listeners[].address", "realms[].name"} {
		if d := row(k); !strings.Contains(d, "required") {
			t.Errorf("README's default for %s, %q, does not say an entry of the file needs it", k, d)
		}
	}
	cfg, err := parseConfig([]byte("realms:\n  - name: a\n    users: [{authid: u, role: r, secret: s3cr3t-s3cr3t}]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Realms[0].takesAnonymous() {
		t.Fatal("a realm with users takes anonymous sessions")
	}
	if d := row("realms[].anonymous"); !strings.Contains(d, "users") {
		t.Errorf("README's default for realms[].anonymous, %q, does not say a realm with users takes none", d)
	}
}

// TestCheckConfigListForSizeOrDurationNamesItsKey: a list or a mapping
// where a size, a duration or runtime's auto/off/size goes names its key,
// as a wrong scalar there does, and the rest of the file is still
// checked. Before, check-config said `line 4: want a size like "16MiB"`
// (which key of the line's block?) and stopped there, hiding the errors
// after it.
func TestCheckConfigListForSizeOrDurationNamesItsKey(t *testing.T) {
	p := writeFile(t, "c.yaml", "limits:\n  max_message: 1MiB\n  high_water:\n    - 1\nkeepalive: {timeout: {s: 10}}\nruntime: {memory_limit: [1]}\nfoo: 1\n")
	out, err := exec.Command(binPath, "check-config", p).CombinedOutput()
	if code := exitCode(err); code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, out)
	}
	for _, want := range []string{
		`line 4: limits.high_water takes a size like "16MiB", not a list`,
		`line 5: keepalive.timeout takes a duration like "10s", not a mapping`,
		`line 6: runtime.memory_limit takes auto, off or a size like "256MiB", not a list`,
		"line 7: key foo is not a known configuration key",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("missing %q in %s", want, out)
		}
	}
}
