package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// A trusted_proxies (or limits.auth_failures.exempt) entry with an IPv6
// zone is refused, naming the entry and why: peers are matched by address
// alone, so the zone was dropped and fe80::1%eth0 trusted fe80::1 on
// every interface. An entry broader than any private network (0.0.0.0/0,
// ::/0, the IPv4-mapped /96 that is IPv4's /0) is accepted with a warning
// line from check-config and from run at start, naming the key; the
// private ranges themselves (10.0.0.0/8, fc00::/7) and single addresses
// are not warned about. Before, check-config accepted all of them
// silently.
func TestTrustedProxiesZoneRefusedBroadWarned(t *testing.T) {
	const noGW = "gateway: {listen: \"off\"}\n"
	refused := []struct{ name, body, want string }{
		{"listener", "listeners: [{address: \"127.0.0.1:0\", trusted_proxies: [\"::1\", \"fe80::1%eth0\"]}]\n" + noGW,
			`listeners[0].trusted_proxies[1]: "fe80::1%eth0" has a zone (%eth0), which is not supported`},
		{"gateway", "gateway: {listen: \"127.0.0.1:0\", trusted_proxies: [\"fe80::7%lo\"]}\n",
			`gateway.trusted_proxies[0]: "fe80::7%lo" has a zone (%lo)`},
		{"exempt", "limits: {auth_failures: {exempt: [\"fe80::1%eth0\"]}}\n" + noGW,
			`limits.auth_failures.exempt[0]: "fe80::1%eth0" has a zone (%eth0)`},
	}
	for _, k := range refused {
		_, e, code := runCLI("check-config", writeFile(t, "c.yaml", k.body))
		if code == 0 || !strings.Contains(e, k.want) || !strings.Contains(e, "trust fe80::") {
			t.Errorf("%s: check-config exit %d, stderr:\n%s\nwant a refusal containing %q", k.name, code, e, k.want)
		}
	}

	body := "listeners: [{address: \"127.0.0.1:0\", trusted_proxies: [\"10.0.0.0/8\", \"0.0.0.0/0\", \"fc00::/7\", \"127.0.0.1\"]}, " +
		"{address: \"127.0.0.2:0\", trusted_proxies: [\"::ffff:0.0.0.0/96\"]}]\n" +
		"gateway: {listen: \"127.0.0.1:0\", trusted_proxies: [\"::/0\", \"192.168.0.0/16\"]}\n"
	p := writeFile(t, "c.yaml", body)
	_, e, code := runCLI("check-config", p)
	if code != 0 {
		t.Fatalf("check-config: exit %d: %s", code, e)
	}
	want := []string{
		"listeners[0].trusted_proxies[1] 0.0.0.0/0 is broader than any private network",
		"listeners[1].trusted_proxies[0] ::ffff:0.0.0.0/96 is broader than any private network",
		"gateway.trusted_proxies[0] ::/0 is broader than any private network",
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(e), "\n") {
		if l != "" {
			got = append(got, l)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("check-config's stderr:\n%s\nwant %d warning lines", e, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], "edgewamp: "+p+": warning: "+w) || !strings.Contains(got[i], "name the reverse proxies' own addresses") {
			t.Errorf("warning line %d:\n%s\nwant it to begin %q and say the fix", i, got[i], w)
		}
	}

	// launch turns the gateway off unless told: its entries are warned of only while it runs.
	r := launch(t, exec.Command(hookBinary(t), "run", "-config", p, "-gateway-listen", "127.0.0.1:0"))
	r.waitLog("edgewamp started", 1)
	logs := r.logs()
	for _, w := range want {
		if !strings.Contains(logs, `level=WARN msg="`+w) {
			t.Errorf("run did not warn %q at start:\n%s", w, logs)
		}
	}
}

// A reload whose trusted_proxies entries differ from the running ones in
// spelling only (127.0.0.1 and 127.0.0.1/32, ::1 and 0:0::1, a network
// written with host bits) changes nothing and is not reported as a
// restart-only change; a real change (another network) is. Before, the
// lists were compared as written: the reload logged that listeners and
// gateway had changed and needed a restart.
func TestTrustedProxiesRespelledIsNoChange(t *testing.T) {
	load := func(l, g string) *config {
		t.Helper()
		c, err := loadConfig(writeFile(t, "c.yaml", "listeners: [{address: \"127.0.0.1:0\", trusted_proxies: ["+l+"]}]\ngateway: {listen: \"127.0.0.1:0\", trusted_proxies: ["+g+"]}\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	running := load(`127.0.0.1, "::1", 10.1.2.3/8`, `192.168.1.0/24`)
	if got := restartOnlyChanges(running, load(`127.0.0.1/32, "0:0::1", 10.0.0.0/8`, `192.168.1.7/24`)); len(got) != 0 {
		t.Errorf("respelled lists: restart-only changes %q, want none", got)
	}
	if got := restartOnlyChanges(running, load(`127.0.0.2, "::1", 10.0.0.0/8`, `192.168.2.0/24`)); !slices.Equal(got, []string{"listeners", "gateway"}) {
		t.Errorf("changed lists: restart-only changes %q, want [listeners gateway]", got)
	}
}

// An exempt network (limits.auth_failures.exempt) that overlaps a trusted
// proxy's entry is warned about by check-config and by run at start,
// naming both entries: a connection from that proxy that names no client
// (RawSocket, which has no headers; an upgrade or a request without
// X-Forwarded-For or Forwarded) keeps the proxy's address, so every client
// reaching the router that way was exempt from the failed-login limiters
// (WAMP logins, the OAuth2 endpoints, the gateway's) and could guess
// passwords without a lockout. Before, check-config said ok. An exempt
// network apart from every proxy, and proxies outside every exempt
// network, are not warned about.
func TestExemptCoveringTrustedProxyWarned(t *testing.T) {
	body := "listeners: [{address: \"127.0.0.1:0\", trusted_proxies: [\"127.0.0.1\", \"::1\"]}, " +
		"{address: \"127.0.0.2:0\", trusted_proxies: [\"192.168.7.0/24\"]}]\n" +
		"gateway: {listen: \"127.0.0.1:0\", trusted_proxies: [\"10.1.2.3\"]}\n" +
		"limits: {auth_failures: {exempt: [\"127.0.0.0/8\", \"172.16.0.0/12\", \"10.0.0.0/8\", \"192.168.7.128/25\"]}}\n"
	p := writeFile(t, "c.yaml", body)
	_, e, code := runCLI("check-config", p)
	if code != 0 {
		t.Fatalf("check-config: exit %d: %s", code, e)
	}
	want := []string{
		"limits.auth_failures.exempt[0] 127.0.0.0/8 overlaps listeners[0].trusted_proxies[0] 127.0.0.1",
		"limits.auth_failures.exempt[2] 10.0.0.0/8 overlaps gateway.trusted_proxies[0] 10.1.2.3",
		"limits.auth_failures.exempt[3] 192.168.7.128/25 overlaps listeners[1].trusted_proxies[0] 192.168.7.0/24",
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(e), "\n") {
		if strings.Contains(l, "limits.auth_failures.exempt[") {
			got = append(got, l)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("check-config's stderr:\n%s\nwant %d warning lines about exempt networks holding trusted proxies", e, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], "edgewamp: "+p+": warning: "+w) || !strings.Contains(got[i], "never counted nor locked out") {
			t.Errorf("warning line %d:\n%s\nwant it to begin %q and say what it costs", i, got[i], w)
		}
	}
	// Nothing said of a configuration without the overlap.
	q := writeFile(t, "d.yaml", "listeners: [{address: \"127.0.0.1:0\", trusted_proxies: [\"127.0.0.1\"]}]\ngateway: {listen: \"off\"}\n"+
		"limits: {auth_failures: {exempt: [\"10.0.0.0/8\"]}}\n")
	if _, e, code := runCLI("check-config", q); code != 0 || strings.Contains(e, "warning") {
		t.Errorf("check-config of an exempt network apart from the proxies: exit %d, stderr:\n%s\nwant ok without a warning", code, e)
	}

	// launch turns the gateway off unless told: its entries are warned of only while it runs.
	r := launch(t, exec.Command(hookBinary(t), "run", "-config", p, "-gateway-listen", "127.0.0.1:0"))
	r.waitLog("edgewamp started", 1)
	logs := r.logs()
	for _, w := range want {
		if !strings.Contains(logs, `level=WARN msg="`+w) {
			t.Errorf("run did not warn %q at start:\n%s", w, logs)
		}
	}
}

// An exempt network broader than any private one (0.0.0.0/0, ::/0, the
// IPv4-mapped /96 that is IPv4's /0, 2000::/3) is warned about by
// check-config and by run at start, naming the entry: every peer in it
// is never counted nor locked out by the failed-login limiters (WAMP
// logins, the OAuth2 endpoints, the gateway), so the brute-force
// protection is off for the internet. Before, check-config said ok, where
// the same entry in trusted_proxies was warned about. The private ranges
// themselves and narrower networks are not.
func TestBroadExemptWarned(t *testing.T) {
	body := "gateway: {listen: \"off\"}\nlisteners: [{address: \"127.0.0.1:0\"}]\n" +
		"limits: {auth_failures: {exempt: [\"10.0.0.0/8\", \"0.0.0.0/0\", \"fc00::/7\", \"::/0\", \"192.168.1.7\", \"::ffff:0.0.0.0/96\", \"2000::/3\"]}}\n"
	p := writeFile(t, "c.yaml", body)
	_, e, code := runCLI("check-config", p)
	if code != 0 {
		t.Fatalf("check-config: exit %d: %s", code, e)
	}
	want := []string{
		"limits.auth_failures.exempt[1] 0.0.0.0/0 is broader than any private network",
		"limits.auth_failures.exempt[3] ::/0 is broader than any private network",
		"limits.auth_failures.exempt[5] ::ffff:0.0.0.0/96 is broader than any private network",
		"limits.auth_failures.exempt[6] 2000::/3 is broader than any private network",
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(e), "\n") {
		if l != "" {
			got = append(got, l)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("check-config's stderr:\n%s\nwant %d warning lines", e, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], "edgewamp: "+p+": warning: "+w) || !strings.Contains(got[i], "never counted nor locked out") {
			t.Errorf("warning line %d:\n%s\nwant it to begin %q and say what it costs", i, got[i], w)
		}
	}

	r := launch(t, exec.Command(hookBinary(t), "run", "-config", p))
	r.waitLog("edgewamp started", 1)
	logs := r.logs()
	for _, w := range want {
		if !strings.Contains(logs, `level=WARN msg="`+w) {
			t.Errorf("run did not warn %q at start:\n%s", w, logs)
		}
	}
}

// With the gateway off (gateway.listen: off), gateway.trusted_proxies
// reaches nothing: no connection is taken from those proxies, so an exempt
// network holding one, or an entry broader than any private network, is
// not warned about in that key's name. Before, check-config warned that
// "limits.auth_failures.exempt[0] 10.0.0.0/8 overlaps
// gateway.trusted_proxies[0] 10.1.2.3" (and of 0.0.0.0/0 there) for a
// router serving no HTTP at all. A listener's entries are still warned of.
func TestExemptWarningSkipsGatewayOff(t *testing.T) {
	p := writeFile(t, "c.yaml", "listeners: [{address: \"127.0.0.1:0\", trusted_proxies: [\"127.0.0.1\"]}]\n"+
		"gateway: {listen: \"off\", trusted_proxies: [\"10.1.2.3\", \"0.0.0.0/0\"]}\n"+
		"limits: {auth_failures: {exempt: [\"10.0.0.0/8\", \"127.0.0.0/8\"]}}\n")
	_, e, code := runCLI("check-config", p)
	if code != 0 {
		t.Fatalf("check-config: exit %d: %s", code, e)
	}
	if strings.Contains(e, "gateway.trusted_proxies") {
		t.Errorf("check-config with the gateway off:\n%s\nwant no warning naming gateway.trusted_proxies", e)
	}
	if !strings.Contains(e, "limits.auth_failures.exempt[1] 127.0.0.0/8 overlaps listeners[0].trusted_proxies[0] 127.0.0.1") {
		t.Errorf("check-config:\n%s\nwant the listener's overlap still warned of", e)
	}
}
