package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A gateway.tls certificate that is not valid by the host's clock at
// start is warned about, as a listener's and mesh.tls's are: browsers and
// HTTP clients refuse every connection to the gateway. Before, the
// gateway started with it without a word.
func TestGatewayTLSExpiredCertificateWarnedAtStart(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	now := time.Now()
	writePairValid(t, certPath, keyPath, 7, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	cfgPath := writeFile(t, "gwexpired.yaml", "gateway:\n  listen: 127.0.0.1:0\n  tls: {cert: "+certPath+", key: "+keyPath+"}\nrealms: [{name: realm1}]\n")
	r := launch(t, exec.Command(binPath, "run", "-config", cfgPath, "-listen", "127.0.0.1:0", "-gateway-listen", "127.0.0.1:0"))
	r.waitLog("gateway listening", 1)
	for _, line := range strings.Split(r.logs(), "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "gateway.tls") && strings.Contains(line, "not valid now") && strings.Contains(line, certPath) {
			return
		}
	}
	t.Fatalf("no warning of gateway.tls's expired certificate at start:\n%s", r.logs())
}
