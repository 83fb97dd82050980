package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runtime.memory_limit: auto is "half the RAM, or 90 % of the cgroup's
// memory.max when that is lower" (README; the small-board and default
// samples rely on it). cgroupMemoryMax joined the path from
// /proc/self/cgroup onto /sys/fs/cgroup(/memory), which holds only where
// the whole hierarchy is mounted there. In a container on a cgroup v1
// host (Docker or k3s without a cgroup namespace: Raspberry Pi OS
// bullseye, older Yocto and balena images) /sys/fs/cgroup/memory is the
// container's own cgroup, mounted at its root, while /proc/self/cgroup
// still names the full path (/docker/<id>): the file was not found, the
// limit set to half the host's RAM, far above the container's, whose OOM
// killer then ended the router. Here on fake /proc and /sys trees, as
// the kernel shows them in each case.
func TestCgroupMemoryMaxMounts(t *testing.T) {
	const mib256 = 256 << 20
	cases := []struct {
		name, cgroup, mountinfo string
		files                   map[string]string // path → contents
		want                    int64
	}{
		{"v1 container: the cgroup mounted at its root",
			"12:memory:/docker/0123abc\n11:cpu,cpuacct:/docker/0123abc\n",
			"30 25 0:27 /docker/0123abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct\n" +
				"31 25 0:28 /docker/0123abc /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime master:15 - cgroup cgroup rw,memory\n",
			map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": strconv.Itoa(mib256)}, mib256},
		{"v1: the cgroup bind-mounted over the whole hierarchy's mount (the later mount hides the earlier)",
			"4:memory:/process_api/abc/sub\n",
			"34 30 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n" +
				"50 34 0:31 /process_api/abc/sub /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
			map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": strconv.Itoa(mib256)}, mib256},
		{"v1 host: the whole hierarchy",
			"4:memory:/system.slice/edgewamp.service\n",
			"31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n",
			map[string]string{"/sys/fs/cgroup/memory/system.slice/edgewamp.service/memory.limit_in_bytes": strconv.Itoa(mib256)}, mib256},
		{"v1 elsewhere, its name escaped, a sub-cgroup of the mount's root",
			"4:memory,hugetlb:/lxc/box/app\n",
			"31 25 0:28 /lxc/box /cg/mem\\040ory rw - cgroup none rw,hugetlb,memory\n",
			map[string]string{"/cg/mem ory/app/memory.limit_in_bytes": strconv.Itoa(mib256)}, mib256},
		{"v1 without a limit (the huge number)",
			"4:memory:/docker/x\n",
			"31 25 0:28 /docker/x /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
			map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712"}, 0},
		{"v2 host",
			"0::/system.slice/edgewamp.service\n",
			"29 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
			map[string]string{"/sys/fs/cgroup/system.slice/edgewamp.service/memory.max": strconv.Itoa(mib256)}, mib256},
		{"v2 container without a cgroup namespace: the path is not under the mount's root",
			"0::/system.slice/docker-0123abc.scope\n",
			"29 25 0:26 /system.slice/docker-0123abc.scope/init /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n",
			map[string]string{"/sys/fs/cgroup/memory.max": strconv.Itoa(mib256)}, mib256},
		{"v2 max",
			"0::/\n", "29 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
			map[string]string{"/sys/fs/cgroup/memory.max": "max\n"}, 0},
		{"hybrid: v2 without the memory controller, v1 with it",
			"0::/user.slice\n5:memory:/user.slice\n",
			"29 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n31 25 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
			map[string]string{"/sys/fs/cgroup/memory/user.slice/memory.limit_in_bytes": strconv.Itoa(mib256)}, mib256},
		{"no mountinfo: the usual mount points",
			"4:memory:/system.slice/edgewamp.service\n", "",
			map[string]string{"/sys/fs/cgroup/memory/system.slice/edgewamp.service/memory.limit_in_bytes": strconv.Itoa(mib256)}, mib256},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			root := t.TempDir()
			files := map[string]string{"/proc/self/cgroup": k.cgroup}
			if k.mountinfo != "" {
				files["/proc/self/mountinfo"] = k.mountinfo
			}
			for p, body := range k.files {
				files[p] = body
			}
			for p, body := range files {
				if err := os.MkdirAll(filepath.Dir(root+p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(root+p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := cgroupMemoryMaxIn(root); got != k.want {
				t.Fatalf("cgroup memory limit %d, want %d", got, k.want)
			}
		})
	}
}

// The same with a real cgroup v1 memory controller, where the host has
// one (skipped on a cgroup v2 host, and without the right to make a
// cgroup): a memory cgroup of 256 MiB under this test's own; the router
// started in it sees it (control), and started in it with the cgroup
// mounted at /sys/fs/cgroup/memory, as a container runtime mounts it (in
// a private mount namespace, gone with the process), sees it too; before,
// not.
func TestMemoryLimitAutoInV1Container(t *testing.T) {
	own := ""
	if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if f := strings.SplitN(l, ":", 3); len(f) == 3 && strings.Contains(","+f[1]+",", ",memory,") {
				own = f[2]
			}
		}
	}
	if own == "" {
		t.Skip("no cgroup v1 memory controller here")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare")
	}
	base := "/sys/fs/cgroup/memory" + own
	sub := filepath.Join(base, fmt.Sprintf("edgewamp-test-%d", os.Getpid()))
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Skipf("cannot make a memory cgroup: %v", err)
	}
	t.Cleanup(func() {
		// The routers were killed and waited for; the kernel lets the
		// empty cgroup go once their memory is uncharged.
		for range 50 {
			if err := os.Remove(sub); err == nil || os.IsNotExist(err) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("the test's cgroup %s is left behind", sub)
	})
	if err := os.WriteFile(filepath.Join(sub, "memory.limit_in_bytes"), []byte(strconv.Itoa(256<<20)), 0o644); err != nil {
		t.Skipf("cannot set the cgroup's limit: %v", err)
	}
	re := regexp.MustCompile(`msg="go runtime" memory_limit=(\S+) memory_limit_from=(\S+)`)
	start := func(containerMount bool) string {
		inner := `exec "$2" run -listen 127.0.0.1:0 -gateway-listen off`
		if containerMount {
			inner = `mount --bind "$1" /sys/fs/cgroup/memory && ` + inner
		}
		cmd := exec.Command("sh", "-c", `echo $$ > "$1/cgroup.procs" && exec unshare --mount --propagation private sh -c '`+inner+`' sh "$1" "$2"`, "sh", sub, binPath)
		cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GOMEMLIMIT=") })
		r := launch(t, cmd)
		m := re.FindStringSubmatch(r.logs())
		r.cmd.Process.Kill()
		<-r.done
		if m == nil {
			t.Fatalf("no go runtime line:\n%s", r.logs())
		}
		return m[1] + " (" + m[2] + ")"
	}
	control := start(false)
	t.Logf("cgroup of 256 MiB, whole hierarchy mounted: memory_limit=%s", control)
	if control != "230MiB (auto)" {
		t.Skipf("the control does not see the cgroup either (%s): not the case under test", control)
	}
	inContainer := start(true)
	t.Logf("the same cgroup mounted at /sys/fs/cgroup/memory (a v1 container): memory_limit=%s", inContainer)
	if inContainer != control {
		t.Fatalf("runtime.memory_limit auto in a cgroup v1 container limited to 256 MiB: %s, want %s (90 %% of the container's limit)", inContainer, control)
	}
}
