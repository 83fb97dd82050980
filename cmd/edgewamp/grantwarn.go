package main

import (
	"fmt"

	"github.com/edgewamp/edgewamp/gateway"
	"github.com/edgewamp/edgewamp/route"
)

// gatewayGrantWarnings says, for check-config, which of the gateway's own
// sessions would be refused not_authorized by their realm's permissions
// (a realm with security: true): an HTTP callee whose role may not
// register its procedure, a webhook whose role may not subscribe to its
// topic, a route of auth type none whose role (or the realm's anonymous
// role) may not call or publish its URI, a webhook of deliver: one whose
// role may not register its lock (gateway.WebhookLockURI). Before, check-config said ok and
// run logged the callee's and the webhook's refusal, retried for ever,
// and the route answered each request 403. A warning, not a refusal: the
// file may withhold a grant on purpose, for a while.
func (c *config) gatewayGrantWarnings() []string {
	rcs, err := c.realmConfigs()
	if err != nil {
		return nil // refused already
	}
	authz := map[string]*route.RBAC{}
	anon := map[string]string{}
	for i, rc := range rcs {
		if z, ok := rc.Authorizer.(*route.RBAC); ok && c.Realms[i].Security {
			authz[rc.Name] = z
			anon[rc.Name] = c.Realms[i].anonymousRole()
		}
	}
	var out []string
	g := &c.Gateway
	check := func(key, realm, role string, a route.Action, verb, match, uri string) {
		z := authz[realm]
		if z == nil || role == "" || !z.HasRole(role) {
			return // no security, or refused already (validateGatewayRoles)
		}
		m, ok := parseMatch(match)
		if !ok || z.AuthorizePattern(role, a, m, uri) {
			return
		}
		out = append(out, fmt.Sprintf("%s: role %q may not %s %q in realm %q: the router will refuse it not_authorized; grant %s to the role (realms[].roles[].permissions)",
			key, role, verb, uri, realm, verb))
	}
	for i, ce := range g.Callees {
		check(fmt.Sprintf("gateway.callees[%d]", i), ce.Realm, ce.Role, route.ActionRegister, "register", ce.Match, ce.Procedure)
	}
	topics := map[string]int{}
	for _, w := range g.Webhooks {
		topics[w.Topic]++
	}
	for i, w := range g.Webhooks {
		check(fmt.Sprintf("gateway.webhooks[%d]", i), w.Realm, w.Role, route.ActionSubscribe, "subscribe", w.Match, w.Topic)
		// deliver: one takes its lock first, a registration of
		// WebhookLockURI(name); an unnamed webhook is named by its topic
		// (with #2 ... when topics repeat: then not checked).
		if name := w.Name; w.Deliver == "one" && (name != "" || topics[w.Topic] == 1) {
			if name == "" {
				name = w.Topic
			}
			check(fmt.Sprintf("gateway.webhooks[%d] (deliver: one, its lock)", i), w.Realm, w.Role, route.ActionRegister, "register", "", gateway.WebhookLockURI(name))
		}
	}
	for i, rt := range g.Routes {
		if rt.Auth.Type != "none" {
			continue // the principal's role, known per request
		}
		role := rt.Role
		if role == "" {
			role = anon[rt.Realm]
		}
		if rt.Call != "" {
			check(fmt.Sprintf("gateway.routes[%d]", i), rt.Realm, role, route.ActionCall, "call", "", rt.Call)
		}
		if rt.Publish != "" {
			check(fmt.Sprintf("gateway.routes[%d]", i), rt.Realm, role, route.ActionPublish, "publish", "", rt.Publish)
		}
	}
	return out
}
