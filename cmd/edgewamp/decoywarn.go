package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/edgewamp/edgewamp/oauth"
	"github.com/edgewamp/edgewamp/route"
)

// decoyKeyWarnings says, for check-config and run at start, that the
// nodes of a mesh without data_dir each make a WAMP-CRA decoy key of
// their own at every start (decoySecret), in the realms where what a
// stranger is answered depends on it (route.Users.DecoysVary: a WAMP-CRA
// challenge's salt, a wrong ticket's or password grant's work): two
// HELLOs for the same authid that reach two nodes (one address in front
// of them, or a client trying each) then get two answers for a stranger
// and one for a user, which tells the users apart. README said to give
// every node the same data_dir/wampcra-decoy.key; nothing said that a
// node without data_dir cannot. Not said for a realm whose decoys do not
// depend on the key (anonymous only, tokens or cryptosign only, plain
// secrets only, one password shape taking tickets only).
func (c *config) decoyKeyWarnings() []string {
	if !c.Mesh.enabled() || c.DataDir != "" {
		return nil
	}
	rcs, err := c.realmConfigs()
	if err != nil || len(rcs) != len(c.Realms) {
		return nil // refused already
	}
	var names []string
	for i, rc := range rcs {
		var cra, ticket bool
		for _, a := range rc.Authenticators {
			switch a.(type) {
			case *route.CRAAuth:
				cra = true
			case *route.TicketAuth:
				ticket = true
			}
		}
		if rc.Users.DecoysVary(cra, ticket || c.Realms[i].passwordGrant()) {
			names = append(names, fmt.Sprintf("%q", rc.Name))
		}
	}
	if len(names) == 0 {
		return nil
	}
	what := "realm " + names[0]
	if len(names) > 1 {
		what = "realms " + strings.Join(names, ", ")
	}
	return []string{fmt.Sprintf("mesh: is on and data_dir is unset: each node makes a WAMP-CRA decoy key of its own at every start, so the WAMP-CRA challenge (salt, shape) or refused ticket of an authid that is not a user differs from node to node while a user's does not, and two logins tell the users of %s apart; set data_dir and give every node the same data_dir/%s (copy one node's)",
		what, decoyFile)}
}

// passwordGrant reports whether a client of the realm's oauth: block may
// use the password grant (its grants, else the realm's; none: all).
func (r *realmConfig) passwordGrant() bool {
	if r.OAuth == nil {
		return false
	}
	can := func(grants []string) bool { return len(grants) == 0 || slices.Contains(grants, oauth.GrantPassword) }
	if !can(r.OAuth.Grants) {
		return false
	}
	for _, cl := range r.OAuth.Clients {
		if can(cl.Grants) {
			return true
		}
	}
	return false
}
