package main

import (
	"strings"
	"testing"
)

// TestGatewayGrantsWarned: an HTTP callee whose role may not register its
// procedure, a webhook whose role may not subscribe to its topic, or a
// route of auth type none whose role may not call its procedure, on a
// realm with security, passed check-config; run then logged the callee's
// and the webhook's not_authorized and retried for ever, and the route
// answered every request 403. check-config warns, naming the key; a
// granted role is not warned of.
func TestGatewayGrantsWarned(t *testing.T) {
	const head = `realms:
  - name: plant
    security: true
    anonymous: false
    roles:
      - {name: backend, permissions: [{uri: com.plant., match: prefix, allow: [register, subscribe, call]}]}
      - {name: locker, permissions: [{uri: com.plant., match: prefix, allow: [subscribe]}, {uri: edgewamp.gateway.webhook., match: prefix, allow: [register]}]}
    users: [{authid: u, role: backend, secret: s3cret}]
gateway:
  listen: 127.0.0.1:0
`
	for _, k := range []struct{ body, want string }{
		{"  callees: [{realm: plant, procedure: com.other.x, url: \"http://127.0.0.1:1/\", role: backend}]\n",
			`gateway.callees[0]: role "backend" may not register "com.other.x" in realm "plant": the router will refuse it not_authorized`},
		{"  callees: [{realm: plant, procedure: com., match: prefix, url: \"http://127.0.0.1:1/\", role: backend}]\n",
			`gateway.callees[0]: role "backend" may not register "com." in realm "plant"`},
		{"  webhooks: [{realm: plant, topic: com.other.t, url: \"http://127.0.0.1:1/\", role: backend}]\n",
			`gateway.webhooks[0]: role "backend" may not subscribe "com.other.t" in realm "plant"`},
		{"  webhooks: [{realm: plant, topic: com.plant.t, url: \"http://127.0.0.1:1/\", role: backend, deliver: one}]\n",
			`gateway.webhooks[0] (deliver: one, its lock): role "backend" may not register "edgewamp.gateway.webhook.`},
		{"  routes: [{method: POST, path: /x, realm: plant, publish: com.plant.t, auth: {type: none}, role: backend}]\n",
			`gateway.routes[0]: role "backend" may not publish "com.plant.t" in realm "plant"`},
		{"  callees: [{realm: plant, procedure: com.plant.x, url: \"http://127.0.0.1:1/\", role: backend}]\n" +
			"  webhooks:\n    - {realm: plant, topic: com.plant., match: prefix, url: \"http://127.0.0.1:1/\", role: backend}\n" +
			"    - {realm: plant, topic: com.plant.u, url: \"http://127.0.0.1:1/\", role: locker, deliver: one}\n" +
			"  routes: [{method: POST, path: /x, realm: plant, call: com.plant.y, auth: {type: none}, role: backend}]\n", ""},
	} {
		o, e, code := runCLI("check-config", writeConfig(t, head+k.body))
		if code != 0 || k.want == "" && strings.Contains(e, "warning") || k.want != "" && !strings.Contains(e, k.want) {
			t.Errorf("check-config %q: exit %d: %s%s; want %q", k.body, code, o, e, k.want)
		}
	}
}
