// Package deploy holds the tests of what edgewamp ships: `make release`
// (static binaries for amd64, arm64 and armv7, tarballs, .deb packages,
// SHA256SUMS), the binaries running under qemu-user, the Debian package
// installed into a scratch root, and the systemd unit.
//
// The release is built once per test run (make release, all three
// architectures, into a temporary directory), then three times more for
// one architecture each (another version, another host, the upgrade);
// cross-compiling is the slow part and Go's build cache makes later runs
// cheap. The test builds compress the .deb with xz -1 (DEB_XZ_LEVEL) rather
// than a release's -6: 3 s of CPU per package rather than 23.
package deploy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	testVersion    = "0.9.0"
	upgradeVersion = "0.9.1"
	// maxBinary is the budget for a stripped binary with everything in.
	maxBinary = 30 << 20
)

// arch describes one release architecture.
type arch struct {
	name    string      // in file names: amd64, arm64, armv7
	goarch  string      // GOARCH
	goarm   string      // GOARM
	deb     string      // Debian architecture
	machine elf.Machine // ELF e_machine
	qemu    string      // user-mode emulator, "" when native
}

var arches = []arch{
	{"amd64", "amd64", "", "amd64", elf.EM_X86_64, ""},
	{"arm64", "arm64", "", "arm64", elf.EM_AARCH64, "qemu-aarch64-static"},
	{"armv7", "arm", "7", "armhf", elf.EM_ARM, "qemu-arm-static"},
}

var (
	workDir string // temporary, removed by TestMain
	repo    string // repository root
)

func TestMain(m *testing.M) {
	var err error
	if repo, err = filepath.Abs(".."); err != nil {
		panic(err)
	}
	if workDir, err = os.MkdirTemp("", "edgewamp-release-"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(workDir)
	os.Exit(code)
}

// needTool skips the test when a tool is missing, unless CI or
// EDGEWAMP_REQUIRE_RELEASE asks for a failure (.ci/setup installs them).
func needTool(t *testing.T, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err == nil {
		return
	}
	msg := fmt.Sprintf("%s not found: apt-get install %s (.ci/setup does)", tool, pkg)
	if os.Getenv("CI") != "" || os.Getenv("EDGEWAMP_REQUIRE_RELEASE") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// release is one `make release` run.
type release struct {
	dist string
	out  string // its output
	err  error
}

var (
	releaseMu sync.Mutex
	releases  = map[string]*release{}
)

// makeRelease runs `make release VERSION=version ARCHES=archList` into a
// directory of its own, once per (version, archList) per test run.
func makeRelease(t *testing.T, version, archList, name string) string {
	t.Helper()
	return makeReleaseIn(t, version, archList, name, nil)
}

// makeReleaseIn is makeRelease with extra environment variables for make
// (NAME=value), and files put into the output directory beforehand
// (name → contents), as an earlier release would have left them.
func makeReleaseIn(t *testing.T, version, archList, name string, env []string, before ...map[string]string) string {
	t.Helper()
	needTool(t, "dpkg-deb", "dpkg")
	key := version + "|" + archList + "|" + name
	releaseMu.Lock()
	defer releaseMu.Unlock()
	r := releases[key]
	if r == nil {
		r = &release{dist: filepath.Join(workDir, name)}
		for _, files := range before {
			if err := os.MkdirAll(r.dist, 0o755); err != nil {
				t.Fatal(err)
			}
			for f, body := range files {
				if err := os.WriteFile(filepath.Join(r.dist, f), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		start := time.Now()
		cmd := exec.Command("make", "-C", repo, "release", "VERSION="+version, "ARCHES="+archList, "DIST="+r.dist)
		cmd.Env = append(append(os.Environ(), "DEB_XZ_LEVEL=1"), env...)
		out, err := cmd.CombinedOutput()
		r.out, r.err = string(out), err
		t.Logf("make release VERSION=%s ARCHES=%q: %v", version, archList, time.Since(start).Round(time.Second))
		releases[key] = r
	}
	if r.err != nil {
		t.Fatalf("make release: %v\n%s", r.err, r.out)
	}
	return r.dist
}

// fullRelease is `make release` for all three architectures, unsigned,
// into a directory where an earlier signed release left its signature.
func fullRelease(t *testing.T) string {
	return makeReleaseIn(t, testVersion, "amd64 arm64 armv7", "full", nil, map[string]string{
		"SHA256SUMS.sig": "the signature of an earlier release's SHA256SUMS",
	})
}

// signer is the throwaway SSH key otherRelease signs its SHA256SUMS with.
type signer struct {
	key, pub string // private key file, public key line
	err      error
}

var (
	signerOnce sync.Once
	theSigner  signer
)

// signingKey returns the test's signing key, made once per test run.
func signingKey(t *testing.T) signer {
	t.Helper()
	needTool(t, "ssh-keygen", "openssh-client")
	signerOnce.Do(func() {
		key := filepath.Join(workDir, "release_ed25519")
		out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "releases@edgewamp.test", "-f", key).CombinedOutput()
		if err != nil {
			theSigner.err = fmt.Errorf("ssh-keygen: %v\n%s", err, out)
			return
		}
		pub, err := os.ReadFile(key + ".pub")
		theSigner = signer{key: key, pub: strings.TrimSpace(string(pub)), err: err}
	})
	if theSigner.err != nil {
		t.Fatal(theSigner.err)
	}
	return theSigner
}

func (a arch) binary(dist, version string) string {
	return filepath.Join(dist, "edgewamp-"+version+"-linux-"+a.name)
}

func (a arch) debFile(dist, version string) string {
	return filepath.Join(dist, "edgewamp_"+version+"_"+a.deb+".deb")
}

// command runs a program of the architecture: natively, or under its
// emulator.
func (a arch) command(t *testing.T, bin string, args ...string) *exec.Cmd {
	t.Helper()
	if a.qemu == "" {
		return exec.Command(bin, args...)
	}
	needTool(t, a.qemu, "qemu-user-static")
	return exec.Command(a.qemu, append([]string{bin}, args...)...)
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// readSums parses SHA256SUMS into file → hash.
func readSums(t *testing.T, dist string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("SHA256SUMS line %q", line)
		}
		sums[f[1]] = f[0]
	}
	return sums
}

// make release builds every artifact for the three architectures, lists
// each in SHA256SUMS with its true hash, and the binaries are static,
// stripped, of the right machine and within the size budget.
func TestReleaseArtifacts(t *testing.T) {
	dist := fullRelease(t)
	sums := readSums(t, dist)
	var want []string
	for _, a := range arches {
		want = append(want, filepath.Base(a.binary(dist, testVersion)), filepath.Base(a.binary(dist, testVersion))+".tar.gz",
			filepath.Base(a.debFile(dist, testVersion)))
	}
	if len(sums) != len(want) {
		t.Errorf("SHA256SUMS lists %d files, want %d: %v", len(sums), len(want), sums)
	}
	for _, f := range want {
		if got := sha256File(t, filepath.Join(dist, f)); sums[f] != got {
			t.Errorf("%s: SHA256SUMS says %q, the file hashes to %s", f, sums[f], got)
		}
	}
	for _, a := range arches {
		t.Run(a.name, func(t *testing.T) {
			path := a.binary(dist, testVersion)
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("stripped binary linux/%s: %d bytes (%.1f MiB)", a.name, st.Size(), float64(st.Size())/(1<<20))
			if st.Size() > maxBinary {
				t.Errorf("binary is %d bytes, over the %d-byte budget", st.Size(), maxBinary)
			}
			f, err := elf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Machine != a.machine {
				t.Errorf("machine %v, want %v", f.Machine, a.machine)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("dynamically linked (program header %v)", p.Type)
				}
			}
			for _, s := range f.Sections {
				if s.Name == ".symtab" || strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
					t.Errorf("not stripped: section %s", s.Name)
				}
			}
			if a.goarch == "arm" {
				// GOARM=7: the build info records it.
				out, err := exec.Command("go", "version", "-m", path).Output()
				if err != nil || !strings.Contains(string(out), "GOARM=7") {
					t.Errorf("no GOARM=7 in the build info: %v\n%s", err, out)
				}
			}
		})
	}
}

// The same commit builds to the same bytes, binary, tarball and package,
// here for a cross-compiled architecture, built again as another host
// would (otherRelease) and compared with the first build.
func TestReleaseReproducible(t *testing.T) {
	a, b := fullRelease(t), otherRelease(t)
	sa, sb := readSums(t, a), readSums(t, b)
	if len(sb) != 3 {
		t.Fatalf("second build: %v", sb)
	}
	for f, h := range sb {
		if sa[f] != h {
			t.Errorf("%s differs between two builds of the same commit: %s vs %s", f, sa[f], h)
		}
	}
}

// otherRelease is `make release` for arm64 as another machine, or the
// same one later, would run it: Go's default GOFLAGS (-buildvcs=auto
// stamps the Git state into the binary; this development machine's go
// env turns that off), and a builder's Go environment that release.sh
// must not let through (hostileGoEnv), into a dist directory that still
// holds the artifacts of other versions (a release candidate, an older
// release), its SHA256SUMS signed with the test's key (SIGN_KEY).
// TestReleaseReproducible's comparison of bytes with the full release
// proves the environment is ignored; TestReleaseIgnoresBuilderGoEnv
// says which part got through if not.
func otherRelease(t *testing.T) string {
	return makeReleaseIn(t, testVersion, "arm64", "other-host", append(hostileGoEnv, "SIGN_KEY="+signingKey(t).key), map[string]string{
		"edgewamp-" + testVersion + "~rc1-linux-arm64":        "an older build",
		"edgewamp-" + testVersion + "~rc1-linux-arm64.tar.gz": "an older build",
		"edgewamp_" + testVersion + "~rc1_arm64.deb":          "an older build",
		"edgewamp_" + testVersion + ".1_arm64.deb":            "a newer build",
		"edgewamp-" + testVersion + ".1-linux-arm64":          "a newer build",
		"edgewamp_1" + testVersion + "_arm64.deb":             "another version",
	})
}

// SHA256SUMS lists this version's artifacts only, not those of another
// version left in the same directory (0.9.0~rc1, 0.9.0.1 and 10.9.0 all
// contain "0.9.0").
func TestReleaseSumsThisVersionOnly(t *testing.T) {
	dist := otherRelease(t)
	sums := readSums(t, dist)
	arm := arches[1]
	want := []string{filepath.Base(arm.binary(dist, testVersion)), filepath.Base(arm.binary(dist, testVersion)) + ".tar.gz",
		filepath.Base(arm.debFile(dist, testVersion))}
	for _, f := range want {
		if sums[f] == "" {
			t.Errorf("SHA256SUMS lacks %s", f)
		}
	}
	if len(sums) != len(want) {
		t.Errorf("SHA256SUMS lists %d files, want the %d of %s: %v", len(sums), len(want), testVersion, sums)
	}
}

// hostileGoEnv is a builder's Go environment that would change the
// release: build tags for the test hooks (a developer who exported them
// to run the watchdog tests: SIGUSR2 then wedges every event loop), the
// Git state stamped (vcs.modified counts any untracked file), CPU levels
// above the baseline (a GOAMD64=v3 binary dies with SIGILL on x86-64 v1
// and v2 CPUs: Atoms, older Celerons), a GOEXPERIMENT and FIPS mode.
var hostileGoEnv = []string{"GOFLAGS=-buildvcs=true -tags=edgewamp_testhooks", "GOAMD64=v3", "GOARM64=v9.0",
	"GOEXPERIMENT=heapminimum512kib", "GOFIPS140=latest"}

// The release's bytes do not depend on the builder's Go environment
// (hostileGoEnv): release.sh pins GOFLAGS, the CPU levels and FIPS mode
// and unsets GOEXPERIMENT (that the bytes are those of a build without
// them: TestReleaseReproducible). Before, the other host's arm64 binary
// had the test hooks compiled in and was built for GOARM64=v9.0. The Git
// state is not stamped by the go command (-buildvcs), whose vcs.modified
// counts any untracked file (`edgewamp version` then says "(modified)"
// of a clean commit); the commit is stamped by release.sh.
func TestReleaseIgnoresBuilderGoEnv(t *testing.T) {
	bin := arches[1].binary(otherRelease(t), testVersion)
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	info := string(out)
	var bad []string
	for _, s := range []string{"vcs.", "edgewamp_testhooks", "-tags", "GOARM64=v9", "GOEXPERIMENT", "X:", "GOFIPS140"} {
		if strings.Contains(info, s) {
			bad = append(bad, fmt.Sprintf("%q in its build info", s))
		}
	}
	for _, s := range []string{"GOARCH=arm64", "GOARM64=v8.0"} {
		if !strings.Contains(info, s) {
			bad = append(bad, "no "+s)
		}
	}
	if len(bad) > 0 {
		t.Fatalf("the builder's environment (%s) reached the release: %s\n%s", strings.Join(hostileGoEnv, " "), strings.Join(bad, "; "), info)
	}
}

// With SIGN_KEY, SHA256SUMS.sig is an SSH signature of SHA256SUMS that
// ssh-keygen -Y verify accepts for the release namespace, as README tells
// users to check it, and refuses for a changed SHA256SUMS or another
// namespace; without, no signature is left in the directory, not even an
// earlier release's (it would not sign this SHA256SUMS).
func TestReleaseSigned(t *testing.T) {
	k := signingKey(t)
	dist := otherRelease(t)
	allowed := filepath.Join(t.TempDir(), "allowed_signers")
	if err := os.WriteFile(allowed, []byte("releases@edgewamp "+k.pub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	verify := func(namespace string, data []byte) error {
		cmd := exec.Command("ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "releases@edgewamp", "-n", namespace,
			"-s", filepath.Join(dist, "SHA256SUMS.sig"))
		cmd.Stdin = strings.NewReader(string(data))
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := verify("edgewamp-release", sums); err != nil {
		t.Fatalf("the signature of SHA256SUMS does not verify: %v", err)
	}
	forged := strings.Replace(string(sums), firstHash(t, sums), strings.Repeat("0", 64), 1)
	if err := verify("edgewamp-release", []byte(forged)); err == nil {
		t.Error("the signature verifies a SHA256SUMS with a changed hash")
	}
	if err := verify("file", sums); err == nil {
		t.Error("the signature verifies in the namespace \"file\": it must be bound to edgewamp releases")
	}
	if _, err := os.Stat(filepath.Join(fullRelease(t), "SHA256SUMS.sig")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an unsigned release left an earlier SHA256SUMS.sig in place (stat: %v)", err)
	}
}

// firstHash returns the first hash SHA256SUMS lists.
func firstHash(t *testing.T, sums []byte) string {
	t.Helper()
	f := strings.Fields(string(sums))
	if len(f) < 2 || len(f[0]) != 64 {
		t.Fatalf("SHA256SUMS: %q", sums)
	}
	return f[0]
}

// The tarball holds the binary, the unit and its drop-in, the sample
// configurations (the mesh's in mesh/: they were missing), the man page,
// the README and the licenses.
func TestReleaseTarball(t *testing.T) {
	dist := fullRelease(t)
	name := "edgewamp-" + testVersion + "-linux-arm64"
	out, err := exec.Command("tar", "-tvzf", filepath.Join(dist, name+".tar.gz")).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		got[f[len(f)-1]] = f[0] + " " + f[1]
	}
	for file, mode := range map[string]string{
		"edgewamp": "-rwxr-xr-x", "edgewamp.service": "-rw-r--r--", "edgewamp-notify-reload.conf": "-rw-r--r--",
		"edgewamp.yaml": "-rw-r--r--", "small-board.yaml": "-rw-r--r--", "secure.yaml": "-rw-r--r--",
		"edgewamp.1": "-rw-r--r--", "README.md": "-rw-r--r--", "LICENSES": "-rw-r--r--",
		"edgewamp.sysusers.conf": "-rw-r--r--",
		"mesh/README.md":         "-rw-r--r--", "mesh/cluster-node.yaml": "-rw-r--r--", "mesh/hub.yaml": "-rw-r--r--",
		"mesh/edge-leaf.yaml": "-rw-r--r--", "mesh/": "drwxr-xr-x",
	} {
		if g := got[name+"/"+file]; g != mode+" 0/0" {
			t.Errorf("%s: %q, want %q owned by 0/0", file, g, mode)
		}
	}
	if len(got) != 16 { // the fourteen files and the two directories
		t.Errorf("tarball holds %d entries: %v", len(got), got)
	}
}

// listeningRE finds the router's listening line (text logs).
var listeningRE = regexp.MustCompile(`msg=listening address=(\S+)`)

// For every architecture (arm64 and armv7 under qemu-user): `edgewamp
// version` says what was stamped, `check-config` accepts every sample
// configuration, and a router started from the release binary routes a
// call and an event from the bundled client built for the same
// architecture, over WebSocket and RawSocket, then exits 0 on SIGTERM.
func TestReleaseBinariesRun(t *testing.T) {
	dist := fullRelease(t)
	samples, _ := filepath.Glob(filepath.Join(repo, "deploy", "*.yaml"))
	samples = append(samples, filepath.Join(repo, "cmd", "edgewamp", "default.yaml"))
	for _, a := range arches {
		t.Run(a.name, func(t *testing.T) {
			bin := a.binary(dist, testVersion)
			out, err := a.command(t, bin, "version").CombinedOutput()
			if err != nil {
				t.Fatalf("version: %v\n%s", err, out)
			}
			v := string(out)
			for _, want := range []string{"edgewamp " + testVersion + " ", "linux/" + a.name, "\n  commit ", "\n  built  "} {
				if !strings.Contains(v, want) {
					t.Errorf("version output lacks %q:\n%s", want, v)
				}
			}
			for _, s := range samples {
				cmd := a.command(t, bin, "check-config", s)
				cmd.Env = append(os.Environ(), "EDGEWAMP_DASHBOARD_SECRET=sample")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("check-config %s: %v\n%s", filepath.Base(s), err, out)
				}
			}
			smoke := buildSmoke(t, a)
			runSelfTest(t, a, bin, smoke)
		})
	}
}

var (
	smokeMu   sync.Mutex
	smokeBins = map[string]string{}
)

// buildSmoke cross-compiles bench/cmd/wampsmoke (the bundled client) for
// the architecture, with the release's flags so that it reuses the cached
// standard library.
func buildSmoke(t *testing.T, a arch) string {
	t.Helper()
	smokeMu.Lock()
	defer smokeMu.Unlock()
	if p := smokeBins[a.name]; p != "" {
		return p
	}
	p := filepath.Join(workDir, "wampsmoke-"+a.name)
	cmd := exec.Command("go", "build", "-trimpath", "-o", p, "./bench/cmd/wampsmoke")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+a.goarch, "GOARM="+a.goarm)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building wampsmoke for %s: %v\n%s", a.name, err, out)
	}
	smokeBins[a.name] = p
	return p
}

// runSelfTest starts the router, runs the smoke client over both
// transports, sends SIGTERM and expects exit 0.
func runSelfTest(t *testing.T, a arch, bin, smoke string) {
	t.Helper()
	router := a.command(t, bin, "run", "-listen", "127.0.0.1:0", "-gateway-listen", "127.0.0.1:0")
	stderr, err := router.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := router.Start(); err != nil {
		t.Fatal(err)
	}
	var logMu sync.Mutex
	var logs bytes.Buffer
	addrCh := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			logs.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addrCh <- m[1]:
				default:
				}
			}
		}
		done <- router.Wait()
	}()
	logText := func() string { logMu.Lock(); defer logMu.Unlock(); return logs.String() }
	stopped := false
	defer func() {
		if !stopped {
			router.Process.Kill()
			<-done
		}
	}()
	var addr string
	select {
	case addr = <-addrCh:
	case err := <-done:
		stopped = true
		t.Fatalf("router exited: %v\n%s", err, logText())
	case <-time.After(60 * time.Second):
		t.Fatalf("router did not listen within 60 s\n%s", logText())
	}
	for _, url := range []string{"ws://" + addr + "/ws", "rs://" + addr} {
		out, err := a.command(t, smoke, "-url", url, "-timeout", "60s").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "wampsmoke: ok (linux/"+a.goarch+")") {
			t.Fatalf("self-test over %s: %v\n%s\nrouter log:\n%s", url, err, out, logText())
		}
		t.Logf("%s", bytes.TrimSpace(out))
	}
	if err := router.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logText())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("no exit within 60 s of SIGTERM\n%s", logText())
	}
	if !strings.Contains(logText(), "edgewamp stopped") {
		t.Fatalf("no stop line:\n%s", logText())
	}
}

// release.sh put DEB_MAINTAINER into the control file with
// sed "s|@MAINTAINER@|$DEB_MAINTAINER|": a maintainer holding & (a team,
// "Smith & Jones") got the placeholder in its place, one holding | made
// sed fail ("unknown option to `s'") and the release stop after its
// builds, and a backslash was lost. A newline would start a field of its
// own in the control file (any field, after the maintainer's first line).
// Now the name goes in as it is, and one with a newline is refused before
// anything is built.
//
// The control file's function alone (a release build is not needed for
// it), run as release.sh runs it, and release.sh's refusal.
func TestReleaseControlMaintainerAsGiven(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(repo, "deploy", "release.sh"))
	if err != nil {
		t.Fatal(err)
	}
	var funcs []string
	for _, name := range []string{"debarch", "control"} {
		m := regexp.MustCompile(`(?ms)^` + name + `\(\) \{.*?^\}\n`).Find(script)
		if m == nil {
			t.Fatalf("release.sh has no function %s", name)
		}
		funcs = append(funcs, string(m))
	}
	for _, maint := range []string{
		"edgewamp developers <edgewamp@users.noreply.github.com>",
		"Smith & Jones <team@example.com>",
		"Ops | Edge <ops@example.com>",
		`Back\slash \1 <b@example.com>`,
	} {
		cmd := exec.Command("bash", "-c", "set -euo pipefail\nversion=1.2.3\n"+strings.Join(funcs, "")+"control armv7 4242\n")
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "DEB_MAINTAINER="+maint)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("control with DEB_MAINTAINER=%q: %v\n%s", maint, err, out)
			continue
		}
		for _, want := range []string{"\nMaintainer: " + maint + "\n", "\nVersion: 1.2.3\n", "\nArchitecture: armhf\n", "\nInstalled-Size: 4242\n"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("control with DEB_MAINTAINER=%q has no %q:\n%s", maint, strings.TrimSpace(want), out)
			}
		}
	}
	cmd := exec.Command("bash", filepath.Join(repo, "deploy", "release.sh"), "1.2.3")
	cmd.Env = append(os.Environ(), "DEB_MAINTAINER=A <a@example.com>\nEssential: yes", "DIST="+t.TempDir(),
		"GO=false") // no build, whatever happens: release.sh stops at `go env` without the check
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), "DEB_MAINTAINER") {
		t.Errorf("release.sh with a newline in DEB_MAINTAINER: exit %d (%v), want 2 and a word on DEB_MAINTAINER before any build:\n%s", code, err, out)
	}
}
