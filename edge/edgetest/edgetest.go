// Package edgetest holds what the mesh's tests share across packages (edge's
// own, and cmd/edgewamp's process meshes).
package edgetest

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// FreeAddr returns a loopback address whose port is free at this moment,
// for a listener that must know its port before it binds (NATS routes
// name each other's). The port is drawn below the kernel's ephemeral range
// (ip_local_port_range): a port 0 bind or an outgoing connection of any
// other test running meanwhile takes its port from that range, and could
// take one just freed there before the node binds it.
func FreeAddr(t testing.TB) string {
	t.Helper()
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				lo = v
			}
		}
	}
	for range 100 {
		if lo <= 11000 {
			break
		}
		port := 10000 + rand.IntN(lo-10000)
		if !handOut(port) {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		ln.Close()
		return ln.Addr().String()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var (
	handedMu sync.Mutex
	handed   = map[int]bool{}
)

// handOut reports whether port was never handed out by FreeAddr in this
// process, and marks it so. A port is free when it is drawn but bound
// only later (a node process starts, seconds under load): two parallel
// tests that drew the same port within that time both took it, and one
// node failed to start ("address already in use": TestOAuthMeshBinary's
// gateway in a CI run). Across processes the draws stay random.
func handOut(port int) bool {
	handedMu.Lock()
	defer handedMu.Unlock()
	if handed[port] {
		return false
	}
	handed[port] = true
	return true
}
