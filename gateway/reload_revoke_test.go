package gateway

import (
	"log/slog"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// TestReloadReplacingRevokedRunnersIsNotARemoval: a reload that changes
// an HTTP callee and a webhook (here their role) and takes their old role
// its grants makes the router revoke the old registration and
// subscription (r.Reload) before the gateway replaces them (Apply), as
// cmd's reload does. The replacements register and subscribe; the old
// runners' revocations are not removals that "stay until the
// configuration is reloaded": before, each logged that warning and
// counted one in edgewamp_gateway_{callee,webhook}_revoked_total, though
// the replacement was in place.
func TestReloadReplacingRevokedRunnersIsNotARemoval(t *testing.T) {
	laneFree(t)
	tgt := newWebhookTarget(t, "")
	up := newCalleeUpstream(t)
	logs := newCountingHandler("gateway: the router removed an HTTP callee's registration", "gateway: the router removed a webhook's subscription")
	callee := Callee{Realm: "secure", Procedure: "com.weather", URL: up.srv.URL, Role: "svc"}
	hook := Webhook{Name: "sec", Realm: "secure", Topic: "com.pub.alert", URL: tgt.srv.URL, Role: "svc"}
	e := newEnv(t, func(o *Options) {
		o.Logger = slog.New(logs)
		o.Callees = []Callee{callee}
		o.Webhooks = []Webhook{hook}
	})
	waitFor(t, "both in place", func() bool {
		return metricValue(t, e, "edgewamp_gateway_callee_registered") == "1" && metricValue(t, e, "edgewamp_gateway_webhook_subscribed") == "1"
	})
	z, err := route.NewRBAC([]route.Role{
		{Name: "svc", Permissions: []route.Permission{{URI: "", Match: proto.MatchPrefix, Call: true, Publish: true}}},
		{Name: "svc2", Permissions: []route.Permission{{URI: "", Match: proto.MatchPrefix, Call: true, Register: true, Publish: true, Subscribe: true}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	callee.Role, hook.Role = "svc2", "svc2"
	p, err := e.gw.Prepare(Update{Realms: e.gw.opts.Realms, Callees: []Callee{callee}, Webhooks: []Webhook{hook}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.r.Reload([]route.RealmConfig{{Name: "realm1", Anonymous: true}, {Name: "secure", Authorizer: z, Anonymous: true, AnonymousRole: "svc"}}); err != nil {
		t.Fatal(err)
	}
	// The old runners have heard of the revocations before Apply.
	waitFor(t, "both revoked", func() bool {
		return metricValue(t, e, "edgewamp_gateway_callee_registered") == "0" && metricValue(t, e, "edgewamp_gateway_webhook_subscribed") == "0"
	})
	e.gw.Apply(p)
	waitFor(t, "both replaced", func() bool {
		return metricValue(t, e, "edgewamp_gateway_callee_registered") == "1" && metricValue(t, e, "edgewamp_gateway_webhook_subscribed") == "1"
	})
	if v := metricValue(t, e, `edgewamp_gateway_callee_revoked_total{callee="com.weather"}`); v != "0" {
		t.Errorf("edgewamp_gateway_callee_revoked_total = %q, want 0: the replaced callee's revocation counted", v)
	}
	if v := metricValue(t, e, `edgewamp_gateway_webhook_revoked_total{webhook="sec"}`); v != "0" {
		t.Errorf("edgewamp_gateway_webhook_revoked_total = %q, want 0: the replaced webhook's revocation counted", v)
	}
	for i, pre := range logs.prefix {
		if n := logs.n[i].Load(); n != 0 {
			t.Errorf("%q logged %d times for a runner the reload replaced", pre, n)
		}
	}
}
