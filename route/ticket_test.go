package route

import (
	"errors"
	"testing"
)

// recordingVerifier stands for the OAuth2 server's verifier: it accepts one
// token and records what TicketAuth asked of it.
type recordingVerifier struct {
	token string
	got   *AuthRequest
}

func (v *recordingVerifier) VerifyTicket(req *AuthRequest, ticket string) (*Identity, error) {
	v.got = req
	if ticket != v.token {
		return nil, &AuthError{URI: "wamp.error.authentication_failed", Message: "invalid access token"}
	}
	return &Identity{AuthID: "alice", AuthRole: req.AuthRole, AuthProvider: "jwt"}, nil
}

// TestTicketAuthTokens: with Tokens set, a JWT-shaped ticket is verified as
// a token even for a user who has a password (and the requested role
// reaches the verifier); any other ticket is that user's password; without
// an authid only a token can name the principal.
func TestTicketAuthTokens(t *testing.T) {
	pw, _ := HashPassword("pw-alice", 1000)
	users, err := NewUsers([]*User{{AuthID: "alice", Roles: []string{"user"}, Password: pw}})
	if err != nil {
		t.Fatal(err)
	}
	const jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"
	v := &recordingVerifier{token: jwt}
	a := &TicketAuth{Users: users, Tokens: v}
	auth := func(authid, role, ticket string) (*Identity, error) {
		req := &AuthRequest{Realm: "realm1", AuthID: authid, AuthRole: role}
		if _, _, _, err := a.Challenge(req); err != nil {
			t.Fatalf("challenge: %v", err)
		}
		return a.Authenticate(req, nil, ticket, nil)
	}
	id, err := auth("alice", "ops", jwt)
	if err != nil || id.AuthProvider != "jwt" || v.got == nil || v.got.AuthRole != "ops" || v.got.Realm != "realm1" {
		t.Fatalf("token for a user with a password: %+v %v (verifier got %+v)", id, err, v.got)
	}
	v.got = nil
	if id, err := auth("alice", "", "pw-alice"); err != nil || id.AuthProvider != "static" || v.got != nil {
		t.Fatalf("password: %+v %v (verifier called: %v)", id, err, v.got != nil)
	}
	var ae *AuthError
	if _, err := auth("alice", "", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.e30"); !errors.As(err, &ae) || ae.URI != "wamp.error.authentication_failed" {
		t.Fatalf("a bad token: %v", err)
	}
	if _, err := auth("", "", "pw-alice"); !errors.As(err, &ae) || ae.URI != "wamp.error.no_such_principal" {
		t.Fatalf("no authid, no token: %v", err)
	}
	if id, err := auth("", "", jwt); err != nil || id.AuthID != "alice" {
		t.Fatalf("no authid, a token: %+v %v", id, err)
	}
	// Without Tokens a JWT-shaped ticket is just a wrong password.
	plain := &TicketAuth{Users: users}
	req := &AuthRequest{Realm: "realm1", AuthID: "alice"}
	if _, err := plain.Authenticate(req, nil, jwt, nil); !errors.As(err, &ae) || ae.URI != "wamp.error.authentication_failed" {
		t.Fatalf("token without a verifier: %v", err)
	}
}
